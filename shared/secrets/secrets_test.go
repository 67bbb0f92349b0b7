package secrets_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/helixhq/helix/shared/secrets"
)

// fakeAWS speaks the awsJson1.1 protocol of SSM (GetParameter) and Secrets Manager
// (GetSecretValue) from in-memory stores, and records what it was asked.
type fakeAWS struct {
	*httptest.Server
	params  map[string]string // SSM parameter name → value
	secrets map[string]string // secret id → SecretString

	mu       sync.Mutex
	requests []awsRequest
}

type awsRequest struct {
	Target string
	Body   map[string]any
}

func newFakeAWS(t *testing.T, params, secretValues map[string]string) *fakeAWS {
	t.Helper()
	f := &fakeAWS{params: params, secrets: secretValues}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAWS) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	f.mu.Lock()
	f.requests = append(f.requests, awsRequest{Target: target, Body: body})
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	fail := func(typ, msg string) {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.1") ||
		!strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		fail("InvalidRequest", "not an awsJson1.1 signed request")
		return
	}
	switch target {
	case "AmazonSSM.GetParameter":
		name, _ := body["Name"].(string)
		v, ok := f.params[name]
		if !ok {
			fail("ParameterNotFound", "Parameter "+name+" not found.")
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{
			"Name": name, "Type": "SecureString", "Value": v, "Version": 3,
			"ARN": "arn:aws:ssm:us-east-1:123456789012:parameter" + name, "DataType": "text",
		}})
	case "secretsmanager.GetSecretValue":
		id, _ := body["SecretId"].(string)
		v, ok := f.secrets[id]
		if !ok {
			fail("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + id + "-AbCdEf", "Name": id,
			"SecretString": v, "VersionId": "v1", "VersionStages": []string{"AWSCURRENT"}, "CreatedDate": 1.7e9,
		})
	default:
		fail("UnknownOperationException", "unknown target "+target)
	}
}

func (f *fakeAWS) seen() []awsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]awsRequest(nil), f.requests...)
}

func (f *fakeAWS) resolver() *secrets.Resolver {
	creds := credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")
	return &secrets.Resolver{
		SSM: ssm.New(ssm.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.URL), Credentials: creds,
			RetryMaxAttempts: 1}),
		SecretsManager: secretsmanager.New(secretsmanager.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.URL), Credentials: creds,
			RetryMaxAttempts: 1}),
	}
}

const (
	jwtSecret = "jwt-secret-value-8f2b"
	dbURL     = "postgres://helix:pw-77ab@db.internal:5432/helix"
	dbJSON    = `{"url":"` + dbURL + `","username":"helix","password":"pw-77ab","port":5432,"ssl":true}`
)

func newStores(t *testing.T) *fakeAWS {
	return newFakeAWS(t,
		map[string]string{"/helix/prod/jwt-secret": jwtSecret, "/helix/prod/empty": ""},
		map[string]string{
			"helix/prod/db":    dbJSON,
			"helix/prod/plain": "just-a-string-secret",
			"helix/prod/array": `["a","b"]`,
			"arn:aws:secretsmanager:us-east-1:123456789012:secret:helix/x": "by-arn",
		})
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		want       string
		wantErr    []string // substrings of the error
		wantCalls  int
		wantTarget string
	}{
		{name: "plain value", in: "postgres://localhost/helix", want: "postgres://localhost/helix"},
		{name: "empty value", in: "", want: ""},
		{name: "look-alike prefix", in: "ssm/helix/x", want: "ssm/helix/x"},
		{name: "prefix is case-sensitive", in: "SSM:/helix/prod/jwt-secret", want: "SSM:/helix/prod/jwt-secret"},
		{name: "SSM parameter", in: "ssm:/helix/prod/jwt-secret", want: jwtSecret, wantCalls: 1, wantTarget: "AmazonSSM.GetParameter"},
		{name: "SSM empty parameter", in: "ssm:/helix/prod/empty", want: "", wantCalls: 1, wantTarget: "AmazonSSM.GetParameter"},
		{name: "SSM missing parameter", in: "ssm:/helix/prod/nope", wantErr: []string{"/helix/prod/nope", "ParameterNotFound"}, wantCalls: 1},
		{name: "secret string", in: "secretsmanager:helix/prod/plain", want: "just-a-string-secret", wantCalls: 1, wantTarget: "secretsmanager.GetSecretValue"},
		{name: "secret by ARN", in: "secretsmanager:arn:aws:secretsmanager:us-east-1:123456789012:secret:helix/x", want: "by-arn", wantCalls: 1},
		{name: "whole JSON secret", in: "secretsmanager:helix/prod/db", want: dbJSON, wantCalls: 1},
		{name: "field of a JSON secret", in: "secretsmanager:helix/prod/db#url", want: dbURL, wantCalls: 1, wantTarget: "secretsmanager.GetSecretValue"},
		{name: "numeric field", in: "secretsmanager:helix/prod/db#port", want: "5432", wantCalls: 1},
		{name: "boolean field", in: "secretsmanager:helix/prod/db#ssl", want: "true", wantCalls: 1},
		{name: "missing field", in: "secretsmanager:helix/prod/db#host", wantErr: []string{"helix/prod/db", `"host"`}, wantCalls: 1},
		{name: "field of a non-JSON secret", in: "secretsmanager:helix/prod/plain#url", wantErr: []string{"helix/prod/plain", "not a JSON object"}, wantCalls: 1},
		{name: "field of a JSON array secret", in: "secretsmanager:helix/prod/array#0", wantErr: []string{"helix/prod/array"}, wantCalls: 1},
		{name: "missing secret", in: "secretsmanager:helix/prod/nope", wantErr: []string{"helix/prod/nope", "ResourceNotFoundException"}, wantCalls: 1},
		{name: "missing secret with a field", in: "secretsmanager:helix/prod/nope#url", wantErr: []string{"helix/prod/nope"}, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newStores(t)
			got, err := f.resolver().Resolve(t.Context(), tt.in)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Resolve(%q) = %q, want an error", tt.in, got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not mention %q: %v", w, err)
					}
				}
				for _, secret := range []string{"pw-77ab", "just-a-string-secret", jwtSecret} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error leaks a secret value: %v", err)
					}
				}
			} else if err != nil || got != tt.want {
				t.Fatalf("Resolve(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			reqs := f.seen()
			if len(reqs) != tt.wantCalls {
				t.Fatalf("%d AWS calls, want %d: %+v", len(reqs), tt.wantCalls, reqs)
			}
			if tt.wantTarget != "" && reqs[0].Target != tt.wantTarget {
				t.Errorf("X-Amz-Target = %q, want %q", reqs[0].Target, tt.wantTarget)
			}
		})
	}
}

func TestResolveSSMRequestShape(t *testing.T) {
	f := newStores(t)
	if _, err := f.resolver().Resolve(t.Context(), "ssm:/helix/prod/jwt-secret"); err != nil {
		t.Fatal(err)
	}
	reqs := f.seen()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	if reqs[0].Body["Name"] != "/helix/prod/jwt-secret" || reqs[0].Body["WithDecryption"] != true {
		t.Fatalf("GetParameter body = %v, want Name and WithDecryption=true", reqs[0].Body)
	}
}

func TestResolveSecretsManagerRequestShape(t *testing.T) {
	f := newStores(t)
	if _, err := f.resolver().Resolve(t.Context(), "secretsmanager:helix/prod/db#url"); err != nil {
		t.Fatal(err)
	}
	reqs := f.seen()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	// The #field is resolved locally; the request names only the secret.
	if reqs[0].Body["SecretId"] != "helix/prod/db" || len(reqs[0].Body) != 1 {
		t.Fatalf("GetSecretValue body = %v, want only SecretId=helix/prod/db", reqs[0].Body)
	}
}

// A numeric field is formatted through float64 with %v, so large numbers come out in exponent
// notation: {"account": 123456789012} resolves to "1.23456789012e+11".
func TestResolveLargeNumericField(t *testing.T) {
	f := newFakeAWS(t, nil, map[string]string{"s": `{"account":123456789012,"million":1000000}`})
	for field, want := range map[string]string{"account": "123456789012", "million": "1000000"} {
		got, err := f.resolver().Resolve(t.Context(), "secretsmanager:s#"+field)
		if err != nil || got != want {
			t.Errorf("field %s = %q, %v; want %q", field, got, err, want)
		}
	}
}

func TestResolveAll(t *testing.T) {
	f := newStores(t)
	var built int
	newResolver := func(context.Context) (*secrets.Resolver, error) {
		built++
		return f.resolver(), nil
	}

	plainDB, plainSecret := "postgres://localhost/helix", "local-dev-secret"
	if err := secrets.ResolveAll(t.Context(), newResolver, &plainDB, &plainSecret); err != nil {
		t.Fatal(err)
	}
	if built != 0 || len(f.seen()) != 0 {
		t.Fatalf("plain values built %d resolvers and made %d AWS calls; want none", built, len(f.seen()))
	}
	if plainDB != "postgres://localhost/helix" || plainSecret != "local-dev-secret" {
		t.Fatal("plain values changed")
	}
	if err := secrets.ResolveAll(t.Context(), newResolver); err != nil || built != 0 {
		t.Fatalf("no values: %v, built %d", err, built)
	}

	db, jwt, plain := "secretsmanager:helix/prod/db#url", "ssm:/helix/prod/jwt-secret", "https://issuer.test"
	if err := secrets.ResolveAll(t.Context(), newResolver, &db, &plain, &jwt); err != nil {
		t.Fatal(err)
	}
	if db != dbURL || jwt != jwtSecret || plain != "https://issuer.test" {
		t.Fatalf("resolved db=%q jwt=%q plain=%q", db, jwt, plain)
	}
	if built != 1 {
		t.Fatalf("built %d resolvers for two references, want 1", built)
	}
}

func TestResolveAllErrors(t *testing.T) {
	f := newStores(t)
	newResolver := func(context.Context) (*secrets.Resolver, error) { return f.resolver(), nil }

	good, bad1, bad2 := "ssm:/helix/prod/jwt-secret", "ssm:/helix/prod/missing", "secretsmanager:helix/prod/db#nofield"
	err := secrets.ResolveAll(t.Context(), newResolver, &bad1, &good, &bad2)
	if err == nil {
		t.Fatal("ResolveAll succeeded with two bad references")
	}
	for _, w := range []string{"/helix/prod/missing", "helix/prod/db", `"nofield"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not name %q: %v", w, err)
		}
	}
	for _, secret := range []string{jwtSecret, "pw-77ab", dbURL} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
	// The good reference is still resolved; the bad ones are left as they were.
	if good != jwtSecret || bad1 != "ssm:/helix/prod/missing" || bad2 != "secretsmanager:helix/prod/db#nofield" {
		t.Errorf("after errors: good=%q bad1=%q bad2=%q", good, bad1, bad2)
	}

	// A resolver that cannot be built is reported as is, and only when needed.
	errNoAWS := errors.New("no AWS credentials")
	ref := "ssm:/x"
	if err := secrets.ResolveAll(t.Context(), func(context.Context) (*secrets.Resolver, error) { return nil, errNoAWS }, &ref); !errors.Is(err, errNoAWS) {
		t.Fatalf("ResolveAll = %v, want %v", err, errNoAWS)
	}
	plain := "x"
	if err := secrets.ResolveAll(t.Context(), func(context.Context) (*secrets.Resolver, error) { return nil, errNoAWS }, &plain); err != nil {
		t.Fatalf("plain value with an unbuildable resolver: %v", err)
	}
}

func TestIsReference(t *testing.T) {
	tests := map[string]bool{
		"ssm:/a": true, "ssm:": true, "secretsmanager:a": true, "secretsmanager:a#b": true,
		"": false, "postgres://x": false, "SSM:/a": false, " ssm:/a": false, "secretsmanager": false,
	}
	for in, want := range tests {
		if got := secrets.IsReference(in); got != want {
			t.Errorf("IsReference(%q) = %v, want %v", in, got, want)
		}
	}
}

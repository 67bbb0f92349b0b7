package app_test

import (
	"context"
	"io"
	neturl "net/url"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/secrets"
	"github.com/jackc/pgx/v5"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// fakeSSM serves SSM parameters from a map.
type fakeSSM map[string]string

func (f fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	v, ok := f[aws.ToString(in.Name)]
	if !ok {
		return nil, &ssmtypes.ParameterNotFound{}
	}
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Value: aws.String(v)}}, nil
}

func resolver(params fakeSSM) func(context.Context) (*secrets.Resolver, error) {
	return func(context.Context) (*secrets.Resolver, error) { return &secrets.Resolver{SSM: params}, nil }
}

// An event-driven function (synthesis, audit, optimize) boots the core alone: no JWT setting at
// all, a database URL that is a secret reference, and a working pool at the end.
func TestCoreBootsWithoutHTTPSettings(t *testing.T) {
	url := pg.NewDatabase(t)
	core, err := app.Boot(t.Context(), app.Options{
		Function:   "synthesis",
		Environ:    []string{"DATABASE_URL=ssm:/helix/test/database-url", "DISABLE_SYNTHESIS=true", "HELIX_LOG_LEVEL=warn"},
		LogOut:     io.Discard,
		NewSecrets: resolver(fakeSSM{"/helix/test/database-url": url}),
	})
	if err != nil {
		t.Fatalf("core boot without JWT settings: %v", err)
	}
	defer core.Pool.Close()
	if err := core.Pool.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if core.Config.DatabaseURL != url {
		t.Errorf("DATABASE_URL was not resolved from SSM")
	}
	set, err := core.Toggles().Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !set.Enabled("DISABLE_SYNTHESIS") {
		t.Error("the kill-switch override in the environment is not applied")
	}
}

// The same environment is not enough for an HTTP function, and the error names what is missing.
func TestHTTPBootNeedsTokenSettings(t *testing.T) {
	url := pg.NewDatabase(t)
	_, err := httpapp.Boot(t.Context(), app.Options{Function: "route", Environ: []string{"DATABASE_URL=" + url}, LogOut: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "HELIX_JWT_ISSUER") || !strings.Contains(err.Error(), "HELIX_JWT_SECRET") {
		t.Fatalf("err = %v, want the missing JWT settings named", err)
	}
	a, err := httpapp.Boot(t.Context(), app.Options{Function: "route", LogOut: io.Discard, Environ: []string{
		"DATABASE_URL=" + url, "HELIX_JWT_SECRET=0123456789abcdef0123456789abcdef", "HELIX_JWT_ISSUER=https://i.test", "HELIX_JWT_AUDIENCE=helix",
	}})
	if err != nil {
		t.Fatal(err)
	}
	a.Pool.Close()
}

// A secret that cannot be read fails the cold start with the reference named, never a value.
func TestBootReportsAnUnreadableSecret(t *testing.T) {
	_, err := app.Boot(t.Context(), app.Options{Function: "x", LogOut: io.Discard,
		Environ:    []string{"DATABASE_URL=ssm:/helix/missing"},
		NewSecrets: resolver(fakeSSM{}),
	})
	if err == nil || !strings.Contains(err.Error(), "/helix/missing") {
		t.Fatalf("err = %v, want the reference named", err)
	}
}

// Local-development defaults fill only what the environment leaves unset.
func TestBootDefaults(t *testing.T) {
	url := pg.NewDatabase(t)
	core, err := app.Boot(t.Context(), app.Options{Function: "dev", LogOut: io.Discard,
		Environ:  []string{"DATABASE_URL=" + url, "HELIX_CATALOG_TTL=2s"},
		Defaults: map[string]string{"HELIX_CATALOG_TTL": "9s", "HELIX_OFFLINE": "fallback"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer core.Pool.Close()
	if core.Config.CatalogTTL.String() != "2s" {
		t.Errorf("CatalogTTL = %v: the environment must win over a default", core.Config.CatalogTTL)
	}
	if core.Config.Providers.Offline == 0 {
		t.Error("the HELIX_OFFLINE default was not applied")
	}
}

// The first cold start of a version records a deployment; the next cold starts of it do not.
func TestColdStartRecordsADeploymentOncePerVersion(t *testing.T) {
	url := pg.NewDatabase(t)
	boot := func(lambdaVersion string) {
		core, err := app.Boot(t.Context(), app.Options{Function: "synthesis", LogOut: io.Discard,
			Environ: []string{"DATABASE_URL=" + url, "AWS_LAMBDA_FUNCTION_VERSION=" + lambdaVersion}})
		if err != nil {
			t.Fatal(err)
		}
		core.Pool.Close()
	}
	boot("7")
	boot("7")
	boot("8")
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	rows, _ := conn.Query(t.Context(), `SELECT actor, payload::jsonb->>'version' FROM audit_pending WHERE kind = 'deployment' ORDER BY id`)
	var got []string
	for rows.Next() {
		var fn, v string
		if err := rows.Scan(&fn, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, fn+" "+v)
	}
	if len(got) != 2 || !strings.HasSuffix(got[0], "@7") || !strings.HasSuffix(got[1], "@8") || !strings.HasPrefix(got[0], "synthesis ") {
		t.Errorf("deployments recorded %q, want synthesis @7 then @8", got)
	}
}

// fakeSecretsManager serves secrets from a map, counting the reads.
type fakeSecretsManager struct {
	secrets map[string]string
	reads   int
}

func (f *fakeSecretsManager) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.reads++
	v, ok := f.secrets[aws.ToString(in.SecretId)]
	if !ok {
		return nil, &smtypes.ResourceNotFoundException{}
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
}

// A function boots as template.yaml configures it: the database by parts (the proxy's host, port
// and name), the user and password two fields of one Secrets Manager secret in RDS's JSON form,
// and the chat function's LISTEN connection elsewhere (HELIX_DB_LISTEN_HOST).
func TestBootFromTheTemplatesDatabaseSettings(t *testing.T) {
	u, err := neturl.Parse(pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0a1b2c-AbCdEf"
	sm := &fakeSecretsManager{secrets: map[string]string{arn: `{"username":"` + u.User.Username() + `","password":"unused with trust auth"}`}}
	core, err := app.Boot(t.Context(), app.Options{
		Function: "chat",
		Environ: []string{"HELIX_DB_HOST=" + u.Hostname(), "HELIX_DB_PORT=" + u.Port(), "HELIX_DB_NAME=" + strings.TrimPrefix(u.Path, "/"),
			"HELIX_DB_USER=secretsmanager:" + arn + "#username", "HELIX_DB_PASSWORD=secretsmanager:" + arn + "#password",
			"HELIX_DB_SSLMODE=disable", "HELIX_DB_LISTEN_HOST=listen.internal"},
		LogOut:     io.Discard,
		NewSecrets: func(context.Context) (*secrets.Resolver, error) { return &secrets.Resolver{SecretsManager: sm}, nil },
	})
	if err != nil {
		t.Fatalf("boot with the template's database settings: %v", err)
	}
	defer core.Pool.Close()
	if err := core.Pool.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if core.Listen == nil || core.Listen.Host != "listen.internal" || core.Listen.Password != "unused with trust auth" {
		t.Errorf("LISTEN goes to %+v, want listen.internal with the secret's credentials", core.Listen)
	}
	if sm.reads != 1 {
		t.Errorf("the secret was read %d times, want once for both fields", sm.reads)
	}
}

// A LISTEN URL that is not one stops the cold start, without echoing it.
func TestBootRefusesABadListenURL(t *testing.T) {
	_, err := app.Boot(t.Context(), app.Options{Function: "chat", LogOut: io.Discard,
		Environ: []string{"DATABASE_URL=" + pg.NewDatabase(t), "HELIX_DB_LISTEN_URL=postgres://u:hunter2@[::1"}})
	if err == nil || !strings.Contains(err.Error(), "HELIX_DB_LISTEN_URL") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("boot error %v, want one naming HELIX_DB_LISTEN_URL without the password", err)
	}
}

package sam

import (
	"crypto/rand"
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/helixhq/helix/shared/config"
)

// The audit function's secrets reach it only as references: every webhook variable the
// configuration reads, and the signing key, is set from a parameter whose AllowedPattern refuses
// the secret itself (a webhook URL, a PRIVATE+KEY+... key) and accepts a reference or nothing.
func TestAuditSecretsAreReferences(t *testing.T) {
	tmpl := loadTemplate(t)
	env := functionEnv(t, tmpl, "AuditFunction")
	skey, _ := auditKeyPair(t)
	secrets := map[string][]string{
		"HELIX_AUDIT_SIGNING_KEY": {skey},
	}
	for _, v := range config.WebhookVars() {
		secrets[v] = []string{"https://discord.com/api/webhooks/123456789012345678/AbC-dEf_0123", "http://127.0.0.1:9/hook"}
	}
	for _, v := range slices.Sorted(maps.Keys(secrets)) {
		t.Run(v, func(t *testing.T) {
			param := refParameter(t, env, v)
			allowed := parameterPattern(t, tmpl, param)
			for _, ok := range []string{"", "ssm:/helix/prod/x", "secretsmanager:helix/prod/discord#alerts"} {
				if !allowed(ok) {
					t.Errorf("%s (parameter %s) refuses %q", v, param, ok)
				}
			}
			for _, secret := range secrets[v] {
				if allowed(secret) {
					t.Errorf("%s (parameter %s) accepts the secret itself (%s...)", v, param, secret[:min(12, len(secret))])
				}
			}
		})
	}
}

// The verifier key is passed as is, to the audit function and to the budget function (which
// serves the audit read API); its pattern accepts a real note verifier key and refuses the
// private half, which must never be pasted into a plain parameter.
func TestAuditVerifierKeyParameter(t *testing.T) {
	tmpl := loadTemplate(t)
	skey, vkey := auditKeyPair(t)
	_, vkey2 := auditKeyPair(t)
	var param string
	for _, fn := range []string{"AuditFunction", "BudgetFunction"} {
		p := refParameter(t, functionEnv(t, tmpl, fn), "HELIX_AUDIT_VERIFIER_KEY")
		if param != "" && p != param {
			t.Errorf("%s takes HELIX_AUDIT_VERIFIER_KEY from %s, another function from %s", fn, p, param)
		}
		param = p
	}
	allowed := parameterPattern(t, tmpl, param)
	cases := []struct {
		name  string
		value string
		want  bool
	}{
		{"empty", "", true},
		{"a verifier key", vkey, true},
		{"two verifier keys, across a rotation", vkey + "," + vkey2, true},
		{"a list ending in a comma", vkey + ",", false},
		{"a verifier key and the private key", vkey + "," + skey, false},
		{"the private key", skey, false},
		{"a reference", "ssm:/helix/prod/audit-verifier-key", false},
		{"a name with a space", strings.Replace(vkey, "+", " +", 1), false},
		{"a key cut short", vkey[:len(vkey)-1], false},
	}
	for _, c := range cases {
		if got := allowed(c.value); got != c.want {
			t.Errorf("%s: %s allowed %v, want %v", param, c.name, got, c.want)
		}
	}
}

// Only the audit function signs: no other function (nor the Globals, which every function
// inherits) is given the signing key.
func TestOnlyAuditFunctionGetsSigningKey(t *testing.T) {
	tmpl := loadTemplate(t)
	if g, ok := tmpl["Globals"].(map[string]any); ok {
		if f, ok := g["Function"].(map[string]any); ok {
			if e, ok := f["Environment"].(map[string]any); ok {
				if vars, ok := e["Variables"].(map[string]any); ok {
					if _, set := vars["HELIX_AUDIT_SIGNING_KEY"]; set {
						t.Error("Globals.Function sets HELIX_AUDIT_SIGNING_KEY: every function would hold the signing key")
					}
				}
			}
		}
	}
	for _, fn := range resourcesOfType(t, tmpl, "AWS::Serverless::Function") {
		if _, set := functionEnv(t, tmpl, fn)["HELIX_AUDIT_SIGNING_KEY"]; set != (fn == "AuditFunction") {
			t.Errorf("%s: HELIX_AUDIT_SIGNING_KEY set is %v", fn, set)
		}
	}
}

// The audit function runs every minute from an EventBridge schedule (the Scheduled Event its
// handler accepts), each run ends before the next one is due, and Lambda does not retry a failed
// minute on top of the ones that come anyway.
func TestAuditFunctionSchedule(t *testing.T) {
	tmpl := loadTemplate(t)
	props := mapAt(t, tmpl, "Resources", "AuditFunction", "Properties")
	events := mapAt(t, props, "Events")
	var schedules []string
	for name, e := range events {
		ev, _ := e.(map[string]any)
		if ev["Type"] != "Schedule" {
			t.Errorf("event %s is a %v: the handler accepts scheduled events only", name, ev["Type"])
			continue
		}
		schedules = append(schedules, name)
		if s := mapAt(t, ev, "Properties")["Schedule"]; s != "rate(1 minute)" {
			t.Errorf("event %s runs on %v, want rate(1 minute)", name, s)
		}
	}
	if len(schedules) != 1 {
		t.Fatalf("AuditFunction has schedules %v, want exactly one", schedules)
	}
	if n := number(t, props["Timeout"]); n <= 0 || n >= 60 {
		t.Errorf("AuditFunction's Timeout is %v s: a run must end before the next minute's", props["Timeout"])
	}
	invoke := mapAt(t, props, "EventInvokeConfig")
	if n := number(t, invoke["MaximumRetryAttempts"]); n != 0 {
		t.Errorf("EventInvokeConfig.MaximumRetryAttempts is %v: a failed minute would run again alongside the next ones", n)
	}
	if n := number(t, invoke["MaximumEventAgeInSeconds"]); n != 60 {
		t.Errorf("EventInvokeConfig.MaximumEventAgeInSeconds is %v, want 60 (a minute not started by then is superseded)", n)
	}
}

// auditKeyPair is a fresh note key pair, as `make audit-key` prints one.
func auditKeyPair(t *testing.T) (skey, vkey string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "helix-audit-test")
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}

// functionEnv is a function's Environment.Variables (empty when it sets none).
func functionEnv(t *testing.T, tmpl map[string]any, fn string) map[string]any {
	t.Helper()
	props := mapAt(t, tmpl, "Resources", fn, "Properties")
	env, ok := props["Environment"].(map[string]any)
	if !ok {
		return map[string]any{}
	}
	return mapAt(t, env, "Variables")
}

// refParameter is the parameter a variable is set from with !Ref.
func refParameter(t *testing.T, env map[string]any, name string) string {
	t.Helper()
	v, ok := env[name].(map[string]any)
	ref, isString := v["Ref"].(string)
	if !ok || len(v) != 1 || !isString {
		t.Fatalf("%s is %v, not a !Ref of a parameter", name, env[name])
	}
	return ref
}

// parameterPattern reads a parameter's AllowedPattern and returns its test with CloudFormation's
// semantics: the whole value must match. (The patterns here use nothing that Java and Go regular
// expressions read differently.)
func parameterPattern(t *testing.T, tmpl map[string]any, param string) func(string) bool {
	t.Helper()
	p, ok := mapAt(t, tmpl, "Parameters", param)["AllowedPattern"].(string)
	if !ok {
		t.Fatalf("parameter %s has no AllowedPattern", param)
	}
	re, err := regexp.Compile(`^(?:` + p + `)$`)
	if err != nil {
		t.Fatalf("parameter %s: AllowedPattern %q: %v", param, p, err)
	}
	return re.MatchString
}

// number reads an integer the template writes as a number or a numeric string.
func number(t *testing.T, v any) int64 {
	t.Helper()
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%q is not an integer", s)
	}
	return n
}

package sam

// What a deploy needs from template.yaml beyond the schema: a resource per function the Makefile
// builds, the database through the proxy with the credentials from one secret, the migrations
// before any function's new code, an alarm set per function on the topic, the alarms on the
// audit function's EMF metrics under the names it writes, and the outputs operators read.

import (
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/infra/lambdarun"
	"github.com/helixhq/helix/shared/app/auditapp"
)

// makeFunctions reads FUNCTIONS from the Makefile: every function `make build` and `sam build`
// build.
func makeFunctions(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^FUNCTIONS := (.+)$`).FindSubmatch(src)
	if m == nil {
		t.Fatal("the Makefile has no FUNCTIONS line")
	}
	return strings.Fields(string(m[1]))
}

func logicalID(fn string) string { return strings.ToUpper(fn[:1]) + fn[1:] + "Function" }

// sharedBinaries reads the Makefile's explicit sam build rules, build-<LogicalId> building
// another function's binary: the streaming twins behind Function URLs (RouteStreamFunction builds
// functions/route). Every other resource is built by the pattern rule, <Name>Function from
// functions/<name>.
func sharedBinaries(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^build-([A-Za-z]+Function):\n\t\$\(call build_function,([a-z]+),\$\(ARTIFACTS_DIR\)/bootstrap\)$`).FindAllSubmatch(src, -1) {
		out[string(m[1])] = string(m[2])
	}
	return out
}

// binaryOf is the functions/ folder whose binary `make build-<id>` builds for resource id.
func binaryOf(id string, shared map[string]string) string {
	if fn, ok := shared[id]; ok {
		return fn
	}
	return strings.ToLower(strings.TrimSuffix(id, "Function"))
}

// Every function in functions/ is in the Makefile's FUNCTIONS and deployed under its name; every
// function resource is built by the Makefile, from one of them (a streaming twin shares its
// binary), and logs to a log group of the stack's.
func TestEveryFunctionIsDeployed(t *testing.T) {
	tmpl := loadTemplate(t)
	fns := makeFunctions(t)
	dirs, err := os.ReadDir("../../functions")
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, d := range dirs {
		if d.IsDir() {
			onDisk = append(onDisk, d.Name())
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(fns)), onDisk) {
		t.Errorf("Makefile FUNCTIONS %v, functions/ has %v", fns, onDisk)
	}
	resources := resourcesOfType(t, tmpl, "AWS::Serverless::Function")
	for _, fn := range fns {
		if !slices.Contains(resources, logicalID(fn)) {
			t.Errorf("functions/%s is not deployed: template.yaml has no %s", fn, logicalID(fn))
		}
	}
	shared := sharedBinaries(t)
	if len(shared) == 0 {
		t.Error("the Makefile has no explicit build rule for the streaming twins (build-RouteStreamFunction ...)")
	}
	for id, fn := range shared {
		if !slices.Contains(resources, id) {
			t.Errorf("the Makefile builds %s (from functions/%s), which template.yaml does not have", id, fn)
		}
		if id == logicalID(fn) {
			t.Errorf("build-%s: the pattern rule builds it already", id)
		}
	}
	for _, id := range resources {
		if fn := binaryOf(id, shared); !slices.Contains(fns, fn) {
			t.Errorf("%s: `make build-%s` would build functions/%s, which is not in FUNCTIONS", id, id, fn)
		}
		props := mapAt(t, tmpl, "Resources", id, "Properties")
		if mapAt(t, tmpl, "Resources", id, "Metadata")["BuildMethod"] != "makefile" || props["CodeUri"] != "." {
			t.Errorf("%s is not built by the Makefile (BuildMethod makefile, CodeUri .)", id)
		}
		logs, ok := mapAt(t, props, "LoggingConfig")["LogGroup"].(map[string]any)
		if !ok || resourceType(t, tmpl, logs["Ref"]) != "AWS::Logs::LogGroup" {
			t.Errorf("%s logs to %v, want a log group of the stack's (with its retention)", id, logs)
		}
	}
}

// A function behind a Function URL streams (RESPONSE_STREAM) and starts the Function URL
// handler (HELIX_LAMBDA_ENTRY=function_url); no other does. Its URL is an output, it is open
// (the function verifies the token: it can, as the JWKS settings reach every function), and it
// shares the environment of the function whose binary it runs, so the two answer alike. (Its
// CORS: cors_test.go.)
func TestStreamingFunctionURLs(t *testing.T) {
	tmpl := loadTemplate(t)
	shared := sharedBinaries(t)
	outputs := mapAt(t, tmpl, "Outputs")
	globals := mapAt(t, tmpl, "Globals", "Function", "Environment", "Variables")
	for _, v := range []string{"HELIX_JWT_JWKS_URL", "HELIX_JWT_ISSUER", "HELIX_JWT_AUDIENCE"} {
		if _, ok := globals[v].(map[string]any); !ok {
			t.Errorf("Globals do not pass %s from a parameter: a Function URL's function could not verify tokens", v)
		}
	}
	var streaming []string
	for _, id := range resourcesOfType(t, tmpl, "AWS::Serverless::Function") {
		props := mapAt(t, tmpl, "Resources", id, "Properties")
		env, _ := props["Environment"].(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		urlConfig, hasURL := props["FunctionUrlConfig"].(map[string]any)
		if entry := vars["HELIX_LAMBDA_ENTRY"]; hasURL != (entry == "function_url") {
			t.Errorf("%s: FunctionUrlConfig %v but HELIX_LAMBDA_ENTRY %v: the handler would not match its events", id, hasURL, entry)
		}
		if !hasURL {
			continue
		}
		streaming = append(streaming, id)
		if urlConfig["InvokeMode"] != "RESPONSE_STREAM" || urlConfig["AuthType"] != "NONE" {
			t.Errorf("%s: InvokeMode %v, AuthType %v; want RESPONSE_STREAM, NONE", id, urlConfig["InvokeMode"], urlConfig["AuthType"])
		}
		found := false
		for _, o := range outputs {
			v, _ := o.(map[string]any)["Value"].(map[string]any)
			if att, _ := v["Fn::GetAtt"].([]any); slices.Equal(att, []any{id + "Url", "FunctionUrl"}) {
				found = true
			}
		}
		if !found {
			t.Errorf("no output gives %s's URL (!GetAtt %sUrl.FunctionUrl)", id, id)
		}
		twin, ok := shared[id]
		if !ok {
			t.Errorf("%s has no build rule of its own in the Makefile naming its binary", id)
			continue
		}
		twinVars := mapAt(t, tmpl, "Resources", logicalID(twin), "Properties", "Environment", "Variables")
		delete(vars, "HELIX_LAMBDA_ENTRY")
		if !reflect.DeepEqual(vars, twinVars) {
			missing, extra := setDiff(slices.Collect(maps.Keys(vars)), slices.Collect(maps.Keys(twinVars)))
			t.Errorf("%s's environment differs from %s's (missing %v, extra %v, or a value)", id, logicalID(twin), missing, extra)
		}
	}
	if !slices.Equal(streaming, []string{"ChatStreamFunction", "RouteStreamFunction"}) {
		t.Errorf("functions behind streaming Function URLs: %v, want the chat and route twins", streaming)
	}
}

// A budget hold outlives the invocation that took it: HELIX_RESERVATION_TTL is at least the
// Timeout of every function that sets it (the streaming twins' long ones included). A hold
// expires TTL after it was taken, never before the invocation started, so a TTL equal to the
// Timeout (the synthesis function's 5m and 300 s) already ends no earlier than the invocation.
func TestReservationsOutliveInvocations(t *testing.T) {
	tmpl := loadTemplate(t)
	globalTimeout := number(t, mapAt(t, tmpl, "Globals", "Function")["Timeout"])
	for _, id := range resourcesOfType(t, tmpl, "AWS::Serverless::Function") {
		props := mapAt(t, tmpl, "Resources", id, "Properties")
		env, _ := props["Environment"].(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		ttl, ok := vars["HELIX_RESERVATION_TTL"].(string)
		if !ok {
			continue
		}
		timeout := globalTimeout
		if v, ok := props["Timeout"]; ok {
			timeout = number(t, v)
		}
		if d, err := time.ParseDuration(ttl); err != nil || d < time.Duration(timeout)*time.Second {
			t.Errorf("%s: HELIX_RESERVATION_TTL %s (%v) must be at least its Timeout, %d s", id, ttl, err, timeout)
		}
	}
}

func resourceType(t *testing.T, tmpl map[string]any, id any) string {
	name, _ := id.(string)
	r, _ := mapAt(t, tmpl, "Resources")[name].(map[string]any)
	typ, _ := r["Type"].(string)
	return typ
}

// The database settings come from the proxy endpoint and one secret's two fields; no function
// gets a connection string, and each function may read that secret.
func TestDatabaseThroughTheProxy(t *testing.T) {
	tmpl := loadTemplate(t)
	env := mapAt(t, tmpl, "Globals", "Function", "Environment", "Variables")
	if _, ok := env["DATABASE_URL"]; ok {
		t.Error("Globals sets DATABASE_URL: the functions connect by parts (HELIX_DB_*)")
	}
	if refParameter(t, env, "HELIX_DB_HOST") != "DatabaseEndpoint" || env["HELIX_DB_EXEC_MODE"] != "exec" {
		t.Errorf("HELIX_DB_HOST %v, HELIX_DB_EXEC_MODE %v: want the proxy endpoint, exec mode", env["HELIX_DB_HOST"], env["HELIX_DB_EXEC_MODE"])
	}
	for v, field := range map[string]string{"HELIX_DB_USER": "username", "HELIX_DB_PASSWORD": "password"} {
		sub, _ := env[v].(map[string]any)["Fn::Sub"].(string)
		if sub != "secretsmanager:${DatabaseSecretArn}#"+field {
			t.Errorf("%s = %v, want a reference to the secret's %s field", v, env[v], field)
		}
	}
	if fn := mapAt(t, tmpl, "Resources", "ChatFunction", "Properties", "Environment", "Variables"); refParameter(t, fn, "HELIX_DB_LISTEN_HOST") != "DatabaseListenEndpoint" {
		t.Error("the chat function's LISTEN host is not DatabaseListenEndpoint")
	}
	for _, id := range resourcesOfType(t, tmpl, "AWS::Serverless::Function") {
		found := false
		for _, pol := range mapAt(t, tmpl, "Resources", id, "Properties")["Policies"].([]any) {
			doc, _ := pol.(map[string]any)
			stmts, _ := doc["Statement"].([]any)
			for _, st := range stmts {
				st, _ := st.(map[string]any)
				res, _ := st["Resource"].([]any)
				if st["Action"] == "secretsmanager:GetSecretValue" && slices.ContainsFunc(res, func(r any) bool {
					m, _ := r.(map[string]any)
					return m["Ref"] == "DatabaseSecretArn"
				}) {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("%s may not read DatabaseSecretArn: it could not start", id)
		}
	}
}

// The migrations are a custom resource on the migrate function, updated with each new version
// of it, and every other function waits for it.
func TestMigrationsRunOncePerDeployBeforeTheFunctions(t *testing.T) {
	tmpl := loadTemplate(t)
	mig := mapAt(t, tmpl, "Resources", "DatabaseMigrations")
	if mig["Type"] != "Custom::DatabaseMigrations" {
		t.Fatalf("DatabaseMigrations is a %v", mig["Type"])
	}
	props := mapAt(t, mig, "Properties")
	if tok, _ := props["ServiceToken"].(map[string]any)["Fn::GetAtt"].([]any); !slices.Equal(tok, []any{"MigrateFunction", "Arn"}) {
		t.Errorf("ServiceToken %v, want the migrate function's ARN", props["ServiceToken"])
	}
	if v, _ := props["CodeVersion"].(map[string]any); v["Ref"] != "MigrateFunction.Version" {
		t.Errorf("CodeVersion %v, want !Ref MigrateFunction.Version (a new version each deploy that changes the code)", props["CodeVersion"])
	}
	if mapAt(t, tmpl, "Resources", "MigrateFunction", "Properties")["AutoPublishAlias"] == nil {
		t.Error("MigrateFunction publishes no versions (AutoPublishAlias)")
	}
	for _, id := range resourcesOfType(t, tmpl, "AWS::Serverless::Function") {
		if id == "MigrateFunction" {
			continue
		}
		if mapAt(t, tmpl, "Resources", id)["DependsOn"] != "DatabaseMigrations" {
			t.Errorf("%s does not wait for DatabaseMigrations: its new code could run on the old schema", id)
		}
	}
}

// Errors and throttles of every function, and the queue's and the audit minute's health, reach
// the topic.
func TestAlarms(t *testing.T) {
	tmpl := loadTemplate(t)
	type key struct{ namespace, metric, dim string }
	alarms := map[key]map[string]any{}
	for _, id := range resourcesOfType(t, tmpl, "AWS::CloudWatch::Alarm") {
		p := mapAt(t, tmpl, "Resources", id, "Properties")
		for _, actions := range []string{"AlarmActions", "OKActions"} {
			list, _ := p[actions].([]any)
			if len(list) != 1 || list[0].(map[string]any)["Ref"] != "AlarmTopic" {
				t.Errorf("%s: %s %v, want the AlarmTopic", id, actions, p[actions])
			}
		}
		ns := p["Namespace"]
		if m, ok := ns.(map[string]any); ok {
			ns = m["Fn::Sub"]
		}
		dims, _ := p["Dimensions"].([]any)
		dim := ""
		if len(dims) > 0 {
			d := dims[0].(map[string]any)
			switch v := d["Value"].(type) {
			case string:
				dim = v
			case map[string]any: // !Ref X names X; !GetAtt X.Y names X.Y
				if ref, ok := v["Ref"].(string); ok {
					dim = ref
				} else if att, ok := v["Fn::GetAtt"].([]any); ok && len(att) == 2 {
					dim = att[0].(string) + "." + att[1].(string)
				}
			}
		}
		alarms[key{ns.(string), p["MetricName"].(string), dim}] = p
	}
	for _, id := range resourcesOfType(t, tmpl, "AWS::Serverless::Function") {
		for _, metric := range []string{"Errors", "Throttles"} {
			if alarms[key{"AWS/Lambda", metric, id}] == nil {
				t.Errorf("no %s alarm on %s", metric, id)
			}
		}
		if d := alarms[key{"AWS/Lambda", "Duration", id}]; id != "MigrateFunction" && (d == nil || d["ExtendedStatistic"] != "p99") {
			t.Errorf("no p99 Duration alarm on %s", id)
		}
	}
	if alarms[key{"AWS/SQS", "ApproximateNumberOfMessagesVisible", "SynthesisDeadLetterQueue.QueueName"}] == nil {
		t.Error("no alarm on the dead-letter queue's depth")
	}
	// The EMF metrics: the namespace the functions write (HELIX_METRICS_NAMESPACE), the names the
	// audit function emits.
	ns := mapAt(t, tmpl, "Globals", "Function", "Environment", "Variables")["HELIX_METRICS_NAMESPACE"].(map[string]any)["Fn::Sub"].(string)
	for _, metric := range []string{auditapp.MetricOutboxBacklog, auditapp.MetricOutboxOldestAge, auditapp.MetricAuditIntegrationLag} {
		if alarms[key{ns, metric, "audit"}] == nil {
			t.Errorf("no alarm on %s/%s (function=audit)", ns, metric)
		}
	}
	if lag := alarms[key{ns, auditapp.MetricAuditIntegrationLag, "audit"}]; lag != nil && lag["TreatMissingData"] != "breaching" {
		t.Error("the integration lag alarm does not fire when the audit minute stops reporting")
	}
}

func TestOutputs(t *testing.T) {
	outs := mapAt(t, loadTemplate(t), "Outputs")
	for _, name := range []string{"ApiUrl", "RouteStreamUrl", "ChatStreamUrl", "SynthesisQueueUrl", "SynthesisDeadLetterQueueUrl", "AlarmTopicArn"} {
		if _, ok := outs[name]; !ok {
			t.Errorf("no output %s (have %v)", name, slices.Sorted(maps.Keys(outs)))
		}
	}
}

// samconfig.toml has dev and prod, and every parameter it overrides exists in the template (a
// renamed parameter would otherwise be refused only at deploy time).
func TestSamconfigNamesTemplateParameters(t *testing.T) {
	src, err := os.ReadFile("../../samconfig.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"dev", "prod"} {
		if !strings.Contains(string(src), "["+env+".deploy.parameters]") {
			t.Errorf("samconfig.toml has no %s environment", env)
		}
	}
	params := mapAt(t, loadTemplate(t), "Parameters")
	overrides := regexp.MustCompile(`(?m)^\s*"([A-Za-z0-9]+)=[^"]*",?\s*$`).FindAllSubmatch(src, -1)
	if len(overrides) == 0 {
		t.Fatal("samconfig.toml overrides no parameter")
	}
	for _, m := range overrides {
		if _, ok := params[string(m[1])]; !ok {
			t.Errorf("samconfig.toml sets %s, which template.yaml does not declare", m[1])
		}
	}
}

// make invoke and the bench run each function with its template memory size and timeout
// (infra/lambdarun keeps a copy: Lambda's environment variables and deadlines depend on them),
// and a streaming twin's events with the twin's.
func TestLocalRunnerMatchesTemplateSizes(t *testing.T) {
	tmpl := loadTemplate(t)
	globals := mapAt(t, tmpl, "Globals", "Function")
	shared := sharedBinaries(t)
	for _, id := range resourcesOfType(t, tmpl, "AWS::Serverless::Function") {
		props := mapAt(t, tmpl, "Resources", id, "Properties")
		mem, timeout := globals["MemorySize"], globals["Timeout"]
		if v, ok := props["MemorySize"]; ok {
			mem = v
		}
		if v, ok := props["Timeout"]; ok {
			timeout = v
		}
		fn := binaryOf(id, shared)
		got := lambdarun.FunctionSettings(fn)
		if _, twin := shared[id]; twin {
			var ok bool
			if got, ok = lambdarun.StreamSettings(fn); !ok {
				t.Errorf("%s: infra/lambdarun has no streaming settings for %s", id, fn)
				continue
			}
		}
		if int64(got.MemoryMB) != number(t, mem) || int64(got.Timeout.Seconds()) != number(t, timeout) {
			t.Errorf("%s (functions/%s): infra/lambdarun runs it with %d MB and %s, the template gives %v MB and %v s", id, fn, got.MemoryMB, got.Timeout, mem, timeout)
		}
	}
}

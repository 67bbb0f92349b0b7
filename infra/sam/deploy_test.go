package sam

// What a deploy needs from template.yaml beyond the schema: a resource per function the Makefile
// builds, the database through the proxy with the credentials from one secret, the migrations
// before any function's new code, an alarm set per function on the topic, the alarms on the
// audit function's EMF metrics under the names it writes, and the outputs operators read.

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

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
	var want []string
	for _, fn := range fns {
		want = append(want, logicalID(fn))
	}
	slices.Sort(want)
	if got := resourcesOfType(t, tmpl, "AWS::Serverless::Function"); !slices.Equal(got, want) {
		t.Errorf("template functions %v, want %v", got, want)
	}
	for _, id := range want {
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
	for _, name := range []string{"ApiUrl", "SynthesisQueueUrl", "SynthesisDeadLetterQueueUrl", "AlarmTopicArn"} {
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
// (infra/lambdarun keeps a copy: Lambda's environment variables and deadlines depend on them).
func TestLocalRunnerMatchesTemplateSizes(t *testing.T) {
	tmpl := loadTemplate(t)
	globals := mapAt(t, tmpl, "Globals", "Function")
	for _, fn := range makeFunctions(t) {
		props := mapAt(t, tmpl, "Resources", logicalID(fn), "Properties")
		mem, timeout := globals["MemorySize"], globals["Timeout"]
		if v, ok := props["MemorySize"]; ok {
			mem = v
		}
		if v, ok := props["Timeout"]; ok {
			timeout = v
		}
		got := lambdarun.FunctionSettings(fn)
		if int64(got.MemoryMB) != number(t, mem) || int64(got.Timeout.Seconds()) != number(t, timeout) {
			t.Errorf("%s: infra/lambdarun runs it with %d MB and %s, the template gives %v MB and %v s", fn, got.MemoryMB, got.Timeout, mem, timeout)
		}
	}
}

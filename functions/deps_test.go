package functions_test

// These tests keep the layering of DESIGN.md from rotting: what each Lambda binary links, and
// which way the imports between Helix's packages point (transport → use cases → domain ←
// adapters). They read the real import graph with `go list`, so a new import that breaks a rule
// fails here, not in review.

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/helixhq/helix/"

// The role of every package under shared/. A package missing here fails TestEveryPackageHasARole,
// so a new one must be given a role (and with it the rules below) when it is added.
var roles = map[string]string{
	// kernel: value types and error codes every layer may use; they import nothing of Helix.
	"shared/fault": "kernel", "shared/ident": "kernel", "shared/money": "kernel", "shared/groupcommit": "kernel",

	// platform: configuration, secrets and token verification; they import only the kernel.
	"shared/config": "platform", "shared/secrets": "platform", "shared/auth": "platform",

	// domain: rules, use cases and the ports they need; no I/O of their own, no transport.
	"shared/access": "domain", "shared/approval": "domain", "shared/breaker": "domain",
	"shared/budget": "domain", "shared/catalog": "domain", "shared/execute": "domain",
	"shared/intelligence": "domain", "shared/llm": "domain", "shared/oplog": "domain",
	"shared/router": "domain", "shared/toggles": "domain", "shared/ttlcache": "domain",
	"shared/chat": "domain", "shared/memory": "domain", "shared/synthesis": "domain",
	"shared/stepup": "domain", "shared/structured": "domain", "shared/auditlog": "domain",
	"shared/outbox": "domain", "shared/alerts": "domain", "shared/optimize": "domain", "shared/monitoring": "domain",

	// adapters: Postgres and the model providers, implementing the domain's ports.
	"shared/postgres": "adapter", "shared/llm/anthropic": "adapter", "shared/llm/gemini": "adapter",
	"shared/llm/openaicompat": "adapter", "shared/llm/offline": "adapter",
	"shared/llm/internal/wire": "adapter", "shared/llm/providers": "adapter",
	"shared/queue/sqsqueue": "adapter", "shared/queue/inproc": "adapter", "shared/postgres/chatstore": "adapter", "shared/postgres/memorystore": "adapter",
	"shared/postgres/auditstore": "adapter", "shared/discord": "adapter",
	"shared/postgres/alertstore": "adapter", "shared/postgres/monitorstore": "adapter",
	"shared/postgres/optimizestore": "adapter", "shared/emf": "adapter",

	// transport: HTTP and Lambda events in, domain calls out.
	"shared/httpapi": "transport", "shared/httpapi/budgetapi": "transport",
	"shared/httpapi/execapi": "transport", "shared/httpapi/intelapi": "transport",
	"shared/httpapi/openaiapi": "transport", "shared/httpapi/routeapi": "transport",
	"shared/httpapi/chatapi": "transport", "shared/httpapi/auditapi": "transport",
	"shared/httpapi/alertapi": "transport", "shared/httpapi/monitorapi": "transport",
	"shared/httpapi/recommendapi": "transport", "shared/httpapi/openapi": "transport",
	"shared/lambdaio": "transport", "shared/lambdaio/sqsbatch": "transport",

	// wiring: cold start and the per-function assembly; the only code that knows every layer.
	"shared/app": "wiring", "shared/app/httpapp": "wiring", "shared/app/pipeline": "wiring",
	"shared/app/routeapp": "wiring", "shared/app/budgetapp": "wiring",
	"shared/app/chatapp": "wiring", "shared/app/synthesisapp": "wiring", "shared/app/auditapp": "wiring",
	"shared/app/optimizeapp": "wiring",

	// test support: imported by _test files only (TestFunctionsLinkOnlyWhatTheyServe checks that
	// no binary links them).
	"shared/apitest": "testsupport", "shared/lambdatest": "testsupport", "shared/pgtest": "testsupport",
	"shared/app/routeapp/routeapptest": "testsupport", "shared/app/auditapp/auditapptest": "testsupport", "shared/llm/llmtest": "testsupport",
	"shared/queue/sqstest": "testsupport", "shared/discord/discordtest": "testsupport",
	"shared/httpapi/openapi/openapitest": "testsupport",
}

// Which roles a role may import (besides itself for transport and wiring, and the standard
// library and third-party modules, which have rules of their own below).
var mayImport = map[string][]string{
	"kernel":      {},
	"platform":    {"kernel"},
	"domain":      {"kernel", "domain"},
	"adapter":     {"kernel", "platform", "domain", "adapter"},
	"transport":   {"kernel", "platform", "domain", "transport"},
	"wiring":      {"kernel", "platform", "domain", "adapter", "transport", "wiring"},
	"testsupport": {"kernel", "platform", "domain", "adapter", "transport", "wiring", "testsupport"},
}

// Third-party modules only some roles may import: Lambda's event types belong to transport and
// the functions' mains; database drivers and provider SDKs to adapters.
var externalOnly = map[string][]string{
	"github.com/aws/aws-lambda-go":               {"transport", "wiring", "testsupport"},
	"github.com/awslabs/aws-lambda-go-api-proxy": {"transport", "testsupport"},
	"github.com/jackc/pgx":                       {"adapter", "wiring", "testsupport"},
	"github.com/anthropics/anthropic-sdk-go":     {"adapter", "testsupport"},
	"github.com/sashabaranov/go-openai":          {"adapter", "testsupport"},
	"google.golang.org/genai":                    {"adapter", "testsupport"},
	"github.com/aws/aws-sdk-go-v2":               {"platform", "adapter", "testsupport"},
	"github.com/lestrrat-go/jwx":                 {"platform", "testsupport"},
	"github.com/pressly/goose":                   {},
}

// What each function's binary must not link, beyond what no function may (test support, the
// migrations, the dev tools). The budget function serves budgets: no model calls, no routing.
var mustNotLink = map[string][]string{
	"budget": {
		"shared/execute", "shared/llm", "shared/intelligence", "shared/router", "shared/app/pipeline",
		"shared/app/routeapp", "shared/httpapi/routeapi", "shared/httpapi/openaiapi",
		"shared/httpapi/intelapi", "shared/httpapi/execapi", "shared/chat", "shared/synthesis",
		"shared/httpapi/chatapi",
	},
	"route": {"shared/app/budgetapp", "shared/httpapi/budgetapi", "shared/httpapi/chatapi", "shared/app/chatapp"},
	// Chat serves sessions and memory: not the other APIs, not the synthesis consumer.
	"chat": {
		"shared/httpapi/routeapi", "shared/httpapi/openaiapi", "shared/httpapi/intelapi",
		"shared/httpapi/budgetapi", "shared/intelligence", "shared/app/synthesisapp", "shared/queue/inproc",
	},
	// Synthesis is an SQS consumer: no HTTP API at all (httpOnly applies too), no chat use case.
	"synthesis": {"shared/httpapi", "shared/chat", "shared/intelligence", "shared/queue/inproc"},
	// Migrate applies the schema: no HTTP, no models, no use case, no queue, no Discord.
	"migrate": {"shared/httpapi", "shared/llm", "shared/execute", "shared/chat", "shared/intelligence",
		"shared/app/pipeline", "shared/discord", "shared/queue/sqsqueue", "shared/queue/inproc", "shared/postgres/chatstore"},
	// Audit is the schedule's housekeeping: no HTTP, and it runs no operation (no pipeline).
	"audit": {"shared/httpapi", "shared/chat", "shared/intelligence", "shared/queue/inproc", "shared/app/pipeline",
		"shared/app/routeapp", "shared/app/chatapp", "shared/app/synthesisapp"},
}

// mayLink lifts noFunctionLinks for one function: migrate is the deploy's migration step, the
// one binary that carries the migrations and goose.
var mayLink = map[string][]string{
	"migrate": {"infra/migrations", "github.com/pressly/goose"},
}

// noFunctionLinks applies to every function.
var noFunctionLinks = []string{
	"shared/apitest", "shared/lambdatest", "shared/pgtest", "shared/app/routeapp/routeapptest",
	"shared/llm/llmtest", "shared/queue/sqstest", "shared/discord/discordtest", "shared/httpapi/openapi/openapitest",
	"infra", "github.com/pressly/goose",
}

// httpOnly may be linked only by functions that serve HTTP (whose main uses app/httpapp):
// an event-driven function starts without the HTTP server, routes or token verification.
var httpOnly = []string{"shared/httpapi", "shared/auth", "shared/app/httpapp", "github.com/lestrrat-go/jwx"}

// goList runs go list in the module root and returns its output lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// imports maps every non-test package of the module (relative path) to its direct imports.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, l := range goList(t, "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...") {
		f := strings.Fields(l)
		out[strings.TrimPrefix(f[0], module)] = f[1:]
	}
	return out
}

// matches reports whether pkg (a full import path, or one relative to the module) is rule or
// below it.
func matches(pkg, rule string) bool {
	pkg = strings.TrimPrefix(pkg, module)
	return pkg == rule || strings.HasPrefix(pkg, rule+"/")
}

func functions(t *testing.T) []string {
	var fns []string
	for _, p := range goList(t, "./functions/...") {
		if name, ok := strings.CutPrefix(p, module+"functions/"); ok && !strings.Contains(name, "/") {
			fns = append(fns, name)
		}
	}
	if len(fns) == 0 {
		t.Fatal("no functions found under functions/")
	}
	return fns
}

func TestEveryPackageHasARole(t *testing.T) {
	for pkg := range imports(t) {
		if strings.HasPrefix(pkg, "shared/") {
			if _, ok := roles[pkg]; !ok {
				t.Errorf("%s has no role in functions/deps_test.go: give it one, and with it its import rules", pkg)
			}
		}
	}
	// A rule naming a package that no longer exists would pass vacuously.
	all := imports(t)
	for pkg := range roles {
		if _, ok := all[pkg]; !ok {
			t.Errorf("roles names %s, which is not a package (renamed?)", pkg)
		}
	}
	for fn, list := range mustNotLink {
		for _, pkg := range list {
			if _, ok := all[pkg]; !ok {
				t.Errorf("mustNotLink[%s] names %s, which is not a package (renamed?)", fn, pkg)
			}
		}
	}
}

func TestImportsPointOneWay(t *testing.T) {
	for pkg, deps := range imports(t) {
		role, ok := roles[pkg]
		if !ok {
			continue // outside shared/ (functions, infra) or reported by TestEveryPackageHasARole
		}
		for _, dep := range deps {
			if rel, internal := strings.CutPrefix(dep, module); internal {
				depRole, ok := roles[rel]
				switch {
				case ok:
				case strings.HasPrefix(rel, "shared/"):
					continue // reported by TestEveryPackageHasARole
				case role == "testsupport" && rel == "infra/migrations":
					continue // test databases are migrated like real ones
				default:
					t.Errorf("%s (%s) imports %s, which is not a shared package", pkg, role, rel)
					continue
				}
				if !slices.Contains(mayImport[role], depRole) {
					t.Errorf("%s (%s) imports %s (%s): a %s package may import only %v", pkg, role, rel, depRole, role, mayImport[role])
				}
				continue
			}
			for mod, allowed := range externalOnly {
				if matches(dep, mod) && !slices.Contains(allowed, role) {
					t.Errorf("%s (%s) imports %s, which only %v packages may", pkg, role, dep, allowed)
				}
			}
		}
	}
}

func TestFunctionsLinkOnlyWhatTheyServe(t *testing.T) {
	all := imports(t)
	for _, fn := range functions(t) {
		t.Run(fn, func(t *testing.T) {
			linked := goList(t, "-deps", "-f", "{{.ImportPath}}", "./functions/"+fn)
			deny := append(slices.Clone(noFunctionLinks), mustNotLink[fn]...)
			if !slices.Contains(all["functions/"+fn], module+"shared/app/httpapp") {
				deny = append(deny, httpOnly...)
			}
			var bad []string
			for _, pkg := range linked {
				for _, rule := range deny {
					if matches(pkg, rule) && !slices.ContainsFunc(mayLink[fn], func(ok string) bool { return matches(pkg, ok) }) {
						bad = append(bad, strings.TrimPrefix(pkg, module)+" (rule: "+rule+")")
					}
				}
			}
			sort.Strings(bad)
			for _, b := range bad {
				t.Errorf("functions/%s links %s", fn, b)
			}
		})
	}
}

// The rules can fail: a package graph with a leak is reported. (Guards against a matcher that
// never matches.)
func TestRulesCatchALeak(t *testing.T) {
	if !matches(module+"shared/llm/gemini", "shared/llm") || matches(module+"shared/llmx", "shared/llm") {
		t.Fatal("matches is wrong")
	}
	if slices.Contains(mayImport["domain"], "transport") || slices.Contains(mayImport["platform"], "domain") {
		t.Fatal("the role table allows what DESIGN.md forbids")
	}
}

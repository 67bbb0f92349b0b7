package docscheck

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/intelligence"
	"github.com/helixhq/helix/shared/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// readmeToFix lists README.md's examples that cannot run as pasted (placeholders such as <id>,
// commands only a person at a terminal can run), by "<heading> #<n>": the n-th runnable block
// under that heading. The runner skips them; the test fails when an entry matches no block, so
// the list shrinks as README is fixed (mark such blocks <!-- norun --> or make them runnable).
var readmeToFix = map[string]string{}

// devURL is the address the examples are written for; the runner points it at its own server.
const devURL = "http://127.0.0.1:3000"

// TestExamples runs every ```sh block of README.md and docs/**/*.md, one bash process per file,
// against a dev server of its own, failing on a non-zero exit and on any HTTP error status an
// example does not declare (# expect: <status>).
func TestExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the examples take a dev server and about a minute and a half")
	}
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the docs check runs the examples with %s, which is not on PATH: install it (apt-get install %s)", tool, tool)
		}
	}
	root := moduleRoot(t)
	files := markdownFiles(t, root)
	bin := buildTools(t, root)
	base := startDevServer(t, bin, pg.NewDatabase(t))

	used := map[string]bool{}
	for _, rel := range files {
		doc := parseMarkdown(t, filepath.Join(root, rel))
		t.Run(rel, func(t *testing.T) {
			var run []block
			for _, b := range doc {
				if rel == "README.md" {
					if reason, ok := readmeToFix[b.id]; ok {
						used[b.id] = true
						t.Logf("skipping README block %q (line %d), the lead must fix it: %s", b.id, b.line, reason)
						continue
					}
				}
				if b.norun {
					continue
				}
				run = append(run, b)
			}
			if len(run) == 0 {
				return
			}
			runBlocks(t, rel, run, bin, base)
		})
	}
	for id := range readmeToFix {
		if !used[id] {
			t.Errorf("readmeToFix names %q, which is no runnable block of README.md any more: remove it from the list", id)
		}
	}
}

// block is one fenced shell example.
type block struct {
	id    string // "<heading> #<n>"
	line  int    // of the opening fence
	norun bool
	text  string
}

var (
	fenceRe   = regexp.MustCompile("^\\s*(```+|~~~+)\\s*([A-Za-z0-9_+-]*)")
	headingRe = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	norunRe   = regexp.MustCompile(`^<!--\s*norun\b.*-->\s*$`)
	expectRe  = regexp.MustCompile(`^\s*#\s*expect:\s*([0-9]{3}(?:[ ,]+[0-9]{3})*)\s*$`)
)

// runnable are the info strings of the blocks the runner runs.
var runnable = map[string]bool{"sh": true, "bash": true, "shell": true}

// parseMarkdown returns the shell blocks of a file, in order.
func parseMarkdown(t *testing.T, path string) []block {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		out      []block
		heading  string
		count    = map[string]int{}
		prev     string // the last non-blank line outside a fence
		inFence  string // the closing fence we wait for
		cur      *block
		body     strings.Builder
		fenceLen int
	)
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		if inFence != "" {
			trimmed := strings.TrimSpace(line)
			if strings.HasPrefix(trimmed, inFence[:1]) && len(trimmed) >= fenceLen && strings.Trim(trimmed, inFence[:1]) == "" {
				if cur != nil {
					cur.text = body.String()
					out = append(out, *cur)
				}
				inFence, cur = "", nil
				body.Reset()
				continue
			}
			if cur != nil {
				body.WriteString(line)
				body.WriteByte('\n')
			}
			continue
		}
		if m := fenceRe.FindStringSubmatch(line); m != nil {
			inFence, fenceLen = m[1], len(m[1])
			if runnable[m[2]] {
				count[heading]++
				cur = &block{id: fmt.Sprintf("%s #%d", heading, count[heading]), line: i + 1, norun: norunRe.MatchString(prev)}
			}
			continue
		}
		if m := headingRe.FindStringSubmatch(line); m != nil {
			heading = m[1]
		}
		if strings.TrimSpace(line) != "" {
			prev = strings.TrimSpace(line)
		}
	}
	if inFence != "" {
		t.Fatalf("%s: a code block is never closed", path)
	}
	return out
}

// prelude defines what the examples assume: `make -s token USER=… [ROLE=…] [TTL=…]` (and
// audit-check, audit-key) backed by the real commands, and a curl that records and checks each
// response's status.
const prelude = `set -euo pipefail
shopt -s inherit_errexit
__DOCS_BLOCK="(prelude)"
trap 'echo "docscheck: exit $? in [$__DOCS_BLOCK] at: $BASH_COMMAND" >&2' ERR

__docs_block() {
  if [[ -e $__DOCS_EXPECT ]]; then
    __docs_fail "'# expect: $(<"$__DOCS_EXPECT")' is followed by no curl"
    rm -f "$__DOCS_EXPECT"
  fi
  __DOCS_BLOCK=$1
}

__docs_fail() {
  printf '[%s] %s\n' "$__DOCS_BLOCK" "$1" >> "$__DOCS_FAIL"
  printf 'docscheck: [%s] %s\n' "$__DOCS_BLOCK" "$1" >&2
}

# '# expect: 404' before a curl line: that curl must answer 404 (several statuses: any of them).
__docs_expect() { printf '%s' "$*" > "$__DOCS_EXPECT"; }

curl() {
  local hdr rc=0 status expect=""
  hdr=$(mktemp "$__DOCS_TMP/headers.XXXXXX")
  command curl --max-time 120 -D "$hdr" "$@" || rc=$?
  status=$(grep -a '^HTTP/' "$hdr" | tail -n 1 | cut -d ' ' -f 2 || true)
  rm -f "$hdr"
  if [[ -e $__DOCS_EXPECT ]]; then
    expect=$(<"$__DOCS_EXPECT")
    rm -f "$__DOCS_EXPECT"
  fi
  local url=""
  for a in "$@"; do [[ $a == http* ]] && url=$a; done
  printf '%s\t%s\t%s\t%s\n' "$__DOCS_BLOCK" "${status:-none}" "${expect:--}" "$url" >> "$__DOCS_LOG"
  if (( rc != 0 )); then
    __docs_fail "curl $url exited $rc"
    return "$rc"
  fi
  if [[ -n $expect ]]; then
    if [[ " ${expect//,/ } " != *" $status "* ]]; then
      __docs_fail "curl $url answered $status; the example expects $expect"
      return 1
    fi
  elif [[ -z $status ]] || (( status >= 400 )); then
    __docs_fail "curl $url answered ${status:-nothing} (an example meant to fail says so: '# expect: $status' on the line before)"
    return 1
  fi
  return 0
}

make() {
  local target="" user="" role="" ttl="" url="" key="" checkpoints="" name="" a
  for a in "$@"; do
    case $a in
      -s|--silent|--no-print-directory) ;;
      USER=*) user=${a#USER=} ;;
      ROLE=*) role=${a#ROLE=} ;;
      TTL=*) ttl=${a#TTL=} ;;
      URL=*) url=${a#URL=} ;;
      KEY=*) key=${a#KEY=} ;;
      CHECKPOINTS=*) checkpoints=${a#CHECKPOINTS=} ;;
      NAME=*) name=${a#NAME=} ;;
      *=*|-*) echo "docscheck: make: unsupported argument $a" >&2; return 2 ;;
      *) target=$a ;;
    esac
  done
  case $target in
    token)
      if [[ -z $user ]]; then
        echo "make token: name the user, e.g. make token USER=alice [ROLE=admin] [TTL=1h]" >&2
        return 2
      fi
      local args=(-user "$user")
      [[ -n $role ]] && args+=(-role "$role")
      [[ -n $ttl ]] && args+=(-ttl "$ttl")
      "$__DOCS_BIN/token" "${args[@]}" ;;
    audit-check) "$__DOCS_BIN/auditcheck" -url "$url" -key "$key" -checkpoints "${checkpoints:--}" ;;
    audit-key) if [[ -n $name ]]; then "$__DOCS_BIN/auditkey" -name "$name"; else "$__DOCS_BIN/auditkey"; fi ;;
    *) echo "docscheck: 'make $target' cannot run here: mark its block <!-- norun -->" >&2; return 2 ;;
  esac
}
`

// script turns blocks into one bash script: the prelude, then each block, its address
// rewritten to base and its # expect: lines made into declarations.
func script(blocks []block, base string) string {
	var b strings.Builder
	b.WriteString(prelude)
	for _, bl := range blocks {
		fmt.Fprintf(&b, "\n__docs_block %s\n", strconv.Quote(fmt.Sprintf("%s, line %d", bl.id, bl.line)))
		for _, line := range strings.Split(strings.TrimRight(bl.text, "\n"), "\n") {
			if m := expectRe.FindStringSubmatch(line); m != nil {
				fmt.Fprintf(&b, "__docs_expect %s\n", m[1])
				continue
			}
			b.WriteString(strings.ReplaceAll(line, devURL, base))
			b.WriteByte('\n')
		}
	}
	b.WriteString("\n__docs_block \"(end)\"\nwait\n")
	return b.String()
}

func runBlocks(t *testing.T, rel string, blocks []block, bin, base string) {
	r := execBlocks(t, blocks, bin, base)
	if r.err != nil || len(r.failures) > 0 {
		t.Errorf("%s: the examples failed (%v):\n%s\n--- output (last 6000 bytes):\n%s", rel, r.err, r.failures, tail(r.output, 6000))
		return
	}
	t.Logf("%s: %d blocks, %d curl calls checked", rel, len(blocks), r.calls)
}

// result is what running a file's blocks did.
type result struct {
	err      error  // bash's exit
	failures []byte // the wrapper's complaints, one a line
	calls    int    // curl calls made
	output   []byte // stdout and stderr
}

// execBlocks runs blocks in one bash process, in a directory of their own.
func execBlocks(t *testing.T, blocks []block, bin, base string) result {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "examples.sh")
	if err := os.WriteFile(path, []byte(script(blocks, base)), 0o600); err != nil {
		t.Fatal(err)
	}
	failFile, logFile := filepath.Join(dir, "failures"), filepath.Join(dir, "calls")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", path)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LANG=C.UTF-8", "TERM=dumb",
		"__DOCS_BIN=" + bin, "__DOCS_TMP=" + dir, "__DOCS_FAIL=" + failFile, "__DOCS_LOG=" + logFile,
		"__DOCS_EXPECT=" + filepath.Join(dir, "expect"),
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	fails, _ := os.ReadFile(failFile)
	calls, _ := os.ReadFile(logFile)
	return result{err: err, failures: fails, calls: bytes.Count(calls, []byte("\n")), output: out.Bytes()}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// moduleRoot is the directory of go.mod, two levels up.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// markdownFiles are docs/**/*.md in order, then README.md: README's audit examples need the
// minute of audit-log history the docs' own examples wait for.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return append(files, "README.md")
}

// buildTools builds the dev server and the commands the examples use (make token, audit-check,
// audit-key) into a temporary directory, with the race detector when the test has it.
func buildTools(t *testing.T, root string) string {
	t.Helper()
	bin := t.TempDir()
	args := []string{"build", "-o", bin + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./infra/devserver", "./infra/token", "./infra/auditcheck", "./infra/auditkey")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDevServer runs the dev server on a free port against databaseURL, with offline models
// and the development token settings that make token uses, and stops it when the test ends.
func startDevServer(t *testing.T, bin, databaseURL string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(filepath.Join(bin, "devserver"))
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"DATABASE_URL=" + databaseURL, "PORT=" + strconv.Itoa(port),
		// Every model answers from the offline model: no provider is ever called, even with keys
		// in the environment (which the server does not inherit anyway).
		"HELIX_OFFLINE=true",
		"HELIX_LOG_LEVEL=warn",
	}
	var logs, announce lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &announce
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("dev server: %v\n%s", err, tail([]byte(announce.String()), 4000))
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("the dev server did not stop within 15 s of an interrupt")
		}
		if s := announce.String(); strings.Contains(s, "WARNING: DATA RACE") {
			t.Errorf("the dev server reported a data race while the examples ran:\n%s", tail([]byte(s), 20000))
		}
		if t.Failed() {
			t.Logf("dev server log (last 8000 bytes):\n%s", tail([]byte(logs.String()), 8000))
		}
	})
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-exited:
			t.Fatalf("the dev server exited before answering: %v\n%s", err, announce.String())
		default:
		}
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dev server did not answer /healthz within 2 minutes:\n%s", announce.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEveryErrorCodeDocumented: every code shared/fault defines has a row in the
// troubleshooting guide that names its HTTP status.
func TestEveryErrorCodeDocumented(t *testing.T) {
	root := moduleRoot(t)
	codes := faultCodes(t, filepath.Join(root, "shared", "fault", "fault.go"))
	if len(codes) < 30 {
		t.Fatalf("found only %d codes in shared/fault: the parser is out of date", len(codes))
	}
	doc := readLines(t, filepath.Join(root, "docs", "user", "troubleshooting.md"))
	for _, c := range codes {
		status := strconv.Itoa(httpapi.StatusOf(fault.Code(c)))
		found := false
		for _, line := range doc {
			if strings.HasPrefix(line, "|") && strings.Contains(line, "`"+c+"`") && regexp.MustCompile(`\b`+status+`\b`).MatchString(line) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("docs/user/troubleshooting.md has no table row with `%s` and its status %s", c, status)
		}
	}
}

// faultCodes are the string values of the constants of type Code in fault.go.
func faultCodes(t *testing.T, path string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					codes = append(codes, s)
				}
			}
		}
	}
	return codes
}

// TestEveryAdminRouteDocumented: every admin and monitoring route the functions serve (their
// tests' wantRoutes) is in the admin API reference as `METHOD /path`.
func TestEveryAdminRouteDocumented(t *testing.T) {
	root := moduleRoot(t)
	tests, err := filepath.Glob(filepath.Join(root, "functions", "*", "main_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "admin", "admin-api.md"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range tests {
		for _, r := range wantRoutes(t, path) {
			method, p, _ := strings.Cut(r, " ")
			if !strings.HasPrefix(p, "/admin/") && !strings.HasPrefix(p, "/monitoring/") {
				continue
			}
			n++
			if !bytes.Contains(doc, []byte("`"+method+" "+p+"`")) {
				t.Errorf("docs/admin/admin-api.md does not document `%s %s` (%s)", method, p, filepath.Base(filepath.Dir(path)))
			}
		}
	}
	if n < 20 {
		t.Fatalf("found only %d admin routes in functions/*/main_test.go: the parser is out of date", n)
	}
}

// wantRoutes is the string list assigned to wantRoutes in a function's test.
func wantRoutes(t *testing.T, path string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "wantRoutes" || len(vs.Values) != 1 {
			return true
		}
		if cl, ok := vs.Values[0].(*ast.CompositeLit); ok {
			for _, e := range cl.Elts {
				if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					out = append(out, s)
				}
			}
		}
		return false
	})
	return out
}

// TestIntelligenceDocumented: the intelligence guide has a section for every operation, naming
// its endpoint, and mentions every input field.
func TestIntelligenceDocumented(t *testing.T) {
	root := moduleRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "user", "intelligence.md"))
	if err != nil {
		t.Fatal(err)
	}
	ops := intelligence.Operations()
	if len(ops) != 9 {
		t.Errorf("%d intelligence operations; the guide speaks of nine", len(ops))
	}
	for _, op := range ops {
		endpoint := "POST /intelligence" + op.Path()
		if !bytes.Contains(doc, []byte("`"+endpoint+"`")) {
			t.Errorf("docs/user/intelligence.md does not name `%s` (%s)", endpoint, op.OperationID())
		}
		for _, field := range jsonFields(reflect.TypeOf(op.NewInput()), "") {
			if !bytes.Contains(doc, []byte("`"+field+"`")) {
				t.Errorf("docs/user/intelligence.md does not mention `%s`, an input field of %s", field, op.OperationID())
			}
		}
	}
}

// jsonFields are the JSON names of t's fields, nested ones as parent.child, embedded structs'
// fields as their own.
func jsonFields(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			out = append(out, jsonFields(f.Type, prefix)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		out = append(out, prefix+name)
		out = append(out, jsonFields(f.Type, prefix+name+".")...)
	}
	return out
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

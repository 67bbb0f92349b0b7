package docscheck

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The runner itself: a check that passed everything would let the docs drift unnoticed.
func TestRunner(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is not on PATH: install it (apt-get install curl)")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if err != nil {
			code = http.StatusTeapot
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"id":"abc"}`))
	}))
	defer srv.Close()

	cases := []struct {
		name string
		text string
		ok   bool
		want string // in the failures, when !ok
	}{
		{"success", "curl -s http://127.0.0.1:3000/status/200\n", true, ""},
		{"created then read", "ID=$(curl -s http://127.0.0.1:3000/status/201 -d '{}' | sed -E 's/.*\"id\":\"([^\"]+)\".*/\\1/')\n[ \"$ID\" = abc ]\n", true, ""},
		{"an undeclared 5xx", "curl -s http://127.0.0.1:3000/status/500\n", false, "answered 500"},
		{"an undeclared 503", "curl -s http://127.0.0.1:3000/status/503\n", false, "answered 503"},
		{"an undeclared 4xx", "curl -s http://127.0.0.1:3000/status/404\n", false, "answered 404"},
		{"a declared 503", "# expect: 503\ncurl -s http://127.0.0.1:3000/status/503\n", true, ""},
		{"a declared status not met", "# expect: 404\ncurl -s http://127.0.0.1:3000/status/200\n", false, "expects 404"},
		{"one of several", "# expect: 404 409\ncurl -s http://127.0.0.1:3000/status/409\n", true, ""},
		{"a declaration covers one call only", "# expect: 404\ncurl -s http://127.0.0.1:3000/status/404\ncurl -s http://127.0.0.1:3000/status/404\n", false, "answered 404"},
		{"a declaration with no curl", "# expect: 404\ntrue\n", false, "followed by no curl"},
		{"in a pipeline", "curl -s http://127.0.0.1:3000/status/502 | cat\n", false, "answered 502"},
		{"in the background", "curl -s http://127.0.0.1:3000/status/500 &\nwait || true\n", false, "answered 500"},
		{"a failing command", "false\n", false, ""},
		{"an unset variable", "echo $NOT_SET\n", false, ""},
		{"no server", "curl -s http://127.0.0.1:1/\n", false, "exited"},
		{"make beyond the token", "make deploy ENV=prod\n", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := execBlocks(t, []block{{id: tc.name + " #1", line: 1, text: tc.text}}, t.TempDir(), srv.URL)
			ok := r.err == nil && len(r.failures) == 0
			if ok != tc.ok {
				t.Fatalf("passed = %t, want %t (exit %v)\nfailures: %s\noutput: %s", ok, tc.ok, r.err, r.failures, r.output)
			}
			if tc.want != "" && !strings.Contains(string(r.failures), tc.want) {
				t.Errorf("failures %q, want them to say %q", r.failures, tc.want)
			}
		})
	}

	// Variables carry over from one block of a file to the next.
	r := execBlocks(t, []block{{id: "a #1", text: "X=42\n"}, {id: "a #2", text: "[ \"$X\" = 42 ]\n"}}, t.TempDir(), srv.URL)
	if r.err != nil {
		t.Errorf("a variable did not carry over: %v\n%s", r.err, r.output)
	}
}

func TestParseMarkdown(t *testing.T) {
	doc := "# Title\n\n```sh\necho one\n```\n\n## Second\n\n<!-- norun: needs AWS -->\n```sh\naws s3 ls\n```\n\n" +
		"```json\n{\"a\":1}\n```\n\n- a list item:\n\n  ```bash\n  echo two\n  ```\n\n" +
		"````\n```sh\nnot a block of its own\n```\n````\n\n<!-- norun -->\n\n```sh\nmake dev\n```\n"
	path := filepath.Join(t.TempDir(), "doc.md")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	got := parseMarkdown(t, path)
	want := []block{
		{id: "Title #1", line: 3, text: "echo one\n"},
		{id: "Second #1", line: 10, norun: true, text: "aws s3 ls\n"},
		{id: "Second #2", line: 20, text: "  echo two\n"},
		{id: "Second #3", line: 32, norun: true, text: "make dev\n"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d blocks %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("block %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

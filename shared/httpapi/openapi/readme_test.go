package openapi_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/httpapi/openapi/openapitest"
)

// readmeRequest is a curl command of README.md's sh blocks.
type readmeRequest struct {
	line         int
	method, path string
	body         string
}

// placeholders stand for what a README example gets from an earlier answer: <id>, and shell
// variables ($SESSION, $APPROVAL, ...) in a URL or a body, all ids (the tokens are only in
// headers, which are not checked).
var placeholders = strings.NewReplacer("<id>", exampleID)

const exampleID = "7d1c2e4f-3a5b-4c6d-8e9f-0a1b2c3d4e5f"

var shellVar = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)

// readmeRequests extracts every curl command in README.md's ```sh blocks: the method (-X, or
// POST with -d, else GET), the URL's path and query, and the -d body.
func readmeRequests(t *testing.T) []readmeRequest {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []readmeRequest
	inSh, joined, start := false, "", 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case !inSh && strings.TrimSpace(line) == "```sh":
			inSh = true
			continue
		case inSh && strings.TrimSpace(line) == "```":
			inSh = false
			continue
		case !inSh:
			continue
		}
		if joined == "" {
			start = n
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			joined += s + " "
			continue
		}
		// <id> is the README's placeholder, not a redirection.
		cmd := placeholders.Replace(joined + line)
		joined = ""
		for i := strings.Index(cmd, "curl "); i >= 0; {
			req, rest, err := parseCurl(cmd[i+len("curl "):])
			if err != nil {
				t.Fatalf("README.md:%d: %v", start, err)
			}
			req.line = start
			out = append(out, req)
			j := strings.Index(rest, "curl ")
			if j < 0 {
				break
			}
			cmd, i = rest, j
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// parseCurl reads curl's arguments up to the end of the command (|, ), &, ;, > or #), and
// returns the rest of the line.
func parseCurl(s string) (readmeRequest, string, error) {
	words, rest := shellWords(s)
	var req readmeRequest
	var url string
	for i := 0; i < len(words); i++ {
		w := words[i]
		next := func() string {
			i++
			if i < len(words) {
				return words[i]
			}
			return ""
		}
		switch {
		case w == "-X":
			req.method = next()
		case w == "-d" || w == "--data":
			req.body = next()
		case w == "-H" || w == "-o":
			next()
		case strings.HasPrefix(w, "http://"), strings.HasPrefix(w, "https://"):
			url = w
		case strings.HasPrefix(w, "-"):
		default:
			return req, rest, fmt.Errorf("unexpected curl argument %q", w)
		}
	}
	if url == "" {
		return req, rest, fmt.Errorf("curl without a URL: %q", s)
	}
	if req.method == "" {
		req.method = http.MethodGet
		if req.body != "" {
			req.method = http.MethodPost
		}
	}
	_, after, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://"), "/")
	req.path = shellVar.ReplaceAllString("/"+after, exampleID)
	req.body = shellVar.ReplaceAllString(req.body, exampleID)
	return req, rest, nil
}

// shellWords splits s as sh would (single and double quotes; $VAR left as written) up to an
// unquoted |, ), &, ;, > or a # starting a word.
func shellWords(s string) (words []string, rest string) {
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				j = len(s) - i - 1
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			// Inside double quotes a backslash escapes ", \, $ and `.
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\\$`+"`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			inWord = true
		case c == ' ' || c == '\t':
			flush()
		case strings.IndexByte("|)&;>", c) >= 0, c == '#' && !inWord:
			flush()
			return words, s[i:]
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, ""
}

// README.md's example requests are requests the document accepts.
func TestREADMEExamplesMatchTheSpec(t *testing.T) {
	spec := openapitest.Load(t)
	reqs := readmeRequests(t)
	if len(reqs) < 40 {
		t.Fatalf("only %d curl commands found in README.md", len(reqs))
	}
	for _, r := range reqs {
		t.Run(fmt.Sprintf("line%d_%s_%s", r.line, r.method, r.path), func(t *testing.T) {
			req := httptest.NewRequest(r.method, "http://127.0.0.1:3000"+r.path, nil)
			setBody(req, r.body)
			for _, msg := range spec.RequestErrors(req) {
				t.Errorf("README.md:%d: %s %s %s: %s", r.line, r.method, r.path, r.body, msg)
			}
		})
	}
}

func TestParseCurl(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want readmeRequest
	}{
		{`-s http://127.0.0.1:3000/ai-router/budget -H "Authorization: Bearer $TOKEN"`, readmeRequest{method: "GET", path: "/ai-router/budget"}},
		{`-s -X PUT http://h/admin/toggles/K -H "A: b" -d '{"enabled":true}'`, readmeRequest{method: "PUT", path: "/admin/toggles/K", body: `{"enabled":true}`}},
		{`-s http://h/chat/sessions -d '{"title":"x"}' | sed -E 's/a/b/')`, readmeRequest{method: "POST", path: "/chat/sessions", body: `{"title":"x"}`}},
		{`-s "http://h/chat/sessions/$SESSION/messages?after=2&wait=20" -H "x" &`, readmeRequest{method: "GET", path: "/chat/sessions/" + exampleID + "/messages?after=2&wait=20"}},
		{`-s http://h/x -d "{\"a\":\"$APPROVAL\"}"`, readmeRequest{method: "POST", path: "/x", body: `{"a":"` + exampleID + `"}`}},
		{`-s http://h/me/insights   # two versions now`, readmeRequest{method: "GET", path: "/me/insights"}},
	} {
		got, _, err := parseCurl(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseCurl(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/helixhq/helix/infra/load"
)

// Portkey's open-source gateway, the gateway step's comparison: installed at bench time (never
// committed) into a git-ignored folder under bench-results/, reused while it holds this version.
const (
	portkeyPackage = "@portkey-ai/gateway"
	portkeyVersion = "1.15.2"
	// portkeyBin is the package's bin, relative to the package folder. 1.15.2 takes its port as
	// --port=N (default 8787) and, with --headless, serves no log UI (/public, /log/stream).
	portkeyBin = "build/start-server.js"
	// portkeyNodeMajor is the oldest Node.js the gateway's node build is run with here (it is an
	// ES module using top-level await and the global fetch).
	portkeyNodeMajor = 18
)

// portkeyDir is where the package is installed, relative to the repository (bench-results/ is
// git-ignored).
func portkeyDir() string {
	return filepath.Join(resultsDir, ".tools", "portkey-"+portkeyVersion)
}

// portkeyPackageDir is the installed package's folder under an npm --prefix folder.
func portkeyPackageDir(prefix string) string {
	return filepath.Join(prefix, "node_modules", filepath.FromSlash(portkeyPackage))
}

// portkeyInfo is what the gateway step knows of Portkey: whether it was measured, and why not.
type portkeyInfo struct {
	Package  string `json:"package"`
	Version  string `json:"version"`
	Dir      string `json:"dir,omitempty"`
	Node     string `json:"node,omitempty"`
	Measured bool   `json:"measured"`
	Reason   string `json:"not_measured_reason,omitempty"`
	URL      string `json:"url,omitempty"`
	// Headers are the routing headers of every request to it.
	Headers map[string]string `json:"headers,omitempty"`
}

// packageVersion reads the version of a package.json, checking it names the package.
func packageVersion(raw []byte, name string) (string, error) {
	var p struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", fmt.Errorf("package.json: %w", err)
	}
	if p.Name != name {
		return "", fmt.Errorf("package.json names %q, not %q", p.Name, name)
	}
	if p.Version == "" {
		return "", errors.New("package.json has no version")
	}
	return p.Version, nil
}

// installedPortkey checks that prefix holds portkeyVersion with its bin, and returns the bin's path.
func installedPortkey(prefix string) (string, error) {
	pkg := portkeyPackageDir(prefix)
	raw, err := os.ReadFile(filepath.Join(pkg, "package.json"))
	if err != nil {
		return "", err
	}
	v, err := packageVersion(raw, portkeyPackage)
	if err != nil {
		return "", err
	}
	if v != portkeyVersion {
		return "", fmt.Errorf("%s holds %s %s, not %s", prefix, portkeyPackage, v, portkeyVersion)
	}
	bin := filepath.Join(pkg, filepath.FromSlash(portkeyBin))
	if _, err := os.Stat(bin); err != nil {
		return "", err
	}
	return bin, nil
}

// nodeMajor reads the major version of `node --version`'s output ("v20.20.2").
func nodeMajor(out string) (int, error) {
	v := strings.TrimPrefix(strings.TrimSpace(out), "v")
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("node --version printed %q, not a version", strings.TrimSpace(out))
	}
	return n, nil
}

// notMeasured is a reason Portkey cannot run on this machine (no node or npm, an old node):
// the step says so and measures Helix against the mock without it.
type notMeasured struct{ reason string }

func (e notMeasured) Error() string { return e.reason }

// portkeyTools finds node and npm on the PATH (lookPath is exec.LookPath).
func portkeyTools(lookPath func(string) (string, error)) (node, npm string, err error) {
	var missing []string
	if node, err = lookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	if npm, err = lookPath("npm"); err != nil {
		missing = append(missing, "npm")
	}
	if len(missing) > 0 {
		return "", "", notMeasured{fmt.Sprintf("%s not found on the PATH (Portkey's gateway needs Node.js %d+ and npm)",
			strings.Join(missing, " and "), portkeyNodeMajor)}
	}
	return node, npm, nil
}

// preparePortkey makes sure the gateway is installed, installing it when the folder does not
// hold the right version, and returns node's path and the bin. A notMeasured error means this
// machine cannot run it.
func (b *bench) preparePortkey(ctx context.Context, info *portkeyInfo) (node, bin string, err error) {
	node, npm, err := portkeyTools(exec.LookPath)
	if err != nil {
		return "", "", err
	}
	out, err := output(ctx, node, "--version")
	if err != nil {
		return "", "", notMeasured{fmt.Sprintf("node --version failed: %v", err)}
	}
	major, err := nodeMajor(out)
	if err != nil {
		return "", "", notMeasured{err.Error()}
	}
	info.Node = strings.TrimSpace(out)
	if major < portkeyNodeMajor {
		return "", "", notMeasured{fmt.Sprintf("node %s is older than the %d Portkey's gateway needs", info.Node, portkeyNodeMajor)}
	}
	prefix, err := filepath.Abs(portkeyDir())
	if err != nil {
		return "", "", err
	}
	info.Dir = prefix
	if bin, err := installedPortkey(prefix); err == nil {
		b.printf("portkey  %s@%s already installed in %s (node %s)\n", portkeyPackage, portkeyVersion, portkeyDir(), info.Node)
		return node, bin, nil
	}
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return "", "", err
	}
	args := []string{"install", "--no-save", "--no-audit", "--no-fund", "--prefix", prefix, portkeyPackage + "@" + portkeyVersion}
	b.printf("$ npm %s\n", strings.Join(args, " "))
	logPath := filepath.Join(b.tmp, "npm-install.log")
	f, err := os.Create(logPath)
	if err != nil {
		return "", "", err
	}
	cmd := exec.Command(npm, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// npm would otherwise look for a package.json above the prefix, in the repository.
	cmd.Dir = prefix
	t0 := time.Now()
	err = runProc(ctx, "npm install", cmd)
	f.Close()
	if err != nil {
		raw, _ := os.ReadFile(logPath)
		return "", "", fmt.Errorf("install %s@%s: %w: %s", portkeyPackage, portkeyVersion, err, clip(string(raw), 1500))
	}
	bin, err = installedPortkey(prefix)
	if err != nil {
		return "", "", fmt.Errorf("after npm install: %w", err)
	}
	b.printf("  installed in %.1fs (node %s)\n", time.Since(t0).Seconds(), info.Node)
	return node, bin, nil
}

// startPortkey runs the gateway on a free port and waits until it answers GET /. The caller stops it.
func (b *bench) startPortkey(ctx context.Context, node, bin string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// Node's fetch ignores HTTP_PROXY; the gateway reads no other variable the bench depends on.
	cmd := exec.Command(node, bin, "--port="+strconv.Itoa(port), "--headless")
	cmd.Dir = filepath.Dir(filepath.Dir(bin))
	s, err := b.startServer("portkey", cmd, os.Environ())
	if err != nil {
		return nil, err
	}
	s.url = "http://127.0.0.1:" + strconv.Itoa(port)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if !s.running() {
			return nil, fmt.Errorf("portkey exited: %s", clip(s.logText(), 1500))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/", nil)
		if err != nil {
			s.stop()
			return nil, err
		}
		if res, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("portkey did not answer %s/ in 30s: %s", s.url, clip(s.logText(), 1500))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			s.stop()
			return nil, err
		}
	}
	b.printf("portkey  %s@%s on %s (pid %d; node %s --port=%d --headless)\n", portkeyPackage, portkeyVersion, s.url,
		s.cmd.Process.Pid, portkeyBin, port)
	return s, nil
}

// portkeyHeaders route a request through Portkey to the mock as an OpenAI provider with a custom
// host: Portkey appends /chat/completions to the host, so the mock (which serves any path ending
// in /chat/completions) gets POST /v1/chat/completions, OpenAI's path. The bearer token is passed
// on to the provider; the mock ignores it.
func portkeyHeaders(mockURL string) http.Header {
	return http.Header{
		"X-Portkey-Provider":    {"openai"},
		"X-Portkey-Custom-Host": {strings.TrimSuffix(mockURL, "/") + "/v1"},
		"Authorization":         {"Bearer bench"},
	}
}

// flatHeaders is h with one value per name, for the JSON and the printed command.
func flatHeaders(h http.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k, v := range h {
		m[k] = strings.Join(v, ",")
	}
	return m
}

// headerLine prints h sorted by name, as curl's -H arguments.
func headerLine(h http.Header) string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("-H '%s: %s'", k, strings.Join(h[k], ","))
	}
	return strings.Join(parts, " ")
}

// mockAnswer reports whether body is the mock's fixed answer (infra/mockllm).
func mockAnswer(body string) error {
	var a struct {
		ID      string `json:"id"`
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if a.Model != "deepseek-chat" || len(a.Choices) != 1 || a.Choices[0].Message.Content != "Hello from mockllm." {
		return fmt.Errorf("not the mock's answer: model %q, %d choices", a.Model, len(a.Choices))
	}
	return nil
}

// portkeySample sends one request through Portkey, shows it, and checks that it reached the mock
// (its request counter went up by exactly one) and came back with the mock's answer.
func (b *bench) portkeySample(ctx context.Context, url, mockURL string, h http.Header) error {
	before, err := mockStats(ctx, mockURL)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(directBody))
	if err != nil {
		return err
	}
	req.Header = h.Clone()
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: load.DefaultTimeout, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("the sample request through Portkey failed: %w", err)
	}
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return fmt.Errorf("the sample request through Portkey failed: %w", err)
	}
	body := string(raw)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("the sample request through Portkey answered %d: %s", res.StatusCode, clip(body, 400))
	}
	after, err := mockStats(ctx, mockURL)
	if err != nil {
		return err
	}
	b.printf("sample   %s\n", clip(body, 400))
	var shown []string
	for k, v := range res.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-portkey-") || strings.EqualFold(k, "X-Request-Id") {
			shown = append(shown, k+": "+strings.Join(v, ","))
		}
	}
	slices.Sort(shown)
	b.printf("         %s\n", strings.Join(shown, "  "))
	if err := mockAnswer(body); err != nil {
		return fmt.Errorf("the sample through Portkey: %w", err)
	}
	if n := after.Requests - before.Requests; n != 1 {
		return fmt.Errorf("the sample through Portkey made %d calls to the mock, not 1", n)
	}
	b.printf("         the mock counted 1 request (%d -> %d): Portkey reached it\n", before.Requests, after.Requests)
	return nil
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// goBenchmark is one result line of `go test -bench`.
type goBenchmark struct {
	Name       string             `json:"name"` // without the -GOMAXPROCS suffix
	Procs      int                `json:"procs,omitempty"`
	Iterations int64              `json:"iterations"`
	Metrics    map[string]float64 `json:"metrics"` // by unit: "ns/op", "B/op", "allocs/op", "pairs/s"
}

// benchLine matches a result line: name, optional -GOMAXPROCS, iterations, then value-unit pairs.
const benchLine = `^(Benchmark\S*?)(?:-(\d+))?\s+(\d+)\s+(.+)$`

// parseBenchmarks reads the result lines of `go test -bench` output.
func parseBenchmarks(out string) []goBenchmark {
	re := regexp.MustCompile(benchLine)
	var res []goBenchmark
	for _, line := range strings.Split(out, "\n") {
		m := re.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		gb := goBenchmark{Name: m[1], Metrics: map[string]float64{}}
		gb.Procs, _ = strconv.Atoi(m[2])
		gb.Iterations, _ = strconv.ParseInt(m[3], 10, 64)
		f := strings.Fields(m[4])
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				gb.Metrics[f[i+1]] = v
			}
		}
		if len(gb.Metrics) > 0 {
			res = append(res, gb)
		}
	}
	return res
}

// goTest runs `go test` with args, its output shown as it comes and returned.
func (b *bench) goTest(ctx context.Context, env []string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("go", append([]string{"test"}, args...)...)
	cmd.Env = env
	w := io.MultiWriter(b.out, &out)
	cmd.Stdout, cmd.Stderr = w, w
	err := runProc(ctx, "go test", cmd)
	return out.String(), err
}

// routerBench is the in-process routing decision.
func (b *bench) routerBench(ctx context.Context) error {
	out, err := b.goTest(ctx, os.Environ(), "-run", "^$", "-bench", "BenchmarkRoute", "-benchmem", "./shared/router/")
	if err != nil {
		return err
	}
	b.res.Router = parseBenchmarks(out)
	if len(b.res.Router) == 0 {
		b.printf("(no BenchmarkRoute* in shared/router yet)\n")
	}
	return nil
}

// ledgerBench is budget reserve+settle pairs on Postgres; the benchmark makes its own databases
// on the server, as the tests do.
func (b *bench) ledgerBench(ctx context.Context) error {
	env := append(os.Environ(), "HELIX_TEST_PG_URL="+b.serverURL)
	out, err := b.goTest(ctx, env, "-run", "^$", "-bench", "BenchmarkReserveSettle", "-benchtime", b.cfg.benchTime, "./shared/postgres/")
	if err != nil {
		return err
	}
	b.res.Ledger = parseBenchmarks(out)
	if len(b.res.Ledger) == 0 {
		return errors.New("go test printed no BenchmarkReserveSettle result")
	}
	return nil
}

// synthesisBench is the database side of one synthesis job (claim, candidates, commit) for a user
// with 500 insights; the benchmark makes its own databases on the server, as the tests do.
func (b *bench) synthesisBench(ctx context.Context) error {
	env := append(os.Environ(), "HELIX_TEST_PG_URL="+b.serverURL)
	out, err := b.goTest(ctx, env, "-run", "^$", "-bench", "BenchmarkSynthesisJob", "-benchtime", b.cfg.benchTime, "./shared/postgres/memorystore/")
	if err != nil {
		return err
	}
	b.res.Synthesis = parseBenchmarks(out)
	if len(b.res.Synthesis) == 0 {
		return errors.New("go test printed no BenchmarkSynthesisJob result")
	}
	return nil
}

// bootstrapSize is one function's Lambda binary.
type bootstrapSize struct {
	Function string `json:"function"`
	Path     string `json:"path"`
	Bytes    int64  `json:"bytes"`
}

// sizes builds every function the way a deployment does (`make build`: linux/arm64, stripped)
// and measures each functions/<fn> binary, bin/<fn>/bootstrap.
func (b *bench) sizes(ctx context.Context) error {
	var out bytes.Buffer
	cmd := exec.Command("make", "--no-print-directory", "build")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := runProc(ctx, "make build", cmd); err != nil {
		b.printf("%s", out.String())
		return err
	}
	fns, err := os.ReadDir("functions")
	if err != nil {
		return err
	}
	var missing []string
	for _, fn := range fns {
		if !fn.IsDir() {
			continue
		}
		path := filepath.Join("bin", fn.Name(), "bootstrap")
		st, err := os.Stat(path)
		if err != nil {
			missing = append(missing, path)
			continue
		}
		s := bootstrapSize{Function: fn.Name(), Path: path, Bytes: st.Size()}
		b.res.Sizes = append(b.res.Sizes, s)
		b.printf("%s\n", s.line())
	}
	if len(missing) > 0 {
		return fmt.Errorf("make build did not write %s", strings.Join(missing, ", "))
	}
	return nil
}

func (s bootstrapSize) line() string {
	return fmt.Sprintf("%-24s %10d bytes  %6.2f MB (%.2f MiB)", s.Path, s.Bytes, float64(s.Bytes)/1e6, float64(s.Bytes)/(1<<20))
}

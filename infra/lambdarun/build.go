package lambdarun

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Tags are the build tags of the Makefile's GOFLAGS_LAMBDA: lambda.norpc drops the RPC mode
// provided.al2023 does not use, grpcnotrace keeps x/net/trace out of the binary.
const Tags = "lambda.norpc,grpcnotrace"

// VersionVar is the variable the Makefile's HELIX_VERSION sets at link time.
const VersionVar = "github.com/helixhq/helix/shared/app.buildVersion"

// Build is one `go build` of a function, with the Makefile's flags (GOFLAGS_LAMBDA, CGO_ENABLED=0).
type Build struct {
	Dir     string // the module's folder, where go build runs; default the working directory
	Package string // e.g. "./functions/route"
	Output  string // the binary to write
	// GOOS and GOARCH default to this machine's; `make build` is linux/arm64.
	GOOS, GOARCH string
	Version      string // HELIX_VERSION, linked into VersionVar; none when ""
}

// ForLambda is b for Lambda's machine, as `make build` compiles it (linux/arm64).
func (b Build) ForLambda() Build {
	b.GOOS, b.GOARCH = "linux", "arm64"
	return b
}

// Run compiles the binary. Its error carries the compiler's output.
func (b Build) Run(ctx context.Context) error {
	if b.Package == "" || b.Output == "" {
		return fmt.Errorf("lambdarun: build needs a package and an output")
	}
	goos, goarch := b.GOOS, b.GOARCH
	if goos == "" {
		goos = runtime.GOOS
	}
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	ldflags := "-s -w"
	if b.Version != "" {
		ldflags += " -X " + VersionVar + "=" + b.Version
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", Tags, "-trimpath", "-ldflags="+ldflags, "-o", b.Output, b.Package)
	cmd.Dir = b.Dir
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("lambdarun: go build %s (%s/%s): %w\n%s", b.Package, goos, goarch, err, strings.TrimSpace(out.String()))
	}
	return nil
}

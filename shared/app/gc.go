package app

import (
	"runtime/debug"
	"strconv"
)

// DefaultGCPercent is the garbage collector's target (GOGC) for a Helix process whose
// environment does not set GOGC.
//
// A Helix process keeps little alive (about 5 MB under load: the pools, the catalog, the
// caches) and allocates about 30 kB per /v1 call. At Go's default of 100 the heap goal is
// about 13 MB, so under load the collector ran 15 times a second and cost 35–50 µs of CPU per
// call (GODEBUG=gctrace=1 on the dev server, /v1 at -c 64); at 400 the goal was 35–64 MB in
// the same runs and the cost 8–12 µs. A function's memory (256 MB in template.yaml, 512 for
// optimize) leaves ample room, and on Lambda the memory limit below bounds the heap whatever
// the percentage.
const DefaultGCPercent = 400

// lambdaMemoryPercent is the share of the function's memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE)
// the Go runtime is told it may use (GOMEMLIMIT) when the environment sets no limit: near
// it the collector runs as often as needed, so a large heap slows the function instead of
// getting it killed. The rest is for the binary, thread stacks outside the Go heap and the
// Lambda runtime's own use of the sandbox.
const lambdaMemoryPercent = 80

// GCSettings is what TuneGC applied: Percent 0 means GOGC was left as the environment set
// it, MemoryLimit 0 that no limit was set here.
type GCSettings struct {
	Percent     int
	MemoryLimit int64 // bytes
}

// TuneGC sets the garbage collector for a Helix process from its environment (os.Environ()):
// DefaultGCPercent unless GOGC is set, and on Lambda a memory limit of lambdaMemoryPercent of
// the function's memory unless GOMEMLIMIT is set (the Go runtime has already applied either
// variable when it is set). It changes process-wide settings, so only the composition roots
// (functions/<fn>/main.go, the dev server) call it, first thing.
func TuneGC(environ []string) GCSettings {
	s := gcSettingsFor(environ)
	if s.Percent != 0 {
		debug.SetGCPercent(s.Percent)
	}
	if s.MemoryLimit != 0 {
		debug.SetMemoryLimit(s.MemoryLimit)
	}
	return s
}

// gcSettingsFor is TuneGC's decision, without applying it.
func gcSettingsFor(environ []string) GCSettings {
	var s GCSettings
	if EnvValue(environ, "GOGC") == "" {
		s.Percent = DefaultGCPercent
	}
	if EnvValue(environ, "GOMEMLIMIT") == "" {
		// Lambda sets the variable to the function's memory in MB (128 to 10,240); anything
		// else is not a Lambda sandbox's value and sets nothing.
		if mb, err := strconv.Atoi(EnvValue(environ, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")); err == nil && mb >= 128 && mb <= 10240 {
			s.MemoryLimit = (int64(mb) << 20) * lambdaMemoryPercent / 100
		}
	}
	return s
}

package app

import (
	"runtime/debug"
	"testing"
)

func TestGCSettingsFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name    string
		environ []string
		want    GCSettings
	}{
		{"a laptop or container: Helix's percentage, no limit", []string{"PATH=/bin"}, GCSettings{Percent: DefaultGCPercent}},
		{"GOGC set: left to the runtime", []string{"GOGC=150"}, GCSettings{}},
		{"GOGC=off set: left to the runtime", []string{"GOGC=off"}, GCSettings{}},
		{"GOGC empty counts as unset, as for the runtime", []string{"GOGC="}, GCSettings{Percent: DefaultGCPercent}},
		{"Lambda at 256 MB: 80% of it as the limit", []string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256"},
			GCSettings{Percent: DefaultGCPercent, MemoryLimit: 256 * mib * 8 / 10}},
		{"Lambda at 10,240 MB", []string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=10240"},
			GCSettings{Percent: DefaultGCPercent, MemoryLimit: 10240 * mib * 8 / 10}},
		{"Lambda with GOMEMLIMIT set: left to the runtime", []string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256", "GOMEMLIMIT=100MiB"},
			GCSettings{Percent: DefaultGCPercent}},
		{"Lambda with both set", []string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512", "GOGC=200", "GOMEMLIMIT=300MiB"}, GCSettings{}},
		{"a memory size no sandbox has: no limit", []string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=64"}, GCSettings{Percent: DefaultGCPercent}},
		{"a memory size over Lambda's maximum: no limit", []string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=20000"}, GCSettings{Percent: DefaultGCPercent}},
		{"a memory size that is not a number: no limit", []string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256MB"}, GCSettings{Percent: DefaultGCPercent}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := gcSettingsFor(tc.environ); got != tc.want {
				t.Errorf("gcSettingsFor(%q) = %+v, want %+v", tc.environ, got, tc.want)
			}
		})
	}
}

func TestTuneGCAppliesItsSettings(t *testing.T) {
	// The settings are process-wide: put back what the test binary ran with.
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})

	s := TuneGC([]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256"})
	// Reading a setting sets another (SetGCPercent(-1) turns the collector off, SetMemoryLimit(-1)
	// only reads): each read of the percentage is followed by putting it back.
	if got := debug.SetGCPercent(-1); got != DefaultGCPercent {
		t.Errorf("GC percent after TuneGC = %d, want %d", got, DefaultGCPercent)
	}
	debug.SetGCPercent(DefaultGCPercent)
	if got := debug.SetMemoryLimit(-1); got != s.MemoryLimit || got != 256<<20*8/10 {
		t.Errorf("memory limit after TuneGC = %d, want %d (TuneGC said %d)", got, 256<<20*8/10, s.MemoryLimit)
	}

	// With GOGC and GOMEMLIMIT set, the runtime's values stay.
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(1 << 30)
	TuneGC([]string{"GOGC=150", "GOMEMLIMIT=1GiB", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256"})
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("GC percent with GOGC set = %d, want the runtime's 150", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("memory limit with GOMEMLIMIT set = %d, want the runtime's 1 GiB", got)
	}
}

func TestEnvValue(t *testing.T) {
	env := []string{"A=1", "HELIX_X=first", "B=2", "HELIX_X=last", "HELIX_XY=no", "EMPTY="}
	for _, tc := range []struct{ name, want string }{
		{"HELIX_X", "last"},
		{"HELIX_XY", "no"},
		{"EMPTY", ""},
		{"C", ""},
		{"HELIX", ""},
	} {
		if got := EnvValue(env, tc.name); got != tc.want {
			t.Errorf("EnvValue(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

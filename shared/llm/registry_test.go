package llm_test

import (
	"context"
	"testing"

	"github.com/helixhq/helix/shared/llm"
)

type fake string

func (f fake) Name() string { return string(f) }
func (f fake) Complete(context.Context, llm.Request) (llm.Response, error) {
	return llm.Response{Text: string(f)}, nil
}

func TestRegistryGet(t *testing.T) {
	base := llm.NewRegistry(fake("deepseek"), fake("gemini"))
	off := fake("offline")
	tests := []struct {
		name   string
		reg    *llm.Registry
		lookup string
		want   string // "" means not found
	}{
		{"configured", base, "deepseek", "deepseek"},
		{"unconfigured without fallback", base, "anthropic", ""},
		{"unconfigured falls back to offline", base.WithOfflineFallback(off, false), "anthropic", "offline"},
		{"configured is never replaced unless forced", base.WithOfflineFallback(off, false), "gemini", "gemini"},
		{"forced offline wins over a key", base.WithOfflineFallback(off, true), "deepseek", "offline"},
		{"forced offline for unknown names", base.WithOfflineFallback(off, true), "whatever", "offline"},
		{"nil fallback removes forcing", base.WithOfflineFallback(nil, true), "deepseek", "deepseek"},
		{"nil fallback", base.WithOfflineFallback(nil, true), "anthropic", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := tt.reg.Get(tt.lookup)
			if tt.want == "" {
				if ok || p != nil {
					t.Errorf("Get(%q) = %v, %t; want nothing", tt.lookup, p, ok)
				}
				return
			}
			if !ok || p.Name() != tt.want {
				t.Errorf("Get(%q) = %v, %t; want %s", tt.lookup, p, ok, tt.want)
			}
		})
	}
}

func TestRegistryIsImmutable(t *testing.T) {
	base := llm.NewRegistry(fake("deepseek"))
	_ = base.WithOfflineFallback(fake("offline"), true)
	if p, _ := base.Get("deepseek"); p.Name() != "deepseek" {
		t.Error("WithOfflineFallback changed the original registry")
	}
	if base.ForcedOffline() {
		t.Error("original registry reports forced offline")
	}
	if got := base.Names(); len(got) != 1 || got[0] != "deepseek" {
		t.Errorf("Names = %v", got)
	}
	if !base.Configured("deepseek") || base.Configured("gemini") {
		t.Error("Configured is wrong")
	}
}

func TestNewRegistryPanicsOnDuplicates(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a duplicate provider name")
		}
	}()
	llm.NewRegistry(fake("deepseek"), fake("deepseek"))
}

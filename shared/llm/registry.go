package llm

import (
	"fmt"
	"slices"
)

// Registry maps provider names (ai_models.provider) to the Provider that serves them. It is
// immutable once built and safe for concurrent use.
//
// With an offline fallback, a name that has no configured provider (its key is not set)
// resolves to the offline model, so local development works without keys; with forceOffline,
// every name does. A configured provider is never replaced by the offline one unless forced.
type Registry struct {
	providers    map[string]Provider
	offline      Provider
	forceOffline bool
}

// NewRegistry registers providers under their Name. Two providers with one name, or a nil
// provider, are programming errors and panic.
func NewRegistry(providers ...Provider) *Registry {
	r := &Registry{providers: make(map[string]Provider, len(providers))}
	for _, p := range providers {
		if p == nil {
			panic("llm: NewRegistry: nil provider")
		}
		if _, dup := r.providers[p.Name()]; dup {
			panic(fmt.Sprintf("llm: NewRegistry: provider %q registered twice", p.Name()))
		}
		r.providers[p.Name()] = p
	}
	return r
}

// WithOfflineFallback returns a copy of r that answers unconfigured names with offline, and
// every name when forceOffline is set. A nil offline removes the fallback (and the forcing).
func (r *Registry) WithOfflineFallback(offline Provider, forceOffline bool) *Registry {
	c := *r
	c.offline = offline
	c.forceOffline = forceOffline && offline != nil
	return &c
}

// Get returns the provider that serves name: the offline one when forced, else the configured
// one, else the offline fallback. ok is false when there is none.
func (r *Registry) Get(name string) (p Provider, ok bool) {
	if r.forceOffline {
		return r.offline, true
	}
	if p, ok := r.providers[name]; ok {
		return p, true
	}
	if r.offline != nil {
		return r.offline, true
	}
	return nil, false
}

// Configured reports whether name has a real (non-fallback) provider.
func (r *Registry) Configured(name string) bool {
	_, ok := r.providers[name]
	return ok
}

// Names lists the configured providers' names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.providers))
	for n := range r.providers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ForcedOffline reports whether every name resolves to the offline model.
func (r *Registry) ForcedOffline() bool { return r.forceOffline }

// Package synthesisapp assembles the memory synthesis consumer, for the synthesis Lambda (SQS
// trigger) and the dev server (an in-process queue). It serves no HTTP.
package synthesisapp

import (
	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/pipeline"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/postgres/memorystore"
	"github.com/helixhq/helix/shared/synthesis"
	"github.com/helixhq/helix/shared/toggles"
)

// NewProcessor builds the synthesis processor over the core's pool: the memory store, the
// execution pipeline the memory_synthesis operation runs through, and the kill switches.
func NewProcessor(c *app.Core, tg *toggles.Service, providers execute.Providers) *synthesis.Processor {
	cache, _ := c.Catalog()
	policy := synthesis.DefaultPolicy()
	policy.Idle = c.Config.Synthesis.Idle
	return &synthesis.Processor{
		Store:   memorystore.NewMemory(c.Pool, nil),
		Exec:    pipeline.New(c, cache, tg, providers),
		Toggles: tg,
		Logger:  c.Log,
		Policy:  policy,
	}
}

// Package chatapp assembles the chat function: chat sessions and messages, and the user's memory
// API, for its Lambda main and the dev server.
package chatapp

import (
	"time"

	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/app/pipeline"
	"github.com/helixhq/helix/shared/chat"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/chatapi"
	"github.com/helixhq/helix/shared/postgres/chatstore"
	"github.com/helixhq/helix/shared/postgres/memorystore"
	"github.com/helixhq/helix/shared/stepup"
	"github.com/helixhq/helix/shared/synthesis"
)

// MaintenanceExempt are the chat function's routes that keep working in maintenance mode: none
// beyond the reads (a long-poll keeps working; sending does not).
var MaintenanceExempt []string

// Mount registers the chat function's endpoints on srv. Replies run through the execution
// pipeline with providers; synthesis jobs go to queue. It returns the notifier, which the caller
// closes on shutdown.
func Mount(a *httpapp.App, srv *httpapi.Server, providers execute.Providers, queue synthesis.Queue) *chatstore.Notifier {
	cache, _ := a.Catalog()
	notifier := chatstore.NewNotifier(a.Pool, a.Listen, a.Log.Warn)
	cfg := a.Config.Chat
	policy := chat.DefaultPolicy()
	policy.HistoryTokens, policy.MemoryTokens = cfg.HistoryTokens, cfg.MemoryTokens
	policy.DefaultTrust, policy.CreatorUserID = cfg.DefaultTrust, cfg.CreatorUserID
	policy.SynthesizeEvery = int64(cfg.SynthesizeEvery)
	sessions := chatstore.NewChat(a.Pool, nil)
	svc := &chat.Service{
		Store:    sessions,
		Notifier: notifier,
		Exec:     pipeline.New(a.Core, cache, a.Toggles, providers),
		Queue:    queue,
		Logger:   a.Log,
		Policy:   policy,
	}
	if cfg.StepUpPhrase != "" {
		svc.StepUp = stepup.New(stepup.Config{
			Phrase: cfg.StepUpPhrase, KeyHash: []byte(cfg.StepUpKeyHash), CreatorUserID: cfg.CreatorUserID,
			MaxFailures: cfg.StepUpFailures, Window: cfg.StepUpWindow, Lasts: time.Hour,
		}, chatstore.NewStepUps(a.Pool), nil)
	}
	chatapi.Register(srv, chatapi.Deps{Chat: svc, Sessions: sessions, Memory: memorystore.NewMemory(a.Pool, nil)})
	return notifier
}

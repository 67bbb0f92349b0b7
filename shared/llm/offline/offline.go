// Package offline is the model Helix answers from when no provider key is configured (local
// development) or offline mode is forced. It never leaves the process, costs nothing
// (Response.Offline), says plainly that it is the offline model, answers the same request the
// same way every time, and answers JSON requests with a document that validates against the
// request's schema, so every endpoint that asks for structured output works locally.
package offline

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/helixhq/helix/shared/llm"
)

// Name is the provider name of the offline model.
const Name = "offline"

// Prefix starts every plain-text answer, so no one mistakes it for a model's.
const Prefix = "[offline model]"

// Provider is the offline model. The zero value is ready to use; it is safe for concurrent use.
type Provider struct{}

var _ llm.Provider = Provider{}

// New returns the offline model.
func New() Provider { return Provider{} }

// Name implements llm.Provider.
func (Provider) Name() string { return Name }

// Complete implements llm.Provider. It fails only when ctx is already done or the request is
// unusable (no positive MaxOutputTokens, unknown role, a schema that is not JSON).
func (Provider) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	if err := ctx.Err(); err != nil {
		return llm.Response{}, &llm.Error{Provider: Name, Kind: llm.KindTimeout, Message: "context done before the call", Err: err}
	}
	if req.MaxOutputTokens <= 0 {
		return llm.Response{}, invalid("MaxOutputTokens must be positive: it bounds the reserved cost")
	}
	inputBytes := 0
	for _, m := range req.Messages {
		switch m.Role {
		case llm.RoleSystem, llm.RoleUser, llm.RoleAssistant:
		default:
			return llm.Response{}, invalid("unknown message role " + string(m.Role))
		}
		inputBytes += len(m.Content)
	}
	sum := fingerprint(req)
	id := "offline-" + hex.EncodeToString(sum[:8])

	var text, finish string
	switch {
	case req.JSON && len(req.Schema) > 0:
		v, err := Example(req.Schema)
		if err != nil {
			return llm.Response{}, invalid(err.Error())
		}
		text, finish = string(v), "stop"
	case req.JSON:
		b, _ := json.Marshal(map[string]any{"offline": true, "message": message(req, inputBytes, id)})
		text, finish = string(b), "stop"
	default:
		text, finish = truncate(message(req, inputBytes, id), req.MaxOutputTokens)
	}
	model := req.Model
	if model == "" {
		model = Name
	}
	return llm.Response{
		Text: text,
		// Rough counts (about four bytes a token) so logs and dashboards show something; the
		// call is free whatever they say.
		Usage:             llm.Usage{InputTokens: tokens(inputBytes), OutputTokens: tokens(len(text))},
		ProviderRequestID: id,
		Model:             model,
		FinishReason:      finish,
		Offline:           true,
	}, nil
}

func invalid(msg string) *llm.Error {
	return &llm.Error{Provider: Name, Kind: llm.KindInvalidRequest, Message: msg}
}

func message(req llm.Request, inputBytes int, id string) string {
	return fmt.Sprintf("%s Helix has no AI provider for this call, so its offline model answered; this reply cost nothing. "+
		"It received %d message(s), %d characters, for model %q. Reply id %s.",
		Prefix, len(req.Messages), inputBytes, req.Model, id)
}

// truncate keeps the answer within max output tokens (at four bytes a token), as a model would.
func truncate(s string, maxTokens int64) (string, string) {
	limit := maxTokens * 4
	if int64(len(s)) <= limit {
		return s, "stop"
	}
	cut := int(limit)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut], "length"
}

func tokens(n int) int64 { return int64(math.Ceil(float64(n) / 4)) }

// fingerprint hashes everything that shapes the answer, with lengths so that distinct requests
// cannot collide by concatenation.
func fingerprint(req llm.Request) [32]byte {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(req.Model))
	for _, m := range req.Messages {
		field([]byte(m.Role))
		field([]byte(m.Content))
	}
	field(fmt.Appendf(nil, "%d/%t", req.MaxOutputTokens, req.JSON))
	if req.Temperature != nil {
		field(fmt.Appendf(nil, "%g", *req.Temperature))
	}
	field(req.Schema)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

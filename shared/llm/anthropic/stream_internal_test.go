package anthropic

import (
	"encoding/json"
	"testing"

	sdk "github.com/anthropics/anthropic-sdk-go"

	"github.com/helixhq/helix/shared/llm"
)

// message_delta's usage has had several shapes: only output_tokens (older), the cumulative
// counts, and possibly the cache-write breakdown. Each field it carries replaces message_start's.
func TestMergeDeltaUsage(t *testing.T) {
	var start sdk.Usage
	if err := json.Unmarshal([]byte(`{"input_tokens":100,"cache_creation_input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":20,"ephemeral_1h_input_tokens":10},"cache_read_input_tokens":40,"output_tokens":1}`), &start); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		delta string
		want  llm.Usage
	}{
		{"output only", `{"output_tokens":15}`,
			llm.Usage{InputTokens: 100, CachedInputTokens: 40, CacheWriteTokens: 20, CacheWrite1hTokens: 10, OutputTokens: 15}},
		{"cumulative counts", `{"input_tokens":100,"cache_creation_input_tokens":30,"cache_read_input_tokens":40,"output_tokens":25,"output_tokens_details":{"thinking_tokens":5}}`,
			llm.Usage{InputTokens: 100, CachedInputTokens: 40, CacheWriteTokens: 20, CacheWrite1hTokens: 10, OutputTokens: 20, ReasoningTokens: 5}},
		{"with the breakdown", `{"cache_creation_input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":30},"output_tokens":3}`,
			llm.Usage{InputTokens: 100, CachedInputTokens: 40, CacheWriteTokens: 0, CacheWrite1hTokens: 30, OutputTokens: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d sdk.MessageDeltaUsage
			if err := json.Unmarshal([]byte(tt.delta), &d); err != nil {
				t.Fatal(err)
			}
			s := &stream{acc: start}
			s.merge(d)
			if s.Resp.Usage != tt.want || !s.Resp.HasUsage {
				t.Errorf("usage %+v, want %+v", s.Resp.Usage, tt.want)
			}
		})
	}
}

package lambdarun

// What Helix's functions need around them to run on a laptop: their template.yaml settings, the
// development defaults `make dev` uses, and local stand-ins for the AWS services they call.

import (
	"sort"
	"time"

	"github.com/helixhq/helix/infra/devenv"
)

// Settings are a function's MemorySize and Timeout in template.yaml.
type Settings struct {
	MemoryMB int
	Timeout  time.Duration
}

// functionSettings mirrors template.yaml (Globals: 256 MB, 10 s; the overrides per function).
var functionSettings = map[string]Settings{
	"route":     {MemoryMB: 256, Timeout: 28 * time.Second},
	"budget":    {MemoryMB: 256, Timeout: 10 * time.Second},
	"chat":      {MemoryMB: 256, Timeout: 28 * time.Second},
	"synthesis": {MemoryMB: 256, Timeout: 300 * time.Second},
	"audit":     {MemoryMB: 256, Timeout: 55 * time.Second},
	"optimize":  {MemoryMB: 512, Timeout: 300 * time.Second},
	"migrate":   {MemoryMB: 256, Timeout: 600 * time.Second},
}

// streamSettings mirrors template.yaml's streaming twins, the same binaries behind Function URLs
// (HELIX_LAMBDA_ENTRY=function_url) with Timeouts of their own: RouteStreamFunction and
// ChatStreamFunction.
var streamSettings = map[string]Settings{
	"route": {MemoryMB: 256, Timeout: 120 * time.Second},
	"chat":  {MemoryMB: 256, Timeout: 90 * time.Second},
}

// StreamSettings returns the template's settings of function fn's streaming twin, and whether
// it has one.
func StreamSettings(fn string) (Settings, bool) {
	s, ok := streamSettings[fn]
	return s, ok
}

// FunctionSettings returns the template's settings of Helix function fn (the Globals for a
// function it does not know).
func FunctionSettings(fn string) Settings {
	if s, ok := functionSettings[fn]; ok {
		return s
	}
	return Settings{MemoryMB: 256, Timeout: 10 * time.Second}
}

// Functions lists the functions FunctionSettings knows, sorted.
func Functions() []string {
	var names []string
	for n := range functionSettings {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// usesQueue are the functions that send synthesis jobs (HELIX_SYNTHESIS_QUEUE_URL in the template).
var usesQueue = map[string]bool{"chat": true, "audit": true}

// SynthesisQueue is the name of the local synthesis queue.
const SynthesisQueue = "helix-synthesis"

// Local is the AWS around the functions, on this machine: an SQS endpoint for the synthesis
// queue and an endpoint for CloudFormation's custom-resource responses.
type Local struct {
	SQS            *SQS
	CloudFormation *CloudFormation
}

// StartLocal starts both endpoints.
func StartLocal() (*Local, error) {
	q, err := StartSQS()
	if err != nil {
		return nil, err
	}
	c, err := StartCloudFormation()
	if err != nil {
		q.Close()
		return nil, err
	}
	return &Local{SQS: q, CloudFormation: c}, nil
}

// Close stops both endpoints.
func (l *Local) Close() {
	l.SQS.Close()
	l.CloudFormation.Close()
}

// Env is the environment of function fn over the database at databaseURL: the development
// defaults of `make dev` (its JWT settings, HELIX_OFFLINE=fallback so no provider key is needed,
// the published development audit keys), the template's database settings, and the local SQS
// endpoint and queue for the functions that send jobs. A caller's own variables go after it.
func (l *Local) Env(fn, databaseURL string) []string {
	defaults := devenv.Defaults()
	keys := make([]string, 0, len(defaults))
	for k := range defaults {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := []string{"DATABASE_URL=" + databaseURL, "HELIX_DB_MAX_CONNS=2", "HELIX_DB_EXEC_MODE=exec"}
	for _, k := range keys {
		env = append(env, k+"="+defaults[k])
	}
	env = append(env, "HELIX_AUDIT_VERIFIER_KEY="+devenv.AuditVerifierKey)
	if fn == "audit" { // the one function that signs checkpoints
		env = append(env, "HELIX_AUDIT_SIGNING_KEY="+devenv.AuditSigningKey)
	}
	if usesQueue[fn] {
		env = append(env, l.SQS.Env()...)
		env = append(env, "HELIX_SYNTHESIS_QUEUE_URL="+l.SQS.QueueURL(SynthesisQueue))
	}
	return env
}

// Event is the payload to send function fn: a custom resource event (the migrate function's)
// gets its ResponseURL on the local CloudFormation endpoint; others go as they are.
func (l *Local) Event(fn string, payload []byte) ([]byte, error) {
	if fn != "migrate" {
		return payload, nil
	}
	return l.CloudFormation.Rewrite(payload)
}

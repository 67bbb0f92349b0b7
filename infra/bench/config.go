package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The steps BENCH_ONLY can pick, in the order they run.
const (
	stepRoute     = "route"
	stepGateway   = "gateway"
	stepChat      = "chat"
	stepDelivery  = "delivery"
	stepIdle      = "idle"
	stepRouter    = "router"
	stepLedger    = "ledger"
	stepSynthesis = "synthesis"
	stepSizes     = "sizes"
)

// allSteps returns the selectable steps in run order.
func allSteps() []string {
	return []string{stepRoute, stepGateway, stepChat, stepDelivery, stepIdle, stepRouter, stepLedger, stepSynthesis,
		stepAuditIntegrate, stepAuditVerify, stepAuditProof, stepAuditRun, stepAuditV1, stepMonitoring, stepLambda, stepStream, stepProfile, stepSizes}
}

// config is the bench's tunables, read from the environment.
type config struct {
	duration   time.Duration // BENCH_DURATION: measured load per /ai-router/route run
	gwDuration time.Duration // BENCH_GW_DURATION: measured load per gateway run
	gwRounds   int           // BENCH_GW_ROUNDS: interleaved rounds of the gateway step (direct, portkey, helix)
	warmup     time.Duration // BENCH_WARMUP: unmeasured load before each run
	benchTime  string        // BENCH_TIME: go test -benchtime of the reserve+settle benchmark (3s, 100x)
	mockDelay  time.Duration // BENCH_MOCK_DELAY: the mock upstream's simulated provider latency
	only       []string      // BENCH_ONLY: the steps to run

	chatDuration     time.Duration // BENCH_CHAT_DURATION: measured load of the chat send run
	deliveryMessages int           // BENCH_DELIVERY_MESSAGES: messages the delivery step times
	idleWindow       time.Duration // BENCH_IDLE_WINDOW: how long the idle step counts
	profileSeconds   int           // BENCH_PROFILE_SECONDS: the profile step's CPU profile length
	profileWorkers   int           // BENCH_PROFILE_CONCURRENCY: the profile step's concurrency (and users)
}

// loadConfig reads the tunables, with run.sh's defaults, and reports every bad value at once.
func loadConfig(getenv func(string) string) (config, error) {
	var errs []string
	duration := func(name, def string) time.Duration {
		v := orDefault(getenv(name), def)
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Sprintf("%s=%q is not a duration such as %s", name, v, def))
		}
		return d
	}
	c := config{
		duration:   duration("BENCH_DURATION", "12s"),
		gwDuration: duration("BENCH_GW_DURATION", "12s"),
		warmup:     duration("BENCH_WARMUP", "2s"),
		benchTime:  orDefault(getenv("BENCH_TIME"), "3s"),
		mockDelay:  duration("BENCH_MOCK_DELAY", "0s"),

		chatDuration: duration("BENCH_CHAT_DURATION", "12s"),
		idleWindow:   duration("BENCH_IDLE_WINDOW", "20s"),
	}
	if c.duration == 0 || c.gwDuration == 0 || c.chatDuration == 0 || c.idleWindow == 0 {
		errs = append(errs, "BENCH_DURATION, BENCH_GW_DURATION, BENCH_CHAT_DURATION and BENCH_IDLE_WINDOW must be positive")
	}
	rounds := orDefault(getenv("BENCH_GW_ROUNDS"), "3")
	if n, err := strconv.Atoi(rounds); err != nil || n < 1 {
		errs = append(errs, fmt.Sprintf("BENCH_GW_ROUNDS=%q is not a positive number such as 3", rounds))
	} else {
		c.gwRounds = n
	}
	v := orDefault(getenv("BENCH_DELIVERY_MESSAGES"), "200")
	if n, err := strconv.Atoi(v); err != nil || n < 1 {
		errs = append(errs, fmt.Sprintf("BENCH_DELIVERY_MESSAGES=%q is not a positive number such as 200", v))
	} else {
		c.deliveryMessages = n
	}
	v = orDefault(getenv("BENCH_PROFILE_SECONDS"), "10")
	if n, err := strconv.Atoi(v); err != nil || n < 1 {
		errs = append(errs, fmt.Sprintf("BENCH_PROFILE_SECONDS=%q is not a positive number of seconds such as 10", v))
	} else {
		c.profileSeconds = n
	}
	v = orDefault(getenv("BENCH_PROFILE_CONCURRENCY"), strconv.Itoa(gatewayUsers))
	if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 1024 {
		errs = append(errs, fmt.Sprintf("BENCH_PROFILE_CONCURRENCY=%q is not a concurrency from 1 to 1024 such as %d", v, gatewayUsers))
	} else {
		c.profileWorkers = n
	}
	for _, s := range strings.Split(orDefault(getenv("BENCH_ONLY"), strings.Join(allSteps(), ",")), ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case !slices.Contains(allSteps(), s):
			errs = append(errs, fmt.Sprintf("BENCH_ONLY: unknown step %q (steps: %s)", s, strings.Join(allSteps(), ",")))
		case !slices.Contains(c.only, s):
			c.only = append(c.only, s)
		}
	}
	if len(c.only) == 0 && len(errs) == 0 {
		errs = append(errs, "BENCH_ONLY names no step")
	}
	if len(errs) > 0 {
		return config{}, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return c, nil
}

// wanted reports whether BENCH_ONLY includes any of the steps.
func (c config) wanted(steps ...string) bool {
	for _, s := range steps {
		if slices.Contains(c.only, s) {
			return true
		}
	}
	return false
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

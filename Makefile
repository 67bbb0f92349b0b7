# Helix. The two set-up commands: `make dev` (run locally) and `make test` (run the tests).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Every Lambda function: functions/<name>/main.go, built to bin/<name>/bootstrap; its SAM resource
# is <Name>Function (sam build runs `make build-<Name>Function`). A new function adds one word here.
FUNCTIONS := route budget chat synthesis audit optimize migrate
# lambda.norpc drops the RPC mode provided.al2023 does not use; grpcnotrace stops grpc (pulled in by
# the Gemini SDK) from importing x/net/trace, whose html/template use defeats the linker's dead-code
# elimination and more than doubled the route binary (50 MB -> 29 MB).
# HELIX_VERSION names the build in the audit log's deployment entries: the git revision where
# there is one; sam build copies the sources without .git, so `make deploy` passes it in, and a
# build without either is named by its time.
HELIX_VERSION ?= $(shell git describe --always --dirty --abbrev=12 2>/dev/null || date -u +build-%Y%m%dT%H%M%SZ)
GOFLAGS_LAMBDA := -tags lambda.norpc,grpcnotrace -trimpath -ldflags="-s -w -X github.com/helixhq/helix/shared/app.buildVersion=$(HELIX_VERSION)"
PG := bash infra/pg/ensure.sh
# staticcheck runs from its own module: resolving it inside ours would pull x/exp versions the proxy lacks.
STATICCHECK_VERSION := v0.8.2

.PHONY: help dev test test-pgbouncer test-short lint bench bench-profile build invoke migrate token stepup-hash audit-key audit-check template-check deploy clean pg-stop \
	$(addprefix build-,$(FUNCTIONS)) build-RouteStreamFunction build-ChatStreamFunction

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

dev: ## run every HTTP function on 127.0.0.1:PORT (default 3000; Postgres from DATABASE_URL, else the project's own)
	@url="$${DATABASE_URL:-$$($(PG) --database helix_dev)}" && \
	DATABASE_URL="$$url" go run ./infra/devserver

test: lint template-check ## vet, staticcheck, the SAM template check, every test with -race on fresh databases, and the main paths through PgBouncer
	HELIX_TEST_PG_URL="$$($(PG))" go test -race -count=1 -timeout 20m ./...
	@$(MAKE) -s test-pgbouncer

# The integration suite's main paths (money, execution, chat, synthesis, audit, migrations)
# again, through a real PgBouncer in transaction pooling mode with the functions' exec mode.
PGBOUNCER_PKGS := ./shared/pgtest/ ./shared/postgres/ ./shared/postgres/chatstore/ ./shared/postgres/auditstore/ \
	./shared/execute/ ./shared/app/routeapp/ ./shared/app/auditapp/ ./shared/app/synthesisapp/ ./functions/route/ \
	./functions/budget/ ./functions/chat/ ./functions/synthesis/ ./functions/audit/ ./functions/migrate/ \
	./infra/migrations/ ./shared/httpapi/chatapi/

test-pgbouncer: ## the main integration paths through PgBouncer (transaction pooling, exec mode), which it finds or starts
	HELIX_TEST_PG_URL="$$($(PG))" HELIX_TEST_PGBOUNCER_URL="$$(bash infra/pg/pgbouncer.sh)" go test -count=1 -timeout 20m $(PGBOUNCER_PKGS)

test-short: ## the tests without -race, for a quick loop
	HELIX_TEST_PG_URL="$$($(PG))" go test -count=1 ./...

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

template-check: ## validate template.yaml against the official SAM schema (copy in infra/sam) and its CORS lists against shared/httpapi
	go test -count=1 ./infra/sam/

bench: ## benchmarks (infra/bench, tunables BENCH_*, BENCH_ONLY=step,...): routing, reserve+settle at concurrency 1/16/64, HTTP load, /v1 gateway overhead, chat sends, delivery to a waiting device, idle long-polls, synthesis DB time, the audit log (sequencing, verification and proofs over 1M entries, one audit minute, /v1 with auditing on vs off), bootstrap sizes
	go run ./infra/bench

bench-profile: ## where each /v1/chat/completions request's CPU goes at concurrency 64 (bench step profile): the dev server's CPU profile by area, each process's CPU per request, pg_stat_statements, commits and WAL per request (tunable BENCH_PROFILE_SECONDS, BENCH_PROFILE_CONCURRENCY)
	BENCH_ONLY=profile go run ./infra/bench

build: $(addprefix build-,$(FUNCTIONS)) ## cross-compile each function to bin/<fn>/bootstrap (linux/arm64), zip it to bin/<fn>.zip, print the sizes
	@go run ./infra/pack -dir bin

# build_function NAME OUT: the Lambda binary of functions/NAME, written to OUT.
build_function = GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build $(GOFLAGS_LAMBDA) -o $(2) ./functions/$(1)

$(addprefix build-,$(FUNCTIONS)): build-%:
	$(call build_function,$*,bin/$*/bootstrap)

# `sam build` calls build-<LogicalId> with ARTIFACTS_DIR set (BuildMethod: makefile): RouteFunction
# builds functions/route. The streaming twins behind Function URLs run the same binaries as their
# HTTP API functions (HELIX_LAMBDA_ENTRY tells them apart): their rules name the binary, and come
# before the pattern, which would look for functions/routestream (infra/sam's test reads them).
build-RouteStreamFunction:
	$(call build_function,route,$(ARTIFACTS_DIR)/bootstrap)
build-ChatStreamFunction:
	$(call build_function,chat,$(ARTIFACTS_DIR)/bootstrap)
build-%Function:
	$(call build_function,$(shell echo '$*' | tr '[:upper:]' '[:lower:]'),$(ARTIFACTS_DIR)/bootstrap)

invoke: ## run one function's real handler with a sample event: make invoke FN=route EVENT=events/route/post-ai-router-route.json
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "make invoke: name the function and the event, e.g. make invoke FN=route EVENT=events/route/post-ai-router-route.json" >&2; exit 2; }
	go run ./infra/invoke -fn $(FN) -event $(EVENT)

migrate: ## apply pending migrations to DATABASE_URL
	@test -n "$$DATABASE_URL" || { echo "set DATABASE_URL"; exit 2; }
	go run ./infra/migrate

# USER must come from the command line: make's USER is otherwise the shell's login name (root).
token: ## print a dev bearer token: make token USER=alice [ROLE=admin] [TTL=1h]
	@$(if $(filter command line,$(origin USER)),,echo "make token: name the user, e.g. make token USER=alice [ROLE=admin] [TTL=1h]" >&2; exit 2;) \
	go run ./infra/token -user "$(USER)" $(if $(ROLE),-role "$(ROLE)") $(if $(TTL),-ttl "$(TTL)")

stepup-hash: ## read a step-up key on stdin and print its bcrypt hash for HELIX_STEPUP_KEY_HASH
	@go run ./infra/stepuphash

audit-key: ## print a new key pair for the audit log's checkpoints: make audit-key [NAME=helix-audit-prod]
	@go run ./infra/auditkey $(if $(NAME),-name "$(NAME)")

audit-check: ## check the audit log only ever grew: make audit-check URL=<api> KEY=<verifier key> CHECKPOINTS=<file> (admin token in HELIX_TOKEN)
	@go run ./infra/auditcheck -url "$(URL)" -key "$(KEY)" -checkpoints "$(or $(CHECKPOINTS),-)"

deploy: ## sam build && sam deploy for ENV (default dev), see samconfig.toml
	HELIX_VERSION="$(HELIX_VERSION)" sam build && sam deploy --config-env $${ENV:-dev}

pg-stop: ## stop the project's own Postgres
	bash infra/pg/stop.sh

clean: ## remove build output
	rm -rf bin .aws-sam

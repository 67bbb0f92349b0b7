#!/usr/bin/env bash
# `make bench`: Helix's performance numbers, for reporting (nothing here is a pass/fail target).
#
#   1. POST /ai-router/route through the dev server, at concurrency 1 and 64 (infra/loadgen)
#   2. the in-process routing decision (BenchmarkRoute* in shared/router)
#   3. budget reserve+settle pairs on Postgres at concurrency 1, 16 and 64 (shared/store)
#   4. each function's Lambda bootstrap size after `make build`
#
# Everything goes to stdout and to bench-results/<UTC timestamp>.txt. Every step runs even when
# an earlier one failed; the script exits non-zero if any did. Tunables (environment):
#   BENCH_DURATION  load duration per concurrency (default 15s)
#   BENCH_WARMUP    unmeasured load before each run (default 2s)
#   BENCH_TIME      -benchtime of the reserve+settle benchmark (default 3s)
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

duration=${BENCH_DURATION:-15s}
warmup=${BENCH_WARMUP:-2s}
benchtime=${BENCH_TIME:-3s}
body='{"operation_id":"email-compose","estimated_tokens":100}'

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench-results
out="bench-results/$stamp.txt"

failed=()
started=$SECONDS
# step TITLE: a section header, stamped with the seconds since the start.
step() { printf '\n=== [%ds] %s\n' "$((SECONDS - started))" "$*"; }
fail() {
	echo "FAILED: $*"
	failed+=("$*")
}

# Globals, because the EXIT trap runs after bench() has returned.
tmp=""
server_pid=""
cleanup() {
	stop_server
	if [[ -n "$tmp" ]]; then rm -rf "$tmp"; fi
}
stop_server() {
	if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	server_pid=""
}

bench() {
	tmp=$(mktemp -d)
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	trap 'echo "FAILED: $BASH_COMMAND (infra/bench/run.sh line $LINENO); stopping"' ERR

	echo "Helix bench  $stamp"
	echo "commit   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (working tree has changes)')"
	echo "go       $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH)"
	echo "cpu      $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "load     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; anything else running skews every number below)"
	echo "note     the load generator, the dev server and Postgres all share these CPUs"

	step "Postgres"
	local server_url db_url
	server_url=$(bash infra/pg/ensure.sh)
	db_url=$(bash infra/pg/ensure.sh --database helix_bench)
	echo "server   ${server_url%%\?*}"
	echo "database ${db_url%%\?*}"

	step "build the dev server and the load generator"
	go build -o "$tmp/devserver" ./infra/devserver
	go build -o "$tmp/loadgen" ./infra/loadgen
	echo "ok"

	step "POST /ai-router/route through the dev server (HELIX_DB_MAX_CONNS=16)"
	if http_load "$tmp" "$db_url"; then :; else fail "HTTP load"; fi
	# The server is stopped before the Go benchmarks, so it does not compete with them.
	stop_server

	step "routing decision in process: go test -run '^\$' -bench 'BenchmarkRoute' -benchmem ./shared/router/"
	local log="$tmp/router.txt"
	if go test -run '^$' -bench 'BenchmarkRoute' -benchmem ./shared/router/ 2>&1 | tee "$log"; then
		grep -q '^Benchmark' "$log" || echo "(no BenchmarkRoute* in shared/router yet)"
	else
		fail "router benchmark"
	fi

	step "reserve+settle on Postgres: go test -run '^\$' -bench BenchmarkReserveSettle -benchtime $benchtime ./shared/store/"
	if HELIX_TEST_PG_URL="$server_url" go test -run '^$' -bench BenchmarkReserveSettle -benchtime "$benchtime" ./shared/store/; then :; else
		fail "reserve+settle benchmark"
	fi

	step "Lambda bootstrap sizes: make build (linux/arm64, target <= 15 MB each)"
	if make --no-print-directory build >"$tmp/build.txt" 2>&1; then
		local f
		for f in bin/*/bootstrap; do
			awk -v f="$f" -v b="$(stat -c %s "$f")" 'BEGIN { printf "%-24s %10d bytes  %6.2f MB (%.2f MiB)\n", f, b, b / 1e6, b / 1048576 }'
		done
	else
		cat "$tmp/build.txt"
		fail "make build"
	fi
}

# http_load TMP DATABASE_URL: start the dev server on a free port, load it at -c 1 and -c 64.
http_load() {
	local tmp=$1 db_url=$2 port="" p token
	for p in $(shuf -i 20000-60999 -n 40); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			port=$p
			break
		fi
	done
	[[ -n "$port" ]] || { echo "no free port found"; return 1; }

	PORT=$port DATABASE_URL=$db_url HELIX_LOG_LEVEL=warn HELIX_DB_MAX_CONNS=16 \
		"$tmp/devserver" >"$tmp/devserver.log" 2>&1 &
	server_pid=$!
	local base="http://127.0.0.1:$port" up=""
	for _ in $(seq 1 150); do
		if ! kill -0 "$server_pid" 2>/dev/null; then
			echo "the dev server exited:"
			cat "$tmp/devserver.log"
			server_pid=""
			return 1
		fi
		if curl -fsS -o /dev/null --max-time 1 "$base/healthz" 2>/dev/null; then
			up=1
			break
		fi
		sleep 0.2
	done
	[[ -n "$up" ]] || { echo "the dev server did not answer $base/healthz in 30s:"; cat "$tmp/devserver.log"; return 1; }
	echo "dev server on $base (pid $server_pid)"

	token=$(go run ./infra/token -user bench-user) || { echo "could not mint a token"; return 1; }
	echo "request  POST $base/ai-router/route  $body"
	echo "sample   $(curl -sS -X POST "$base/ai-router/route" -H "Authorization: Bearer $token" \
		-H 'Content-Type: application/json' -d "$body" | head -c 300)"

	local c rc=0
	for c in 1 64; do
		echo
		echo "\$ loadgen -c $c -d $duration -warmup $warmup"
		"$tmp/loadgen" -url "$base/ai-router/route" -token "$token" -body "$body" \
			-c "$c" -d "$duration" -warmup "$warmup" || rc=1
	done
	if grep -q '"level":"ERROR"' "$tmp/devserver.log"; then
		echo "the dev server logged errors (first 5):"
		grep '"level":"ERROR"' "$tmp/devserver.log" | head -5
		rc=1
	fi
	return $rc
}

main() {
	bench
	step "summary"
	echo "total time $((SECONDS - started))s; written to $out"
	if ((${#failed[@]} > 0)); then
		printf 'failed step: %s\n' "${failed[@]}"
		return 1
	fi
	echo "all steps ran"
}

# Run in a subshell so its EXIT trap (stopping the dev server) fires before tee finishes.
(main) 2>&1 | tee "$out"
exit "${PIPESTATUS[0]}"

#!/usr/bin/env bash
# `make bench`: Helix's performance numbers, for reporting (nothing here is a pass/fail target).
#
#   1. POST /ai-router/route through the dev server, at concurrency 1 and 64 (infra/loadgen), once
#      per query exec mode: HELIX_DB_EXEC_MODE=exec (the default, safe behind PgBouncer / RDS
#      Proxy) and HELIX_DB_EXEC_MODE=cache_describe
#   2. gateway overhead: POST /v1/chat/completions through Helix (auth, route, reserve, provider
#      call, settle + log) against the same request sent straight to a local mock upstream
#      (infra/mockllm), at concurrency 1 and 64 (at 64 once with one user, whose budget row every
#      request shares, and once with 64 users, one per worker); then a check in Postgres that
#      every request Helix answered was reserved, settled and logged, and nothing is left reserved
#   3. the in-process routing decision (BenchmarkRoute* in shared/router)
#   4. budget reserve+settle pairs on Postgres at concurrency 1, 16 and 64 (shared/store)
#   5. each function's Lambda bootstrap size after `make build`
#
# Everything goes to stdout and to bench-results/<UTC timestamp>.txt. Every step runs even when
# an earlier one failed; the script exits non-zero if any did. Tunables (environment):
#   BENCH_DURATION     load duration per run of step 1 (default 12s)
#   BENCH_GW_DURATION  load duration per run of step 2 (default 12s)
#   BENCH_WARMUP       unmeasured load before each run (default 2s)
#   BENCH_TIME         -benchtime of the reserve+settle benchmark (default 3s)
#   BENCH_MOCK_DELAY   simulated provider latency of the mock upstream (default 0s)
#   BENCH_ONLY         run only these steps, comma-separated: route,gateway,router,ledger,sizes
#                      (default: all)
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

duration=${BENCH_DURATION:-12s}
gw_duration=${BENCH_GW_DURATION:-12s}
warmup=${BENCH_WARMUP:-2s}
benchtime=${BENCH_TIME:-3s}
mock_delay=${BENCH_MOCK_DELAY:-0s}
only=${BENCH_ONLY:-route,gateway,router,ledger,sizes}
route_body='{"operation_id":"email-compose","estimated_tokens":100}'
direct_body='{"model":"deepseek-chat","messages":[{"role":"user","content":"Hello"}],"max_tokens":64}'
helix_body='{"model":"auto","messages":[{"role":"user","content":"Hello"}],"max_tokens":64}'
# The gateway's targets at concurrency 64 (issue 3), reported, not enforced.
target_p50_ms=1
target_p99_ms=5

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench-results
out="bench-results/$stamp.txt"

failed=()
recap=()
started=$SECONDS
# step TITLE: a section header, stamped with the seconds since the start.
step() { printf '\n=== [%ds] %s\n' "$((SECONDS - started))" "$*"; }
fail() {
	echo "FAILED: $*"
	failed+=("$*")
}
# wanted STEP: whether BENCH_ONLY includes the step.
wanted() { [[ ",$only," == *",$1,"* ]]; }

# Globals, because the EXIT trap runs after bench() has returned.
tmp=""
db_url=""
server_pid=""
server_log=""
base=""
mock_pid=""
mock_url=""
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	stop_server
	stop_mock
	if [[ -n "$tmp" ]]; then rm -rf "$tmp"; fi
}
# stop PID: SIGTERM, then SIGKILL if it is still there after 10s.
stop() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill "$pid" 2>/dev/null || true
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "pid $pid ignored SIGTERM for 10s; killing it"
		kill -9 "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}
stop_server() {
	if [[ -n "$server_pid" ]]; then stop "$server_pid"; fi
	server_pid=""
}
stop_mock() {
	if [[ -n "$mock_pid" ]]; then stop "$mock_pid"; fi
	mock_pid=""
}

bench() {
	tmp=$(mktemp -d)
	trap cleanup EXIT
	trap 'echo "interrupted: stopping the servers"; exit 130' INT TERM
	trap 'echo "FAILED: $BASH_COMMAND (infra/bench/run.sh line $LINENO); stopping"' ERR

	echo "Helix bench  $stamp"
	echo "commit   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (working tree has changes)')"
	echo "go       $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH)"
	echo "cpu      $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "load     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; anything else running skews every number below)"
	echo "note     the load generator, the dev server, the mock upstream and Postgres all share these CPUs"

	step "Postgres"
	local server_url
	server_url=$(bash infra/pg/ensure.sh)
	db_url=$(bash infra/pg/ensure.sh --database helix_bench)
	echo "server   ${server_url%%\?*}"
	echo "database ${db_url%%\?*}"

	step "build the dev server, the load generator, the mock upstream and the token tool; find jq"
	go build -o "$tmp/devserver" ./infra/devserver
	go build -o "$tmp/loadgen" ./infra/loadgen
	go build -o "$tmp/mockllm" ./infra/mockllm
	go build -o "$tmp/token" ./infra/token
	ensure_jq
	echo "ok"

	local mode
	if wanted route; then
		for mode in exec cache_describe; do
			step "POST /ai-router/route through the dev server (HELIX_DB_EXEC_MODE=$mode, HELIX_DB_MAX_CONNS=16)"
			if route_load "$mode"; then :; else fail "HTTP load /ai-router/route ($mode)"; fi
			# Each server is stopped when its step ends, so it does not compete with the next.
			stop_server
		done
		route_table
	fi

	if wanted gateway; then
		step "gateway overhead: POST /v1/chat/completions through Helix vs straight to the mock upstream"
		if gateway; then :; else fail "gateway overhead"; fi
		stop_server
		stop_mock
	fi

	if wanted router; then
		router_bench
	fi
	if wanted ledger; then
		step "reserve+settle on Postgres: go test -run '^\$' -bench BenchmarkReserveSettle -benchtime $benchtime ./shared/postgres/"
		if HELIX_TEST_PG_URL="$server_url" go test -run '^$' -bench BenchmarkReserveSettle -benchtime "$benchtime" ./shared/postgres/; then :; else
			fail "reserve+settle benchmark"
		fi
	fi
	if wanted sizes; then
		sizes
	fi
}

router_bench() {
	step "routing decision in process: go test -run '^\$' -bench 'BenchmarkRoute' -benchmem ./shared/router/"
	local log="$tmp/router.txt"
	if go test -run '^$' -bench 'BenchmarkRoute' -benchmem ./shared/router/ 2>&1 | tee "$log"; then
		grep -q '^Benchmark' "$log" || echo "(no BenchmarkRoute* in shared/router yet)"
	else
		fail "router benchmark"
	fi
}

sizes() {
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

# ensure_jq: the summaries are computed with jq; install it from Debian when missing and root.
ensure_jq() {
	command -v jq >/dev/null 2>&1 && return 0
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
		echo "jq is missing; installing it with apt-get"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null ||
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }
	fi
	command -v jq >/dev/null 2>&1 || { echo "jq is required (apt-get install jq)"; return 1; }
}

free_port() {
	local p
	for p in $(shuf -i 20000-60999 -n 40); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "no free port found" >&2
	return 1
}

# start_server NAME [VAR=VALUE...]: start the dev server on a free port against the bench database
# with the given extra environment, and wait for /healthz. Sets server_pid, server_log and base.
# Provider settings from the caller's environment are dropped, so no run reaches a real provider,
# and HELIX_OFFLINE is left unset (the dev server's default: only providers without a key answer
# from the offline model).
start_server() {
	local name=$1 port
	shift
	port=$(free_port) || return 1
	server_log="$tmp/$name.log"
	env -u HELIX_OFFLINE -u DEEPSEEK_API_KEY -u DEEPSEEK_BASE_URL -u GEMINI_API_KEY -u GEMINI_BASE_URL \
		-u ANTHROPIC_API_KEY -u ANTHROPIC_BASE_URL -u HELIX_OPENAI_COMPAT_PROVIDERS \
		PORT="$port" DATABASE_URL="$db_url" HELIX_LOG_LEVEL=warn HELIX_DB_MAX_CONNS=16 "$@" \
		"$tmp/devserver" >"$server_log" 2>&1 &
	server_pid=$!
	base="http://127.0.0.1:$port"
	local _
	for _ in $(seq 1 150); do
		if ! kill -0 "$server_pid" 2>/dev/null; then
			echo "the dev server exited:"
			cat "$server_log"
			server_pid=""
			return 1
		fi
		if curl -fsS -o /dev/null --max-time 1 "$base/healthz" 2>/dev/null; then
			echo "dev server on $base (pid $server_pid; $*)"
			return 0
		fi
		sleep 0.2
	done
	echo "the dev server did not answer $base/healthz in 30s:"
	cat "$server_log"
	return 1
}

# server_errors: non-zero (and the first lines) when the dev server logged errors.
server_errors() {
	if grep -q '"level":"ERROR"' "$server_log"; then
		echo "the dev server logged errors (first 5):"
		grep '"level":"ERROR"' "$server_log" | head -5
		return 1
	fi
}

# load NAME URL BODY CONC DURATION [TOKEN [TOKEN_FILE]]: run the load generator with -json into
# $tmp/NAME.json and print one line of it; with TOKEN_FILE (one token a line) worker i sends line
# i mod n instead of TOKEN. Non-zero when the run failed or had failed requests.
load() {
	local name=$1 url=$2 body=$3 c=$4 d=$5 token=${6:-} token_file=${7:-} rc=0
	local args=(-url "$url" -body "$body" -c "$c" -d "$d" -warmup "$warmup" -json)
	local shown="loadgen -url $url -body '$body' -c $c -d $d -warmup $warmup -json"
	if [[ -n "$token_file" ]]; then
		args+=(-token-file "$token_file")
		shown+=" -token-file TOKENS  # $(grep -c . "$token_file") tokens, one user each"
	elif [[ -n "$token" ]]; then
		args+=(-token "$token")
		# shellcheck disable=SC2016 # shown as written, not expanded
		shown+=' -token "$TOKEN"'
	fi
	echo "\$ $shown"
	"$tmp/loadgen" "${args[@]}" >"$tmp/$name.json" 2>"$tmp/$name.err" || rc=$?
	if ! jq -e '.requests' "$tmp/$name.json" >/dev/null 2>&1; then
		echo "  no summary (exit $rc):"
		sed 's/^/  /' "$tmp/$name.err"
		return 1
	fi
	jq -r '"  \(.requests) requests in \(.elapsed_seconds * 10 | round / 10)s: \(.requests_per_second | round) req/s, " +
		"p50 \(.p50_ms * 1000 | round / 1000) ms, p90 \(.p90_ms * 1000 | round / 1000) ms, " +
		"p99 \(.p99_ms * 1000 | round / 1000) ms, max \(.max_ms * 1000 | round / 1000) ms; " +
		"errors \(.errors) (statuses \(.statuses | to_entries | map("\(.key): \(.value)") | join(", ")))"' "$tmp/$name.json"
	if ((rc != 0)); then
		sed 's/^/  /' "$tmp/$name.err"
	fi
	return "$rc"
}

# route_load MODE: /ai-router/route at -c 1 and -c 64 on a dev server with HELIX_DB_EXEC_MODE=MODE.
route_load() {
	local mode=$1 token c rc=0
	start_server "route-$mode" HELIX_DB_EXEC_MODE="$mode" || return 1
	token=$("$tmp/token" -user bench-user) || { echo "could not mint a token"; return 1; }
	echo "request  POST $base/ai-router/route  $route_body"
	echo "sample   $(curl -sS -X POST "$base/ai-router/route" -H "Authorization: Bearer $token" \
		-H 'Content-Type: application/json' -d "$route_body" | head -c 300)"
	for c in 1 64; do
		load "route-$mode-c$c" "$base/ai-router/route" "$route_body" "$c" "$duration" "$token" || rc=1
	done
	server_errors || rc=1
	return $rc
}

# route_table: the two exec modes side by side.
route_table() {
	local mode c f
	echo
	{
		echo "POST /ai-router/route, by HELIX_DB_EXEC_MODE (target at -c 64: >= 3000 req/s, p99 < 10 ms)"
		printf '  %-15s %4s %10s %10s %10s\n' "exec mode" "-c" "req/s" "p50 ms" "p99 ms"
		for mode in exec cache_describe; do
			for c in 1 64; do
				f="$tmp/route-$mode-c$c.json"
				if jq -e '.requests' "$f" >/dev/null 2>&1; then
					jq -r --arg m "$mode" '[$m, .concurrency, .requests_per_second, .p50_ms, .p99_ms] | @tsv' "$f" |
						awk -F'\t' '{ printf "  %-15s %4d %10.0f %10.3f %10.3f\n", $1, $2, $3, $4, $5 }'
				else
					printf '  %-15s %4s %10s\n' "$mode" "$c" "(no result)"
				fi
			done
		done
	} | tee "$tmp/route-table.txt"
	recap+=("$(cat "$tmp/route-table.txt")")
}

# mock_stat FIELD: a counter of the mock upstream (requests, connections).
mock_stat() {
	curl -fsS --max-time 5 "$mock_url/stats" | jq -er ".$1"
}

# sql: run psql on the bench database (statements on stdin), unaligned, tuples only.
sql() {
	psql "$db_url" -X -q -v ON_ERROR_STOP=1 -tA -F ' ' "$@"
}

# gateway: the mock upstream, a dev server whose "deepseek" provider calls it, the load both ways
# at -c 1 and -c 64, the overhead table, then the bookkeeping check in Postgres. Helix is loaded
# twice at -c 64: with one user (every request holds and settles on the same budget row, the
# worst case) and with 64 users (one per worker, no shared budget row).
gateway() {
	local rc=0 prefix token c users=64 _
	"$tmp/mockllm" -addr 127.0.0.1:0 -delay "$mock_delay" >"$tmp/mockllm.out" 2>"$tmp/mockllm.err" &
	mock_pid=$!
	for _ in $(seq 1 100); do
		mock_url=$(head -n 1 "$tmp/mockllm.out" 2>/dev/null || true)
		[[ "$mock_url" == http://* ]] && break
		if ! kill -0 "$mock_pid" 2>/dev/null; then
			echo "the mock upstream exited:"
			cat "$tmp/mockllm.err"
			mock_pid=""
			return 1
		fi
		sleep 0.1
	done
	[[ "$mock_url" == http://* ]] || { echo "the mock upstream printed no URL in 10s"; return 1; }
	echo "mock upstream on $mock_url (pid $mock_pid, -delay $mock_delay)"

	# Users of this run only: <prefix>-one, and <prefix>-u01..u64 for the many-user run. Each gets
	# a limit no run can reach and the warning threshold as high (chat_message is HIGH
	# criticality: above the warning it would wait for an approval instead of running).
	prefix="bench-gw-${stamp,,}"
	sql -v p="$prefix" -v n="$users" <<-'SQL' || { echo "could not set the bench users' budgets"; return 1; }
		INSERT INTO user_budgets (user_id, daily_limit_nano, warning_threshold_nano, updated_by)
		SELECT u, 1000000000000000, 1000000000000000, 'bench'
		FROM (SELECT :'p' || '-one' AS u UNION ALL
		      SELECT :'p' || '-u' || lpad(i::text, 2, '0') FROM generate_series(1, :n) AS i) AS users
		ON CONFLICT (user_id) DO UPDATE SET daily_limit_nano = EXCLUDED.daily_limit_nano,
			warning_threshold_nano = EXCLUDED.warning_threshold_nano, updated_by = EXCLUDED.updated_by, updated_at = now();
	SQL
	echo "users    $prefix-one, and $prefix-u01..u$users (daily limit and warning threshold \$1,000,000 each)"
	token=$("$tmp/token" -user "$prefix-one") || { echo "could not mint a token"; return 1; }
	: >"$tmp/tokens"
	for i in $(seq -w 1 "$users"); do
		"$tmp/token" -user "$prefix-u$i" >>"$tmp/tokens" || { echo "could not mint a token"; return 1; }
	done
	local xact0
	xact0=$(sql -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()") || return 1

	start_server gateway HELIX_DB_EXEC_MODE=exec DEEPSEEK_API_KEY=bench DEEPSEEK_BASE_URL="$mock_url" || return 1
	for _ in $(seq 1 20); do
		grep -q 'deepseek: live' "$server_log" && break
		sleep 0.1
	done
	if ! grep -q 'deepseek: live' "$server_log"; then
		echo "the dev server does not call the mock for deepseek:"
		cat "$server_log"
		return 1
	fi

	echo "direct   POST $mock_url/chat/completions  $direct_body"
	echo "helix    POST $base/v1/chat/completions  $helix_body  (Authorization: Bearer \$TOKEN)"
	local sample
	sample=$(curl -fsS -D "$tmp/sample.headers" -X POST "$base/v1/chat/completions" -H "Authorization: Bearer $token" \
		-H 'Content-Type: application/json' -d "$helix_body") || { echo "the sample request through Helix failed"; return 1; }
	echo "sample   $(head -c 400 <<<"$sample")"
	echo "         $(grep -i '^x-helix-' "$tmp/sample.headers" | tr -d '\r' | tr '\n' ' ')"
	if [[ "$(jq -r '.model' <<<"$sample")" != deepseek ]]; then
		echo "the sample was not answered by the deepseek model (the mock)"
		return 1
	fi

	# run_helix NAME CONC [TOKEN_FILE]: one Helix run, with the mock's counters around it.
	local expected=1 upstream=0 conns=0
	run_helix() {
		local r0 c0 r1 c1 ok
		r0=$(mock_stat requests) && c0=$(mock_stat connections) || return 1
		load "$1" "$base/v1/chat/completions" "$helix_body" "$2" "$gw_duration" "$token" "${3:-}" || rc=1
		r1=$(mock_stat requests) && c1=$(mock_stat connections) || return 1
		ok=$(jq -r '.succeeded // 0' "$tmp/$1.json" 2>/dev/null || echo 0)
		expected=$((expected + ok))
		upstream=$((upstream + r1 - r0))
		conns=$((conns + c1 - c0))
		echo "  upstream: $((r1 - r0)) calls from Helix on $((c1 - c0)) new TCP connections"
	}
	for c in 1 64; do
		echo
		load "gw-direct-c$c" "$mock_url/chat/completions" "$direct_body" "$c" "$gw_duration" || rc=1
		run_helix "gw-helix-c$c" "$c" || return 1
	done
	run_helix "gw-helix-c64-users" 64 "$tmp/tokens" || return 1
	gateway_table || rc=1

	# Checked while the server still runs: the rows exist because each response waited for them.
	echo
	echo "bookkeeping in Postgres for the users $prefix-* (the sample request included):"
	local logged failed_rows odd cost reserved spent settled open
	read -r logged failed_rows odd cost < <(sql -v p="$prefix-" <<-'SQL'
		SELECT count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success),
		       count(*) FILTER (WHERE success AND (provider IS DISTINCT FROM 'deepseek' OR fallback_used)),
		       COALESCE(sum(cost_nano), 0)
		FROM ai_operation_log WHERE starts_with(user_id, :'p');
	SQL
	) || { echo "could not read ai_operation_log"; return 1; }
	read -r reserved spent < <(sql -v p="$prefix-" <<-'SQL'
		SELECT COALESCE(sum(reserved_nano), 0), COALESCE(sum(spent_nano), 0) FROM budget_days WHERE starts_with(user_id, :'p');
	SQL
	) || { echo "could not read budget_days"; return 1; }
	read -r settled open < <(sql -v p="$prefix-" <<-'SQL'
		SELECT count(*) FILTER (WHERE status = 'settled'), count(*) FILTER (WHERE status <> 'settled')
		FROM budget_reservations WHERE starts_with(user_id, :'p');
	SQL
	) || { echo "could not read budget_reservations"; return 1; }
	check() { # check OK TEXT
		if [[ "$1" == 1 ]]; then echo "  ok      $2"; else echo "  WRONG   $2"; rc=1; fi
	}
	check "$((logged == expected))" "ai_operation_log: $logged successful rows for $expected successful requests"
	check "$((failed_rows == 0))" "ai_operation_log: $failed_rows failed rows"
	check "$((odd == 0))" "ai_operation_log: $odd rows not answered by deepseek or marked as fallback"
	check "$((settled == expected && open == 0))" "budget_reservations: $settled settled, $open not settled"
	check "$((reserved == 0))" "budget_days.reserved_nano summed over the users = $reserved"
	check "$((spent == cost))" "budget_days.spent_nano = $spent, sum of logged cost_nano = $cost"
	check "$((upstream + 1 == expected))" "mock upstream: $upstream calls during the Helix runs for $((expected - 1)) requests (one provider call each)"
	server_errors || rc=1

	# Postgres transactions per request: the dev server is stopped first, because a backend
	# reports its counters when it goes idle for a while or exits. The delta includes start-up
	# (migration check, catalog and toggle loads) and cache refreshes, so it is an upper bound of
	# the statements per operation outside explicit transactions (each autocommit statement is
	# one transaction and one round trip in both exec modes).
	stop_server
	sleep 0.5
	local xact1 per
	xact1=$(sql -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()") || return 1
	per=$(awk -v d="$((xact1 - xact0))" -v n="$expected" 'BEGIN { printf "%.2f", d / n }')
	echo "  info    Postgres transactions on the bench database while the Helix server ran: $((xact1 - xact0)) for $expected requests = $per per request"
	echo "  info    upstream TCP connections opened by Helix: $conns for $upstream calls"
	recap+=("Postgres transactions per /v1/chat/completions request (start-up included): $per (issue 3's target: 3 or fewer round trips)")
	return $rc
}

# gateway_table: req/s, p50 and p99 both ways and what Helix adds, per concurrency and users.
gateway_table() {
	echo
	{
		echo "gateway overhead: /v1/chat/completions through Helix vs the mock upstream directly (mock -delay $mock_delay)"
		printf '  %4s  %-16s %10s %10s %10s\n' "-c" "path" "req/s" "p50 ms" "p99 ms"
		gateway_rows 1 gw-direct-c1 gw-helix-c1 "helix, 1 user"
		gateway_rows 64 gw-direct-c64 gw-helix-c64 "helix, 1 user"
		gateway_rows 64 "" gw-helix-c64-users "helix, 64 users"
		echo "  added = helix minus direct at the same -c; targets at -c 64: added p50 <= $target_p50_ms ms, p99 <= $target_p99_ms ms"
	} | tee "$tmp/gateway-table.txt"
	recap+=("$(cat "$tmp/gateway-table.txt")")
	if grep -q 'no result' "$tmp/gateway-table.txt"; then return 1; fi
}

# gateway_rows CONC DIRECT HELIX LABEL: the direct row (when DIRECT is set), the Helix row and
# the difference against the direct run at the same concurrency.
gateway_rows() {
	local c=$1 d="$tmp/gw-direct-c$1.json" h="$tmp/$3.json" label=$4
	if ! jq -e '.requests' "$d" >/dev/null 2>&1 || ! jq -e '.requests' "$h" >/dev/null 2>&1; then
		printf '  %4s  %-16s (no result)\n' "$c" "$label"
		return 0
	fi
	jq -r -n --slurpfile d "$d" --slurpfile h "$h" \
		'[$d[0].requests_per_second, $d[0].p50_ms, $d[0].p99_ms, $h[0].requests_per_second, $h[0].p50_ms, $h[0].p99_ms] | @tsv' |
		awk -F'\t' -v c="$c" -v show_direct="$2" -v label="$label" -v tp50="$target_p50_ms" -v tp99="$target_p99_ms" '{
			if (show_direct != "") printf "  %4d  %-16s %10.0f %10.3f %10.3f\n", c, "direct", $1, $2, $3
			printf "  %4d  %-16s %10.0f %10.3f %10.3f\n", c, label, $4, $5, $6
			a50 = $5 - $2; a99 = $6 - $3
			verdict = ""
			if (c == 64) verdict = sprintf("   target %s", (a50 <= tp50 && a99 <= tp99) ? "met" : "missed")
			printf "  %4d  %-16s %10s %+10.3f %+10.3f%s\n", c, "  added", "", a50, a99, verdict
		}'
}

main() {
	bench
	step "summary"
	local r
	for r in "${recap[@]}"; do
		echo "$r"
		echo
	done
	echo "total time $((SECONDS - started))s; written to $out"
	echo "numbers from a shared machine are noisy: compare runs, not single values"
	if ((${#failed[@]} > 0)); then
		printf 'failed step: %s\n' "${failed[@]}"
		return 1
	fi
	echo "all steps ran"
}

# Run in a subshell so its EXIT trap (stopping the servers) fires before tee finishes.
(main) 2>&1 | tee "$out"
exit "${PIPESTATUS[0]}"

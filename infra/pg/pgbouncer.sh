#!/usr/bin/env bash
# Finds or starts a PgBouncer in transaction pooling mode in front of the Postgres that
# infra/pg/ensure.sh finds or starts, and prints its URL (database "postgres") on stdout; progress
# goes to stderr. `make test` runs the main integration paths through it, as production runs
# behind a transaction pooler (RDS Proxy, PgBouncer).
#
#   1. HELIX_PGBOUNCER_URL set: use that PgBouncer as is.
#   2. Otherwise our own, configured under $HELIX_PG_DATA/pgbouncer (default <repo>/.pgdata,
#      git-ignored: config, pid file, log) on 127.0.0.1:$HELIX_PGBOUNCER_PORT (default 54339, or
#      the one it was set up with, or the next free port). Reused when running with the same
#      settings, (re)started when not. It forwards every database name (a `*` entry) to the server,
#      as the user the client names (trust: the server is ensure.sh's trust-auth cluster). The
#      binary comes from Debian's pgbouncer package, installed with apt-get when missing and we
#      are root; PgBouncer refuses to run as root, so as root it runs as `postgres`.
#
# With --database NAME it prints that database's URL instead (ensure.sh creates it when missing).
# infra/pg/stop.sh stops it. Concurrent callers are serialized with flock.
set -euo pipefail

dbname=""
if [[ "${1:-}" == "--database" ]]; then
	dbname=${2:?--database needs a name}
fi

log() { echo "pgbouncer: $*" >&2; }

# with_database URL NAME: URL with its database swapped for NAME (the query string kept).
with_database() {
	local base=${1%%\?*}
	local query=${1#"$base"}
	echo "${base%/*}/$2$query"
}

if [[ -n "${HELIX_PGBOUNCER_URL:-}" ]]; then
	if [[ -n "$dbname" ]]; then with_database "$HELIX_PGBOUNCER_URL" "$dbname"; else echo "$HELIX_PGBOUNCER_URL"; fi
	exit 0
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
data=${HELIX_PG_DATA:-$repo/.pgdata}
dir=$data/pgbouncer

# The server: ensure.sh's URL (HELIX_PG_URL, or the project's cluster, started when needed).
ensure_args=()
[[ -n "$dbname" ]] && ensure_args=(--database "$dbname")
server=$(bash "$here/ensure.sh" "${ensure_args[@]}")

# Split postgres://[user[:password]@]host[:port]/db[?query] into the parts PgBouncer needs.
rest=${server#*://}
rest=${rest%%\?*}
hostport=${rest%%/*}
userinfo=""
if [[ "$hostport" == *@* ]]; then
	userinfo=${hostport%@*}
	hostport=${hostport##*@}
fi
pguser=${userinfo%%:*}
pguser=${pguser:-postgres}
if [[ "$userinfo" == *:* ]]; then
	log "the server URL carries a password; put a PgBouncer in front of it yourself and set HELIX_PGBOUNCER_URL"
	exit 1
fi
pghost=${hostport%:*}
pgport=5432
[[ "$hostport" == *:* ]] && pgport=${hostport##*:}
if [[ "$pghost" == \[* || -z "$pghost" ]]; then
	log "cannot use server host '$pghost' from $server; set HELIX_PGBOUNCER_URL"
	exit 1
fi

find_pgbouncer() {
	local p
	for p in "$(command -v pgbouncer 2>/dev/null || true)" /usr/sbin/pgbouncer /usr/bin/pgbouncer; do
		if [[ -n "$p" && -x "$p" ]]; then echo "$p"; return 0; fi
	done
	return 1
}

bin=$(find_pgbouncer || true)
if [[ -z "$bin" ]]; then
	if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
		log "pgbouncer not found; install Debian's pgbouncer package or set HELIX_PGBOUNCER_URL"
		exit 1
	fi
	log "installing Debian's pgbouncer package"
	apt-get update -qq >&2
	# The package's own service (port 6432) stays stopped where policy-rc.d forbids starting it;
	# either way ours has its own config and port.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >&2
	bin=$(find_pgbouncer) || { log "pgbouncer installed but its binary was not found"; exit 1; }
fi

# Run PgBouncer as a user it accepts: it refuses root, like Postgres.
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The same lock as ensure.sh (taken after it returned: it holds it while it runs).
mkdir -p "$(dirname "$data")"
exec 9>"$(dirname "$data")/.pgdata.lock"
flock 9

mkdir -p "$dir"
if [[ $(id -u) -eq 0 ]]; then chown postgres: "$dir"; fi
chmod 700 "$dir"
conf=$dir/pgbouncer.ini
pidfile=$dir/pgbouncer.pid

# running_pid: the pid of our PgBouncer when it runs.
running_pid() {
	local pid
	pid=$(cat "$pidfile" 2>/dev/null || true)
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	[[ "$(cat "/proc/$pid/comm" 2>/dev/null || echo pgbouncer)" == pgbouncer ]] || return 1
	echo "$pid"
}

pid=$(running_pid || true)

# The port: HELIX_PGBOUNCER_PORT; else the one our config has (when it is running, or the port
# is still free); else the first free one from 54339.
port=${HELIX_PGBOUNCER_PORT:-}
if [[ -z "$port" && -s "$conf" ]]; then
	port=$(sed -n 's/^listen_port = \([0-9]*\).*/\1/p' "$conf" | tail -n 1)
	if [[ -n "$port" && -z "$pid" ]] && ! port_free "$port"; then port=""; fi
fi
if [[ -z "$port" ]]; then
	port=54339
	while ! port_free "$port"; do port=$((port + 1)); done
fi

# Transaction pooling; pool sizes for tests: a database's pool as large as the pgtest pools in
# front of it (32), so a test that holds one transaction open while another waits on it cannot
# starve; idle server connections go soon (test databases are dropped within seconds), and so do
# the entries PgBouncer makes for each database name it forwards.
new_conf=$(
	cat <<CONF
; helix: written by infra/pg/pgbouncer.sh; rewritten on every start
[databases]
* = host=$pghost port=$pgport

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
pidfile = $pidfile
logfile = $dir/pgbouncer.log
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = $pguser
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 32
min_pool_size = 0
reserve_pool_size = 0
server_idle_timeout = 30
autodb_idle_timeout = 60
query_wait_timeout = 60
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
CONF
)

if [[ -n "$pid" && "$(cat "$conf" 2>/dev/null)" != "$new_conf" ]]; then
	log "restarting PgBouncer (pid $pid): its settings changed"
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	pid=""
fi

url="postgres://$pguser@127.0.0.1:$port/postgres?sslmode=disable"

if [[ -z "$pid" ]]; then
	if ! port_free "$port"; then
		log "port $port is taken; set HELIX_PGBOUNCER_PORT, or HELIX_PGBOUNCER_URL to use a running PgBouncer"
		exit 1
	fi
	printf '%s\n' "$new_conf" >"$conf"
	printf '"%s" ""\n' "$pguser" >"$dir/userlist.txt"
	if [[ $(id -u) -eq 0 ]]; then chown postgres: "$conf" "$dir/userlist.txt"; fi
	rm -f "$pidfile"
	# One log per run (the previous one kept): each dropped test database adds a few lines.
	if [[ -f "$dir/pgbouncer.log" ]]; then mv -f "$dir/pgbouncer.log" "$dir/pgbouncer.log.old"; fi
	log "starting PgBouncer on 127.0.0.1:$port (transaction pooling) in front of $pghost:$pgport"
	# Room for max_client_conn plus the server connections (the soft limit is often 1024, and
	# runuser's PAM session resets it, so raise it in the daemon's own shell). 9>&-: the daemon
	# must not inherit the lock, or it would hold it for its whole life.
	as_pg bash -c 'ulimit -Sn 4096 2>/dev/null || ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true; exec "$@"' \
		pgbouncer "$bin" -q -d "$conf" 9>&- >&2
fi

psql=psql
if ! command -v psql >/dev/null 2>&1; then
	psql=$(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n 1)
fi
for _ in $(seq 1 50); do
	if [[ "$("$psql" "$url" -tAc 'SELECT 1' 2>/dev/null)" == 1 ]]; then
		if [[ -n "$dbname" ]]; then with_database "$url" "$dbname"; else echo "$url"; fi
		exit 0
	fi
	sleep 0.2
done
log "PgBouncer did not become ready; see $dir/pgbouncer.log"
exit 1

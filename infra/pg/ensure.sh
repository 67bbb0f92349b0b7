#!/usr/bin/env bash
# Finds or starts the Postgres that `make dev`, `make test` and `make bench` use, and prints its
# server URL (database "postgres") on stdout; progress goes to stderr.
#
#   1. HELIX_PG_URL set: use that server as is.
#   2. Otherwise the project's own cluster in $HELIX_PG_DATA (default <repo>/.pgdata, git-ignored)
#      on 127.0.0.1:$HELIX_PG_PORT (default 54329): reused when running, created and started when
#      not. The binaries come from Debian's postgresql package, installed with apt-get when missing
#      and we are root. Postgres refuses to run as root, so as root the cluster runs as `postgres`.
#      The cluster preloads pg_stat_statements (tracking statements inside functions too) and
#      times I/O, for `make bench-profile`. An existing cluster whose postgresql.conf sets no
#      shared_preload_libraries gets those settings appended, and is restarted if it runs (which
#      closes every open connection): once, the first time this script sees it.
#
# With --database NAME it also creates that database when missing and prints its URL instead.
# Concurrent callers (parallel test packages) are serialized with flock.
set -euo pipefail

dbname=""
if [[ "${1:-}" == "--database" ]]; then
	dbname=${2:?--database needs a name}
fi

# print_url SERVER_URL: the server URL, or the named database's URL (created when missing).
print_url() {
	local server=$1
	if [[ -z "$dbname" ]]; then
		echo "$server"
		return 0
	fi
	local psql=psql
	[[ -n "${bindir:-}" ]] && psql="$bindir/psql"
	if [[ "$("$psql" "$server" -tAc "SELECT 1 FROM pg_database WHERE datname = '$dbname'")" != 1 ]]; then
		"$psql" "$server" -qc "CREATE DATABASE \"$dbname\"" >/dev/null
		echo "pg: created database $dbname" >&2
	fi
	local base=${server%%\?*}
	local query=${server#"$base"}
	echo "${base%/*}/$dbname$query"
}

if [[ -n "${HELIX_PG_URL:-}" ]]; then
	print_url "$HELIX_PG_URL"
	exit 0
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
data=${HELIX_PG_DATA:-$repo/.pgdata}
log() { echo "pg: $*" >&2; }

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

find_bindir() {
	local d
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then echo "$d"; return 0; fi
	fi
	# Debian keeps server binaries out of PATH, one folder per major version; take the newest.
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
	if [[ -n "$d" && -x "$d/initdb" ]]; then echo "$d"; return 0; fi
	return 1
}

bindir=$(find_bindir || true)
if [[ -z "$bindir" ]]; then
	if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
		log "no Postgres server binaries found; install Debian's postgresql package or set HELIX_PG_URL"
		exit 1
	fi
	log "installing Debian's postgresql package"
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
	bindir=$(find_bindir) || { log "postgresql installed but its binaries were not found"; exit 1; }
fi

# Run a Postgres binary as a user it accepts.
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

mkdir -p "$(dirname "$data")"
lockfile="$(dirname "$data")/.pgdata.lock"
exec 9>"$lockfile"
flock 9

running() { as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }

# The port: HELIX_PG_PORT; else the one an existing cluster was set up with; else the first free
# one from 54329 (another checkout's cluster, or anything else, may hold it).
port=${HELIX_PG_PORT:-}
if [[ -z "$port" && -s "$data/postgresql.conf" ]]; then
	port=$(sed -n 's/^port = \([0-9]*\).*/\1/p' "$data/postgresql.conf" | tail -n 1)
fi
if [[ -z "$port" ]]; then
	port=54329
	while ! port_free "$port"; do port=$((port + 1)); done
fi
url="postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable"

# stats_conf: the settings `make bench-profile` reads Postgres's side with (pg_stat_statements,
# I/O timings), when this Postgres ships the library; nothing otherwise (preloading a library
# that is not there would keep the server from starting).
stats_conf() {
	if [[ ! -f "$("$bindir/pg_config" --pkglibdir 2>/dev/null || echo "$bindir/../lib")/pg_stat_statements.so" ]]; then
		return 0
	fi
	cat <<CONF
# helix: statement and I/O statistics for make bench-profile
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
track_io_timing = on
CONF
	# track_wal_io_timing is Postgres 14's.
	local major
	major=$("$bindir/pg_config" --version 2>/dev/null | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
	if [[ -n "$major" && "$major" -ge 14 ]]; then echo "track_wal_io_timing = on"; fi
}

# has_preload: the cluster's configuration sets shared_preload_libraries (to anything: a value
# someone chose is left alone).
has_preload() {
	grep -Eqs '^[[:space:]]*shared_preload_libraries[[:space:]]*=' "$data/postgresql.conf" "$data/postgresql.auto.conf"
}

if [[ -s "$data/PG_VERSION" ]] && ! has_preload; then
	conf=$(stats_conf)
	if [[ -n "$conf" ]]; then
		log "adding pg_stat_statements and I/O timing to $data/postgresql.conf"
		printf '%s\n' "$conf" >>"$data/postgresql.conf"
		if running; then
			log "restarting Postgres on 127.0.0.1:$port to load pg_stat_statements (its open connections are closed)"
			as_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -m fast -w -t 60 restart >/dev/null 9>&-
		fi
	fi
fi

if ! running; then
	if [[ ! -s "$data/PG_VERSION" ]]; then
		log "creating a cluster in $data on port $port"
		mkdir -p "$data"
		if [[ $(id -u) -eq 0 ]]; then chown postgres: "$data"; fi
		chmod 700 "$data"
		as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
		cat >>"$data/postgresql.conf" <<CONF
# helix: local development and test cluster
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 300
shared_buffers = 256MB
CONF
		stats_conf >>"$data/postgresql.conf"
	fi
	if ! port_free "$port"; then
		log "port $port is taken; set HELIX_PG_PORT, or HELIX_PG_URL to use a running server"
		exit 1
	fi
	log "starting Postgres on 127.0.0.1:$port"
	# 9>&-: the server must not inherit the lock, or it would hold it for its whole life.
	as_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null 9>&-
fi

for _ in $(seq 1 50); do
	if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
		print_url "$url"
		exit 0
	fi
	sleep 0.2
done
log "Postgres did not become ready; see $data/server.log"
exit 1

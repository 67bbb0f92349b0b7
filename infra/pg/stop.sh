#!/usr/bin/env bash
# Stops the project's own Postgres cluster (see ensure.sh) and the PgBouncer in front of it (see
# pgbouncer.sh); the data stays for the next start.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
data=${HELIX_PG_DATA:-$repo/.pgdata}
bouncer_pid=$(cat "$data/pgbouncer/pgbouncer.pid" 2>/dev/null || true)
if [[ "$bouncer_pid" =~ ^[0-9]+$ ]] && kill -0 "$bouncer_pid" 2>/dev/null &&
	[[ "$(cat "/proc/$bouncer_pid/comm" 2>/dev/null || echo pgbouncer)" == pgbouncer ]]; then
	# SIGINT: PgBouncer's safe shutdown (waits for running transactions), then SIGTERM.
	kill -INT "$bouncer_pid"
	for _ in $(seq 1 50); do kill -0 "$bouncer_pid" 2>/dev/null || break; sleep 0.1; done
	kill -TERM "$bouncer_pid" 2>/dev/null || true
	echo "pg: stopped PgBouncer in $data/pgbouncer"
fi
if [[ ! -s "$data/PG_VERSION" ]]; then
	echo "pg: no cluster in $data; nothing to stop"
	exit 0
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [[ -z "$bindir" ]] && command -v pg_ctl >/dev/null 2>&1; then
	bindir=$(dirname "$(command -v pg_ctl)")
fi
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}
if ! as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
	echo "pg: the cluster in $data is not running"
	exit 0
fi
as_pg "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null
echo "pg: stopped the cluster in $data"

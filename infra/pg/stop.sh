#!/usr/bin/env bash
# Stops the project's own Postgres cluster (see ensure.sh); the data stays for the next start.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
data=${HELIX_PG_DATA:-$repo/.pgdata}
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

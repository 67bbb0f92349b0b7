#!/usr/bin/env bash
# Stops the project's own Postgres cluster (see ensure.sh); the data stays for the next start.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
data=${HELIX_PG_DATA:-$repo/.pgdata}
[[ -s "$data/PG_VERSION" ]] || exit 0
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [[ $(id -u) -eq 0 ]]; then
	runuser -u postgres -- "$bindir/pg_ctl" -D "$data" -m fast stop || true
else
	"$bindir/pg_ctl" -D "$data" -m fast stop || true
fi

#!/usr/bin/env bash
# The storage tests run against a real PostgreSQL server as well as SQLite. This starts a private
# server for them (its own data directory, port 55432 on 127.0.0.1, trust authentication, user and
# database "nas"), installing Debian's postgresql first when it is missing and allowed to (root or
# sudo), and prints its URL on stdout. An already running one (same data directory) is reused.
# Without PostgreSQL the PostgreSQL variants of the tests skip, unless NAS_REQUIRE_POSTGRES=1 (CI).
# Usage: export NAS_TEST_POSTGRES_URL="$(bash scripts/ensure-postgres.sh)"
set -uo pipefail
PORT="${NAS_TEST_POSTGRES_PORT:-55432}"
DATA="${NAS_TEST_POSTGRES_DIR:-${TMPDIR:-/tmp}/attention-nas-postgres-$PORT}"
URL="postgresql://nas@127.0.0.1:$PORT/nas"

find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

BIN="$(find_bin)"
if [ -z "$BIN" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "ensure-postgres: no PostgreSQL and no root or sudo to install it; the PostgreSQL tests will skip" >&2
        exit 0
    fi
    echo "ensure-postgres: installing Debian's postgresql for the storage tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y -qq postgresql >/dev/null 2>&1; then
        $SUDO apt-get update -qq >/dev/null 2>&1
        $SUDO apt-get install -y -qq postgresql >/dev/null || {
            echo "ensure-postgres: apt-get could not install postgresql" >&2
            exit 0
        }
    fi
    BIN="$(find_bin)"
fi

# PostgreSQL refuses to run as root: as root, the server runs as the postgres user.
if [ "$(id -u)" -eq 0 ]; then
    AS=(runuser -u postgres --)
else
    AS=()
fi

if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" 2>/dev/null; then
    echo "$URL"
    exit 0
fi
mkdir -p "$DATA"
[ "$(id -u)" -eq 0 ] && chown postgres "$DATA"
if [ ! -f "$DATA/PG_VERSION" ]; then
    "${AS[@]}" "$BIN/initdb" -D "$DATA" -U nas --auth=trust -E UTF8 >"$DATA.initdb.log" 2>&1 || {
        echo "ensure-postgres: initdb failed, see $DATA.initdb.log" >&2
        exit 0
    }
fi
"${AS[@]}" "$BIN/pg_ctl" -D "$DATA" -w -l "$DATA/server.log" \
    -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null || {
    echo "ensure-postgres: the server did not start, see $DATA/server.log" >&2
    exit 0
}
"${AS[@]}" "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U nas -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'nas'" \
    | grep -q 1 || "${AS[@]}" "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U nas nas
echo "$URL"

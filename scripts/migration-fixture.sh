#!/usr/bin/env bash
# Regenerates the migration fixture (homeserver/testdata/migration): a data
# directory written by Parley at COMMIT, on SQLite and on PostgreSQL, which
# TestMigrationFixture opens with today's code. Run it from the repository:
#
#   scripts/migration-fixture.sh COMMIT ADMIN_DATABASE_URL
#
# COMMIT is the code that writes the fixture (git archive: the work tree is
# not touched); ADMIN_DATABASE_URL a PostgreSQL URL allowed to create
# databases (PARLEY_TEST_DATABASE_URL). Needs go, python3, gzip, psql and
# pg_dump of the server's major version. Afterwards, record the golden
# files with today's code:
#
#   go test ./homeserver -run TestMigrationFixture -update-migration-golden
set -euo pipefail

commit=$1 admin=$2
repo=$(git rev-parse --show-toplevel)
out=$repo/homeserver/testdata/migration
work=$(mktemp -d "${TMPDIR:-/tmp}/parley-fixture.XXXXXX")
pid=""
db=""
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[[ -n $db ]] && psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

git -C "$repo" archive "$commit" | tar -x -C "$work" --one-top-level=src
(cd "$work/src" && go build -o "$work/parley" ./cmd/parley)

# serve DATA_DIR DATABASE_URL: runs the fixture's writes on a fresh server,
# then stops it cleanly (SIGTERM), so SQLite folds its WAL into the file.
serve() {
	local dir=$1 url=$2 port=$((20000 + RANDOM % 10000))
	mkdir -p "$dir"
	printf 'rate_limit:\n  enabled: false\npasswords:\n  argon2_memory_kib: 64\n  argon2_time: 1\n' >"$work/parley.yaml"
	PARLEY_SERVER_NAME=localhost PARLEY_LISTEN=127.0.0.1:$port PARLEY_DATA_DIR=$dir PARLEY_DATABASE_URL=$url \
		PARLEY_REGISTRATION=open "$work/parley" serve --config "$work/parley.yaml" >"$work/server.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
		sleep 0.2
	done
	python3 "$repo/scripts/migration-fixture-populate.py" "http://127.0.0.1:$port"
	kill "$pid"
	wait "$pid" || true
	pid=""
}

rm -rf "$out/sqlite" "$out/postgres"
mkdir -p "$out/sqlite" "$out/postgres"

serve "$work/sqlite" ""
[[ -e $work/sqlite/parley.db-wal && -s $work/sqlite/parley.db-wal ]] && { echo "WAL not checkpointed" >&2; exit 1; }
gzip -9n <"$work/sqlite/parley.db" >"$out/sqlite/parley.db.gz"
cp "$work/sqlite/signing.key" "$out/sqlite/"
cp -r "$work/sqlite/media" "$out/sqlite/"

db=parley_fixture_$$
psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path="/" + sys.argv[2]).geturl())' "$admin" "$db")
serve "$work/postgres" "$url"
# Plain SQL with INSERTs (no COPY), so the test can run it as one script.
pg_dump --no-owner --no-privileges --inserts "$url" | gzip -9n >"$out/postgres/dump.sql.gz"
cp "$work/postgres/signing.key" "$out/postgres/"
cp -r "$work/postgres/media" "$out/postgres/"
echo "fixture written to $out from $commit"

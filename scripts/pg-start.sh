#!/usr/bin/env bash
# Start (or reuse) a throwaway PostgreSQL cluster for Parley's tests.
#
#   eval "$(scripts/pg-start.sh)"            # exports PARLEY_TEST_DATABASE_URL
#   eval "$(scripts/pg-start.sh parley_js)"  # also creates database parley_js
#   scripts/pg-start.sh --url                # print only the URL
#   scripts/pg-stop.sh                       # stop it and delete its files
#
# The cluster lives in $PARLEY_PG_DIR (default: ${TMPDIR:-/tmp}/parley-pg-<user>),
# listens on 127.0.0.1 only (port $PARLEY_PG_PORT, else 5432 if free, else the
# next free port), keeps its Unix socket in that directory, and runs with
# fsync=on and synchronous_commit=on. It has a role parley (password parley,
# CREATEDB) that owns the database parley_test and any database named on the
# command line.
#
# Idempotent: if the cluster is already running it is reused; if its files
# exist but it is stopped, it is started again; missing roles and databases
# are created. Progress goes to stderr; stdout carries only the result.
#
# As root, the server runs as the OS user postgres (created if missing), and
# the PostgreSQL server is installed from Debian's packages (apt-get) if no
# initdb/pg_ctl/postgres is found. Set PARLEY_APT_UPDATED=1 to skip the
# `apt-get update` before that install (if the caller has just run it).
set -euo pipefail

log() { printf 'pg-start: %s\n' "$*" >&2; }
die() { printf 'pg-start: error: %s\n' "$*" >&2; exit 1; }

print_url_only=false
dbs=(parley_test)
for arg in "$@"; do
	case "$arg" in
	--url) print_url_only=true ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
		exit 0
		;;
	-*) die "unknown option $arg" ;;
	*)
		[[ $arg =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "bad database name: $arg"
		dbs+=("$arg")
		;;
	esac
done

state=${PARLEY_PG_DIR:-${TMPDIR:-/tmp}/parley-pg-$(id -un)}
[[ $state == /* ]] || state=$PWD/$state
data=$state/data

# ---------------------------------------------------------------- binaries
find_bindir() {
	local d
	if [[ -n ${PARLEY_PG_BINDIR:-} ]]; then
		echo "$PARLEY_PG_BINDIR"
		return 0
	fi
	# Debian layout: /usr/lib/postgresql/<major>/bin; take the newest major.
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -n -r); do
		if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
			echo "$d"
			return 0
		fi
	done
	if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
		d=$(dirname "$(readlink -f "$(command -v initdb)")")
		if [[ -x $d/postgres && -x $d/pg_ctl ]]; then
			echo "$d"
			return 0
		fi
	fi
	return 1
}

install_postgresql() {
	[[ $(id -u) == 0 ]] || die "no PostgreSQL server found; install it (Debian: apt-get install postgresql) or set PARLEY_PG_BINDIR"
	command -v apt-get >/dev/null || die "no PostgreSQL server found and no apt-get to install it"
	export DEBIAN_FRONTEND=noninteractive
	local apt=(apt-get -q -y -o DPkg::Lock::Timeout=300)
	if [[ ${PARLEY_APT_UPDATED:-} != 1 ]]; then
		log "apt-get update"
		"${apt[@]}" update >&2
	fi
	log "installing PostgreSQL from Debian (apt-get install postgresql)"
	"${apt[@]}" install --no-install-recommends postgresql postgresql-client >&2
	# The Debian package creates a cluster "main" and may start it on 5432.
	# We use a cluster of our own, so stop that one again (it was not running
	# before, since there was no server installed).
	if command -v pg_lsclusters >/dev/null; then
		local ver name _rest
		while read -r ver name _rest; do
			[[ -n $ver ]] || continue
			log "stopping the package's default cluster $ver/$name"
			pg_ctlcluster "$ver" "$name" stop >&2 2>&1 || true
		done < <(pg_lsclusters --no-header 2>/dev/null | awk '$4 == "online"')
	fi
}

bindir=$(find_bindir) || {
	install_postgresql
	bindir=$(find_bindir) || die "PostgreSQL installed but initdb/pg_ctl/postgres not found"
}
psql=$bindir/psql
[[ -x $psql ]] || psql=$(command -v psql) || die "psql not found"

# ------------------------------------------------------------ run-as user
if [[ $(id -u) == 0 ]]; then
	pguser=postgres
	if ! id "$pguser" >/dev/null 2>&1; then
		log "creating OS user $pguser"
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$pguser"
	fi
	as_pg() {
		if command -v runuser >/dev/null; then
			runuser -u "$pguser" -- "$@"
		else
			su -s /bin/sh "$pguser" -c "$(printf '%q ' "$@")"
		fi
	}
else
	pguser=$(id -un)
	as_pg() { "$@"; }
fi

# ------------------------------------------------------------ state dir
mkdir -p "$state"
chmod 0700 "$state"
if [[ $(id -u) == 0 ]]; then chown "$pguser:" "$state"; fi
touch "$state/.parley-pg" # marks the directory as ours, for pg-stop.sh
# PostgreSQL tools need a working directory they can read.
cd "$state" 2>/dev/null || cd /
as_pg test -w "$state" ||
	die "$state is not writable by OS user $pguser (is a parent directory private?); set PARLEY_PG_DIR elsewhere"

# Serialise concurrent starts of the same cluster.
if command -v flock >/dev/null; then
	exec 9>"$state/.lock"
	flock -w 120 9 || die "timed out waiting for another pg-start.sh on $state"
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
	local p
	for p in ${PARLEY_PG_PORT:-} $(cat "$state/port" 2>/dev/null) 5432 $(seq 5433 5532); do
		if ! port_in_use "$p"; then
			echo "$p"
			return 0
		fi
		[[ $p == "${PARLEY_PG_PORT:-}" ]] && die "PARLEY_PG_PORT=$p is in use"
	done
	die "no free port in 5432-5532"
}

running() { as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }

# ------------------------------------------------------------ initdb
if [[ ! -f $data/PG_VERSION ]]; then
	rm -rf "$data"
	log "initdb $data ($("$bindir/postgres" --version))"
	as_pg "$bindir/initdb" -D "$data" -U postgres --encoding=UTF8 --no-locale \
		--auth-local=trust --auth-host=scram-sha-256 >"$state/initdb.log" 2>&1 ||
		{ cat "$state/initdb.log" >&2; die "initdb failed"; }
	cat >>"$data/postgresql.conf" <<EOF

# --- parley test cluster (scripts/pg-start.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$state'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 200
log_min_messages = warning
log_min_error_statement = error
EOF
fi

# ------------------------------------------------------------ start
if running; then
	port=$(cat "$state/port")
	log "reusing the running cluster in $state (port $port)"
else
	port=$(pick_port)
	echo "$port" >"$state/port"
	log "starting PostgreSQL on 127.0.0.1:$port"
	if ! as_pg "$bindir/pg_ctl" -D "$data" -l "$state/postgres.log" -w -t 60 \
		-o "-p $port" start >&2 9>&-; then # 9>&-: the server must not hold the lock
		tail -n 30 "$state/postgres.log" >&2 || true
		die "PostgreSQL did not start"
	fi
fi

# ------------------------------------------------------------ role + databases
admin() { "$psql" -X -q -v ON_ERROR_STOP=1 -h "$state" -p "$port" -U postgres -d postgres "$@"; }
ready=false
for _ in $(seq 1 100); do
	if admin -c 'SELECT 1' >/dev/null 2>&1; then
		ready=true
		break
	fi
	sleep 0.2
done
$ready || die "PostgreSQL on port $port does not accept connections (log: $state/postgres.log)"

{
	cat <<'EOF'
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'parley') THEN
		CREATE ROLE parley LOGIN CREATEDB PASSWORD 'parley';
	END IF;
END
$$;
EOF
	for db in "${dbs[@]}"; do
		echo "SELECT 'CREATE DATABASE $db OWNER parley' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\\gexec"
	done
} | admin -f - >&2

url="postgres://parley:parley@127.0.0.1:$port/parley_test?sslmode=disable"
# Check the URL itself (TCP, password auth) before handing it out.
"$psql" -X -q -v ON_ERROR_STOP=1 "$url" -c 'SELECT 1' >/dev/null ||
	die "cannot connect with $url"
log "ready: databases ${dbs[*]} on 127.0.0.1:$port"

if $print_url_only; then
	echo "$url"
else
	printf "export PARLEY_TEST_DATABASE_URL='%s'\n" "$url"
fi

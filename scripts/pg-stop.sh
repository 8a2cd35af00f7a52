#!/usr/bin/env bash
# Stop the throwaway PostgreSQL cluster started by scripts/pg-start.sh and
# delete its files.
#
#   scripts/pg-stop.sh          # stop and delete $PARLEY_PG_DIR
#   scripts/pg-stop.sh --keep   # stop only; pg-start.sh will reuse the data
#
# Uses the same PARLEY_PG_DIR (default ${TMPDIR:-/tmp}/parley-pg-<user>) as
# pg-start.sh. Does nothing, successfully, if there is no such cluster.
set -euo pipefail

log() { printf 'pg-stop: %s\n' "$*" >&2; }

keep=false
for arg in "$@"; do
	case "$arg" in
	--keep) keep=true ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
		exit 0
		;;
	*)
		log "unknown argument $arg"
		exit 2
		;;
	esac
done

state=${PARLEY_PG_DIR:-${TMPDIR:-/tmp}/parley-pg-$(id -un)}
[[ $state == /* ]] || state=$PWD/$state
data=$state/data

if [[ ! -f $state/.parley-pg ]]; then
	log "no cluster in $state"
	exit 0
fi
cd "$state" 2>/dev/null || cd /

find_pg_ctl() {
	local d
	if [[ -n ${PARLEY_PG_BINDIR:-} && -x $PARLEY_PG_BINDIR/pg_ctl ]]; then
		echo "$PARLEY_PG_BINDIR/pg_ctl"
		return 0
	fi
	# Same major version as the cluster, if we can tell.
	if [[ -f $data/PG_VERSION && -x /usr/lib/postgresql/$(cat "$data/PG_VERSION")/bin/pg_ctl ]]; then
		echo "/usr/lib/postgresql/$(cat "$data/PG_VERSION")/bin/pg_ctl"
		return 0
	fi
	command -v pg_ctl
}

if [[ $(id -u) == 0 ]] && id postgres >/dev/null 2>&1; then
	as_pg() { runuser -u postgres -- "$@"; }
else
	as_pg() { "$@"; }
fi

if [[ -f $data/postmaster.pid ]]; then
	pid=$(head -n 1 "$data/postmaster.pid")
	stopped=false
	if pg_ctl=$(find_pg_ctl); then
		log "stopping PostgreSQL in $data"
		if as_pg "$pg_ctl" -D "$data" stop -m fast -w -t 60 >&2 ||
			as_pg "$pg_ctl" -D "$data" stop -m immediate -w -t 30 >&2; then
			stopped=true
		fi
	fi
	# Without pg_ctl, or if it failed: signal the postmaster ourselves, if
	# that pid is still a live postgres process (pids get reused).
	if ! $stopped && [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == postgres* ]] &&
		[[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
		log "sending SIGQUIT to postmaster $pid"
		kill -QUIT "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
fi

if $keep; then
	log "stopped; data kept in $state"
else
	rm -rf "$state"
	log "stopped and removed $state"
fi

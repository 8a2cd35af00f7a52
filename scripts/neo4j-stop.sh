#!/usr/bin/env bash
# Stop the throwaway Neo4j DBMS started by scripts/neo4j-start.sh and delete
# its files.
#
#   scripts/neo4j-stop.sh          # stop and delete $PARLEY_NEO4J_DIR
#   scripts/neo4j-stop.sh --keep   # stop only; neo4j-start.sh will reuse the data
#
# Uses the same PARLEY_NEO4J_DIR (default ${TMPDIR:-/tmp}/parley-neo4j-<user>)
# as neo4j-start.sh. Sends SIGTERM (a clean shutdown, a few seconds), and
# SIGKILL if it is still running after $PARLEY_NEO4J_STOP_TIMEOUT seconds
# (default 60). Does nothing, successfully, if there is no such DBMS. The
# launcher's build cache and ~/.m2 are left alone.
set -euo pipefail

log() { printf 'neo4j-stop: %s\n' "$*" >&2; }

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

state=${PARLEY_NEO4J_DIR:-${TMPDIR:-/tmp}/parley-neo4j-$(id -un)}
[[ $state == /* ]] || state=$PWD/$state
home=$state/home
main_class=org.parley.neo4j.Launcher

if [[ ! -f $state/.parley-neo4j ]]; then
	log "no Neo4j in $state"
	exit 0
fi
cd /

# Wait for a neo4j-start.sh that is still starting it.
if command -v flock >/dev/null; then
	exec 9>"$state/.lock"
	flock -w 300 9 || log "warning: timed out waiting for the lock on $state; stopping anyway"
fi

# The launcher's pid, only if that pid is still the launcher for this state
# dir (pids get reused).
pid=$(cat "$state/neo4j.pid" 2>/dev/null || true)
if [[ $pid =~ ^[0-9]+$ ]] &&
	tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$main_class $home "; then
	log "stopping Neo4j (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	gone=false
	for _ in $(seq 1 $((${PARLEY_NEO4J_STOP_TIMEOUT:-60} * 10))); do
		if ! kill -0 "$pid" 2>/dev/null; then
			gone=true
			break
		fi
		sleep 0.1
	done
	if ! $gone; then
		log "still running; sending SIGKILL to $pid"
		kill -KILL "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
else
	log "Neo4j in $state is not running"
fi
rm -f "$state/neo4j.pid"

if $keep; then
	log "stopped; data kept in $state"
else
	rm -rf "$state"
	log "stopped and removed $state"
fi

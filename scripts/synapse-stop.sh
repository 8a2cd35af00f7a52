#!/usr/bin/env bash
# Stop the throwaway Synapse started by scripts/synapse-start.sh and delete
# its files.
#
#   scripts/synapse-stop.sh          # stop and delete $PARLEY_SYNAPSE_DIR
#   scripts/synapse-stop.sh --keep   # stop only; synapse-start.sh will reuse the data
#
# Uses the same PARLEY_SYNAPSE_DIR (default ${TMPDIR:-/tmp}/parley-synapse-<user>)
# as synapse-start.sh. Sends SIGTERM, and SIGKILL if Synapse still runs after
# $PARLEY_SYNAPSE_STOP_TIMEOUT seconds (default 30). Does nothing,
# successfully, if there is no such Synapse. The virtualenv is left alone.
set -euo pipefail

log() { printf 'synapse-stop: %s\n' "$*" >&2; }

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

state=${PARLEY_SYNAPSE_DIR:-${TMPDIR:-/tmp}/parley-synapse-$(id -un)}
[[ $state == /* ]] || state=$PWD/$state

if [[ ! -f $state/.parley-synapse ]]; then
	log "no Synapse in $state"
	exit 0
fi
cd /

# Wait for a synapse-start.sh that is still starting it.
if command -v flock >/dev/null; then
	exec 9>"$state/.lock"
	flock -w 150 9 || log "warning: timed out waiting for the lock on $state; stopping anyway"
fi

# Synapse's pid, only if that pid is still this Synapse (pids get reused).
pid=$(cat "$state/homeserver.pid" 2>/dev/null || true)
if [[ $pid =~ ^[0-9]+$ ]] &&
	tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$state/homeserver.yaml"; then
	log "stopping Synapse (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	gone=false
	for _ in $(seq 1 $((${PARLEY_SYNAPSE_STOP_TIMEOUT:-30} * 10))); do
		if ! kill -0 "$pid" 2>/dev/null; then
			gone=true
			break
		fi
		sleep 0.1
	done
	if ! $gone; then
		log "Synapse (pid $pid) still runs: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
fi
rm -f "$state/homeserver.pid"

if $keep; then
	log "stopped; data kept in $state"
else
	rm -rf "$state"
	log "stopped and removed $state"
fi

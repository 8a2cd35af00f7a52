#!/usr/bin/env bash
# Stop the throwaway Dendrite started by scripts/dendrite-start.sh and delete
# its files.
#
#   scripts/dendrite-stop.sh          # stop and delete $PARLEY_DENDRITE_DIR
#   scripts/dendrite-stop.sh --keep   # stop only; dendrite-start.sh will reuse the data
#
# Uses the same PARLEY_DENDRITE_DIR (default ${TMPDIR:-/tmp}/parley-dendrite-<user>)
# as dendrite-start.sh. Sends SIGTERM, and SIGKILL if Dendrite still runs after
# $PARLEY_DENDRITE_STOP_TIMEOUT seconds (default 30). Does nothing,
# successfully, if there is no such Dendrite. The installed binaries are left alone.
set -euo pipefail

log() { printf 'dendrite-stop: %s\n' "$*" >&2; }

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

state=${PARLEY_DENDRITE_DIR:-${TMPDIR:-/tmp}/parley-dendrite-$(id -un)}
[[ $state == /* ]] || state=$PWD/$state

if [[ ! -f $state/.parley-dendrite ]]; then
	log "no Dendrite in $state"
	exit 0
fi
cd /

# Wait for a dendrite-start.sh that is still starting it.
if command -v flock >/dev/null; then
	exec 9>"$state/.lock"
	flock -w 150 9 || log "warning: timed out waiting for the lock on $state; stopping anyway"
fi

# Dendrite's pid, only if that pid is still this Dendrite (pids get reused).
pid=$(cat "$state/dendrite.pid" 2>/dev/null || true)
if [[ $pid =~ ^[0-9]+$ ]] &&
	tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$state/dendrite.yaml"; then
	log "stopping Dendrite (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	gone=false
	for _ in $(seq 1 $((${PARLEY_DENDRITE_STOP_TIMEOUT:-30} * 10))); do
		if ! kill -0 "$pid" 2>/dev/null; then
			gone=true
			break
		fi
		sleep 0.1
	done
	if ! $gone; then
		log "Dendrite (pid $pid) still runs: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
fi
rm -f "$state/dendrite.pid"

if $keep; then
	log "stopped; data kept in $state"
else
	rm -rf "$state"
	log "stopped and removed $state"
fi

# Sourced by scripts/synapse-stop.sh, scripts/dendrite-stop.sh and
# scripts/neo4j-stop.sh: stop a throwaway service started by its start
# script, and delete its files unless --keep. The caller sets, before
# calling stop_service:
#   name      what to call it in messages (Synapse, Dendrite, Neo4j)
#   state     its directory (holds the marker .parley-<tag>)
#   tag       the marker's suffix and the log prefix (synapse, dendrite, neo4j)
#   pidfile   its pid file, relative to $state
#   config    its config file, relative to $state: the pid counts only if
#             that process still runs with it (pids get reused)
#   match     optional, instead of config: the text the process's command
#             line (arguments joined by spaces) must contain
#   timeout   seconds between SIGTERM and SIGKILL
#   lock_wait optional: seconds to wait for a start script still holding
#             $state/.lock (default 150)
# and passes the script's arguments.

log() { printf '%s-stop: %s\n' "$tag" "$*" >&2; }

stop_service() {
	local keep=false arg
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

	[[ $state == /* ]] || state=$PWD/$state
	if [[ ! -f $state/.parley-$tag ]]; then
		log "no $name in $state"
		exit 0
	fi
	cd /

	# Wait for a start script that is still starting it.
	if command -v flock >/dev/null; then
		exec 9>"$state/.lock"
		flock -w "${lock_wait:-150}" 9 || log "warning: timed out waiting for the lock on $state; stopping anyway"
	fi

	local pid
	pid=$(cat "$state/$pidfile" 2>/dev/null || true)
	if [[ $pid =~ ^[0-9]+$ ]] &&
		tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "${match:-$state/$config}"; then
		log "stopping $name (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		local gone=false
		for _ in $(seq 1 $((timeout * 10))); do
			if ! kill -0 "$pid" 2>/dev/null; then
				gone=true
				break
			fi
			sleep 0.1
		done
		if ! $gone; then
			log "$name (pid $pid) still runs: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			for _ in $(seq 1 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
		fi
	else
		log "$name in $state is not running"
	fi
	rm -f "$state/$pidfile"

	if $keep; then
		log "stopped; data kept in $state"
	else
		rm -rf "$state"
		log "stopped and removed $state"
	fi
}

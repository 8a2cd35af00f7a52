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

tag=neo4j name=Neo4j pidfile=neo4j.pid
state=${PARLEY_NEO4J_DIR:-${TMPDIR:-/tmp}/parley-neo4j-$(id -un)}
[[ $state == /* ]] || state=$PWD/$state
# The pid counts only if it is still the launcher for this state dir's
# home, as neo4j-start.sh checks it (pids get reused).
match="org.parley.neo4j.Launcher $state/home "
timeout=${PARLEY_NEO4J_STOP_TIMEOUT:-60}
lock_wait=300 # neo4j-start.sh may be building the launcher
# shellcheck source=lib/stop-service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/stop-service.sh"
stop_service "$@"

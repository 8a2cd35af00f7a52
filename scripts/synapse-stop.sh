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

tag=synapse name=Synapse pidfile=homeserver.pid config=homeserver.yaml
state=${PARLEY_SYNAPSE_DIR:-${TMPDIR:-/tmp}/parley-synapse-$(id -un)}
timeout=${PARLEY_SYNAPSE_STOP_TIMEOUT:-30}
# shellcheck source=lib/stop-service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/stop-service.sh"
stop_service "$@"

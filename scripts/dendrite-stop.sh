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

tag=dendrite name=Dendrite pidfile=dendrite.pid config=dendrite.yaml
state=${PARLEY_DENDRITE_DIR:-${TMPDIR:-/tmp}/parley-dendrite-$(id -un)}
timeout=${PARLEY_DENDRITE_STOP_TIMEOUT:-30}
# shellcheck source=lib/stop-service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/stop-service.sh"
stop_service "$@"

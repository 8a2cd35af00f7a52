#!/usr/bin/env bash
# Element Web end-to-end test: builds Parley (unless PARLEY_BIN is given),
# installs playwright-core (npm ci) if needed, and runs element.test.js, which
# starts Parley on SQLite in a temp dir, serves Element Web 1.11.52 and drives
# it in headless Chromium. Exit status 0 = every step and check passed.
#
#   tests/element/run.sh
#
# Environment:
#   PARLEY_BIN              a built parley binary (default: go build into a temp dir)
#   PARLEY_ELEMENT_TARBALL  element-web-1.11.52.tar.gz (default: shared/clients/
#                           beside the repository)
#   PARLEY_CHROMIUM         the browser (default /usr/bin/chromium; Debian: apt-get install chromium)
#   PARLEY_ELEMENT_KEEP=1   keep the temp dir (server log, screenshots)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

tarball=${PARLEY_ELEMENT_TARBALL:-}
if [[ -z $tarball ]]; then
	for c in "$root/../shared/clients/element-web-1.11.52.tar.gz" "$root/../../shared/clients/element-web-1.11.52.tar.gz"; do
		if [[ -f $c ]]; then
			tarball=$c
			break
		fi
	done
fi
if [[ -z $tarball || ! -f $tarball ]]; then
	# Element is a test tool kept beside the repository, not in it: where a
	# machine has no copy, the test is skipped, loudly, rather than failed.
	echo "SKIP tests/element: element-web-1.11.52.tar.gz not found; set PARLEY_ELEMENT_TARBALL (it lives in shared/clients/ beside the repository)" >&2
	exit 0
fi
chromium=${PARLEY_CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $chromium ]]; then
	echo "$chromium not found: apt-get install chromium (or set PARLEY_CHROMIUM)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/parley-element-run.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
bin=${PARLEY_BIN:-}
if [[ -z $bin ]]; then
	bin=$tmp/parley
	(cd "$root" && go build -o "$bin" ./cmd/parley)
fi
if [[ ! -d $here/node_modules/playwright-core ]]; then
	(cd "$here" && npm ci --no-audit --no-fund)
fi

cd "$here"
PARLEY_BIN=$bin PARLEY_ELEMENT_TARBALL=$tarball PARLEY_CHROMIUM=$chromium \
	timeout --kill-after=15 600 node element.test.js

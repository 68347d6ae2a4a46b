#!/usr/bin/env bash
# Set up (first run only) and run the whole offline check: lint, format, types, tests, the
# end-to-end ones against a real LiveKit server built from its Go module (tools/livekit-server).
# Extra arguments go to pytest, e.g. scripts/test.sh -k avatar -x   or   scripts/test.sh -m e2e
# Missing system packages are installed first where root or sudo allows (scripts/system-packages.sh);
# elsewhere it names the tests that will skip without them.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/system-packages.sh || exit 1  # first: bootstrap builds the web client with Node.js
scripts/bootstrap.sh dev || exit 1
scripts/livekit-server.sh >/dev/null || exit 1
export PATH="$PWD/.venv/bin:$PATH"

status=0
ruff check . || status=1
ruff format --check . || status=1
mypy || status=1
python -m pytest "$@" || status=1
exit $status

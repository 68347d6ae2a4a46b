#!/usr/bin/env bash
# Create .venv if needed and install the locked dependencies and this project into it.
# Usage: scripts/bootstrap.sh [dev]   ("dev" adds the test and lint tools)
# Re-running is cheap: nothing is installed again until a lock file or pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
lock=requirements.lock
[ "${1:-}" = dev ] && lock=requirements-dev.lock

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1)); set PYTHON=..." >&2
    exit 1
  }
  "$PYTHON" -m venv .venv
fi

stamp=".venv/.installed-$(cat "$lock" pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "installing dependencies from $lock into .venv ..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$lock"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi

scripts/build-web.sh  # the web client the token server serves at / (skipped without Node.js)

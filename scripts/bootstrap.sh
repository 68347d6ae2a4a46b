#!/usr/bin/env bash
# Create .venv if needed and install the locked dependencies and this project into it.
# Usage: scripts/bootstrap.sh [dev]   ("dev" adds the test and lint tools)
# Re-running is cheap: nothing is installed again until a lock file or pyproject.toml changes.
# One environment serves both: the dev lock pins every runtime package at the runtime lock's
# version, so a dev install also counts as the runtime one (run-agent.sh after test.sh installs
# nothing); only a runtime lock that changed since installs again.
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

stamp_of() { echo ".venv/.installed-$1-$(cat "$2" pyproject.toml | sha256sum | cut -c1-16)"; }
runtime_stamp=$(stamp_of runtime requirements.lock)
dev_stamp=$(stamp_of dev requirements-dev.lock)
stamp=$runtime_stamp
[ "$lock" = requirements-dev.lock ] && stamp=$dev_stamp

if [ ! -f "$stamp" ]; then
  echo "installing dependencies from $lock into .venv ..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$lock"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  rm -f .venv/.installed-*
  touch "$stamp"
  # every runtime pin, letter for letter, in the dev lock: the runtime install is done too
  if [ "$stamp" = "$dev_stamp" ] \
    && ! grep -qvxFf requirements-dev.lock <(grep -E '^[A-Za-z0-9]' requirements.lock); then
    touch "$runtime_stamp"
  fi
fi

scripts/build-web.sh  # the web client the token server serves at / (skipped without Node.js)

#!/usr/bin/env bash
# Set up (first run only) and start the agent worker. Reads settings from .env.
# Usage: scripts/run-agent.sh [dev|start|console [--text]|connect --room R|download-files]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if [ ! -f .env ] && [ -z "${OPENAI_API_KEY:-}" ]; then
  echo "no .env found: copy .env.example to .env and fill in OPENAI_API_KEY and LIVEKIT_*" >&2
fi
exec .venv/bin/python -m agent "${@:-dev}"

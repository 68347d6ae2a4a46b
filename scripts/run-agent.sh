#!/usr/bin/env bash
# Set up (first run only) and start the agent worker. Reads settings from .env.
# Usage: scripts/run-agent.sh [dev|start|console [--text]|connect --room R|download-files]
# `dev` with no LIVEKIT_URL (in the environment or .env) also starts a local LiveKit server on
# 127.0.0.1:${LOCAL_LIVEKIT_PORT:-7880} (key devkey, secret secret) and the token server with the
# web page on http://localhost:${TOKEN_SERVER_PORT:-3000}; Ctrl-C stops all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if [ ! -f .env ] && [ -z "${OPENAI_API_KEY:-}" ]; then
  echo "no .env found: copy .env.example to .env and fill in OPENAI_API_KEY" >&2
fi

livekit_url_set() {
  [ -n "${LIVEKIT_URL:-}" ] && return 0
  [ -f .env ] && grep -Eq '^[[:space:]]*(export[[:space:]]+)?LIVEKIT_URL[[:space:]]*=[[:space:]]*[^[:space:]#]' .env
}

if [ "${1:-dev}" = dev ] && ! livekit_url_set; then
  # a local LiveKit server, the token server with the web page, and the agent (agent/local_stack.py)
  exec .venv/bin/python -m agent.local_stack "${@:-dev}"
fi
exec .venv/bin/python -m agent "${@:-dev}"

#!/usr/bin/env bash
# Set up (first run only) and start the agent worker. Reads settings from .env.
# Usage: scripts/run-agent.sh [dev|start|console [--text]|connect --room R|download-files]
# `dev` with no LIVEKIT_URL (in the environment or .env) also starts a local LiveKit server on
# 127.0.0.1:${LOCAL_LIVEKIT_PORT:-7880} (key devkey, secret secret), built from its Go module.
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
  port=${LOCAL_LIVEKIT_PORT:-7880}
  binary=$(scripts/livekit-server.sh)
  mkdir -p var
  # loopback only: media stays on this machine, nothing is exposed to the network
  "$binary" --config-body "{port: $port, bind_addresses: [127.0.0.1], keys: {devkey: secret},
    rtc: {tcp_port: $((port + 1)), udp_port: $((port + 2)), node_ip: 127.0.0.1,
          use_external_ip: false, enable_loopback_candidate: true}}" \
    > var/livekit-server.log 2>&1 &
  server=$!
  trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT
  for _ in $(seq 100); do
    if ! kill -0 "$server" 2>/dev/null; then
      echo "the local LiveKit server did not start (port $port in use?): see var/livekit-server.log" >&2
      exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  export LIVEKIT_URL="ws://127.0.0.1:$port" LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret
  echo "local LiveKit server on $LIVEKIT_URL (key devkey, secret secret; log var/livekit-server.log)" >&2
  .venv/bin/python -m agent "${@:-dev}"
else
  exec .venv/bin/python -m agent "${@:-dev}"
fi

#!/usr/bin/env bash
# Build the real LiveKit server from its Go module (first run only) into tools/livekit-server.
# Usage: scripts/livekit-server.sh            build if needed, print the binary's path
#        scripts/livekit-server.sh --dev      build if needed, then run it (any server flags)
# The binary is rebuilt only when LIVEKIT_SERVER_VERSION changes.
set -euo pipefail
cd "$(dirname "$0")/.."

# >= 1.9.12 (avatar rejoin fixes); the newest release whose go.mod has no `replace` lines
LIVEKIT_SERVER_VERSION=v1.13.5
binary=tools/livekit-server
stamp=tools/livekit-server.version

if [ ! -x "$binary" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$LIVEKIT_SERVER_VERSION" ]; then
  command -v go >/dev/null 2>&1 || {
    echo "Go is needed to build livekit-server $LIVEKIT_SERVER_VERSION: install Go 1.26+ (https://go.dev/dl/, or apt-get install golang-go), or put a livekit-server binary at $binary" >&2
    exit 1
  }
  echo "building livekit-server $LIVEKIT_SERVER_VERSION with $(go version | cut -d' ' -f3) (first run only, about 2 minutes) ..." >&2
  mkdir -p tools
  gobin="$(mktemp -d)"
  trap 'rm -rf "$gobin"' EXIT
  GOBIN="$gobin" GOFLAGS=-buildvcs=false go install \
    "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_SERVER_VERSION"
  mv "$gobin/server" "$binary"
  echo "$LIVEKIT_SERVER_VERSION" > "$stamp"
fi

if [ $# -eq 0 ]; then
  echo "$PWD/$binary"
else
  exec "$binary" "$@"
fi

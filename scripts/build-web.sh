#!/usr/bin/env bash
# Build the web client into web/dist (served by the token server at /): npm ci, type check,
# bundle. Re-running is cheap: nothing is installed again until web/package-lock.json changes,
# nothing is built again until a source or build file changes. Without Node.js 20+ and npm it
# says so in one line and exits 0 (the Python services work without the page); WEB_REQUIRED=1
# makes that an error (exit 1).
set -euo pipefail
cd "$(dirname "$0")/../web"

missing() {
  echo "web client not built: $1 (Debian: apt-get install nodejs npm)" >&2
  exit "$([ "${WEB_REQUIRED:-0}" = 1 ] && echo 1 || echo 0)"
}
command -v node >/dev/null 2>&1 || missing "node is not installed"
command -v npm >/dev/null 2>&1 || missing "npm is not installed"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || missing "Node.js 20 or newer is needed (found $(node --version))"

installed="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f "$installed" ]; then
  echo "installing the web client's packages (npm ci) ..." >&2
  # no install scripts: esbuild and TypeScript find their platform binaries without them
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  touch "$installed"
fi

built="dist/.built-$(cat package-lock.json tsconfig.json build.mjs src/* | sha256sum | cut -c1-16)"
if [ ! -f "$built" ]; then
  npm run --silent build
  touch "$built"
fi

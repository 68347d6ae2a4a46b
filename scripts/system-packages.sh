#!/usr/bin/env bash
# The system packages the tests need, in one list (.ci/run and scripts/test.sh both run this).
# Installs the missing ones with apt-get as root or through sudo; where it cannot (no root, no
# sudo, no apt-get), it says which tests will skip and why, and exits 0. In CI (CI set) every
# package must be there: then it cannot is an error (exit 1), because CI runs every test.
# Usage: scripts/system-packages.sh [--check]   (--check: only report, install nothing)
set -euo pipefail

# package | present when | the tests that need it (they skip without it, except in CI)
PACKAGES=(
  "redis-server|command:redis-server|token server and webhook tests with Redis"
  "nodejs|command:node|the webhook signature check in Node.js, the web client's build and browser test"
  "libportaudio2|library:libportaudio|console mode tests (sounddevice loads PortAudio, even with --text)"
  "chromium|command:chromium|the web client's browser test"
  "espeak-ng|command:espeak-ng|the browser test's fake microphone (its speech)"
  "npm|command:npm|the web client's build (Node.js 20+) and browser test"
  "xvfb|command:Xvfb|the live microphone avatar's window tests (a throwaway display)"
  "python3-tk|python:tkinter|the live microphone avatar's window (Debian's python3; a Python built elsewhere needs its own Tk)"
)

present() {
  case "$1" in
    command:*) command -v "${1#command:}" >/dev/null 2>&1 ;;
    # not `ldconfig -p | grep -q`: with pipefail, grep leaving early fails the pipe (SIGPIPE)
    library:*) [[ "$(PATH="$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null)" == *"${1#library:}"* ]] ;;
    python:*) "${PYTHON:-python3}" -c "import ${1#python:}" 2>/dev/null ;;
  esac
}

missing=() why=()
for entry in "${PACKAGES[@]}"; do
  IFS='|' read -r package test needs <<<"$entry"
  present "$test" || { missing+=("$package"); why+=("$package: $needs"); }
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else sudo=none; fi
fi
if [ "${1:-}" != --check ] && [ "$sudo" != none ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
  exit 0
fi

echo "missing system packages: ${missing[*]} (install: sudo apt-get install ${missing[*]})" >&2
for line in "${why[@]}"; do echo "  skipped without $line" >&2; done
if [ -n "${CI:-}" ]; then
  echo "CI runs every test: install them first" >&2
  exit 1
fi

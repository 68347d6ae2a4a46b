#!/usr/bin/env bash
# Build LiveKit's CLI `lk` (livekit-cli v2) for `benchmarks/capacity.py --lk`; prints its path.
# Usage: benchmarks/build-lk.sh [OUTDIR]       (default tools/, next to livekit-server)
#
# 1. The normal route: go install github.com/livekit/livekit-cli/v2/cmd/lk@$LK_VERSION. A module
#    zip has no git submodules, so PortAudio comes from the system (-tags portaudio_system, apt
#    portaudio19-dev) when pkg-config finds it.
# 2. If the Go module proxy refuses that (403 on some networks): from source, LK_SOURCE being a
#    livekit-cli checkout or any git repository or URL to clone (its HEAD, or LK_REF), e.g.
#    LK_SOURCE=/work/.mirror/livekit+livekit-cli/repo. Its two snags:
#    - go.mod may pin a livekit/protocol pseudo-version the proxy refuses: then it is replaced
#      with the release $PROTOCOL_FALLBACK (default v1.50.0, the first one after v2.18.3's pin);
#    - pkg/portaudio/pa_src is a git submodule (PortAudio's C sources, compiled by cgo, linking
#      ALSA: apt libasound2-dev). PA_SOURCE (a PortAudio checkout or repository) fills it, else
#      `git submodule update` tries its URL, else the system's PortAudio is linked (as in 1.).
# The clone goes to LK_BUILD_DIR (default $TMPDIR/lk-build, wiped first): at the same path cgo's
# objects come from Go's build cache. A cold build takes 4-7 min on 2 cores (cgo C++ WebRTC
# audio processing), a rebuild at the same path about 20 s.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-tools}")"
LK_VERSION="${LK_VERSION:-v2.18.3}"
PROTOCOL_FALLBACK="${PROTOCOL_FALLBACK:-v1.50.0}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=1

fail() { echo "build-lk: $*" >&2; exit 1; }
command -v go >/dev/null || fail "Go is needed: install Go 1.26+ (https://go.dev/dl/)"
system_portaudio() {  # the build tags that link the system's PortAudio, or fail saying how
  pkg-config --exists portaudio-2.0 || fail "no PortAudio source: apt-get install portaudio19-dev"
  echo "-tags=portaudio_system"
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# --- 1. the module proxy ----------------------------------------------------------------------
tags=""
pkg-config --exists portaudio-2.0 2>/dev/null && tags="-tags=portaudio_system"
# shellcheck disable=SC2086  # $tags: one word or none
if GOBIN="$out" go install $tags "github.com/livekit/livekit-cli/v2/cmd/lk@$LK_VERSION" \
  2>"$work/install.log"; then
  echo "$out/lk"
  exit 0
fi
why="$(grep -m1 -E '40[34]|error' "$work/install.log" || tail -n1 "$work/install.log")"
[ -n "${LK_SOURCE:-}" ] || fail "go install lk@$LK_VERSION failed ($why); set LK_SOURCE to a \
livekit-cli checkout or git repository to build from source"

# --- 2. from source ---------------------------------------------------------------------------
src="${LK_BUILD_DIR:-${TMPDIR:-/tmp}/lk-build}"
case "$(realpath -m "$src")" in /|"$HOME"|"$PWD"*) fail "LK_BUILD_DIR=$src would be wiped";; esac
echo "build-lk: go install refused; building $LK_SOURCE in $src" >&2
rm -rf "$src"
git clone -q "$LK_SOURCE" "$src" || fail "cannot clone LK_SOURCE=$LK_SOURCE"
cd "$src"
[ -z "${LK_REF:-}" ] || git checkout -q "$LK_REF" || fail "no $LK_REF in $LK_SOURCE"
if ! go mod download github.com/livekit/protocol >/dev/null 2>&1; then
  go mod edit -replace "github.com/livekit/protocol=github.com/livekit/protocol@$PROTOCOL_FALLBACK"
  go mod download github.com/livekit/protocol  # and its go.sum lines
fi
go mod download || fail "the Go module proxy refused the modules above (GOPROXY picks another)"

pa=pkg/portaudio/pa_src
pin="$(git ls-tree HEAD "$pa" | awk '{print $3}')"
tags=""
if [ -n "${PA_SOURCE:-}" ]; then
  rm -rf "$pa" && git clone -q "$PA_SOURCE" "$pa"
  git -C "$pa" checkout -q "$pin" 2>/dev/null \
    || echo "build-lk: PortAudio ${pin:0:12} is not in $PA_SOURCE: its HEAD is used" >&2
elif ! GIT_TERMINAL_PROMPT=0 git submodule update --init "$pa" >/dev/null 2>&1; then
  tags="$(system_portaudio)"
fi
[ -n "$tags" ] || pkg-config --exists alsa \
  || fail "PortAudio needs ALSA: apt-get install libasound2-dev"
# the vendored C/C++ prints pages of compiler warnings: filtered
noise='warning:|note:|^ +[0-9]* \||^ +\| |In function|At global scope|^# github.com/'
# shellcheck disable=SC2086
go build $tags -o "$out/lk" ./cmd/lk 2> >(grep -vE "$noise" >&2) \
  || fail "go build failed (above)"
echo "$out/lk"

#!/usr/bin/env bash
# Brings a fresh Debian + Node 20 machine to a runnable tree, and is quick when all is present.
#   bootstrap.sh          what `npm start` needs: pnpm, nats-server, ffmpeg, node_modules, a build
#   bootstrap.sh --test   also what `npm test` needs: podman + runc and the local NATS image
#   bootstrap.sh --deploy also what `pnpm test:deploy` needs: podman-compose, the CNI dnsname plugin
#                         (containers of a compose project find each other by name) and mmdebstrap
#                         (the Debian base image, infra/image/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=10.34.9
want_test=false
want_deploy=false
[[ "${1:-}" == "--test" ]] && want_test=true
[[ "${1:-}" == "--deploy" ]] && want_test=true && want_deploy=true

log() { printf '[bootstrap] %s\n' "$*" >&2; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# --- system packages (apt-get) ---------------------------------------------------------------
# pocketsphinx + its en-us model: the local transcription engine `npm start` uses by default;
# faad: the AI pipeline decodes the recorder's AAC with it (a few ms a segment, ffmpeg ~40 ms to start).
packages=(nats-server ffmpeg pocketsphinx pocketsphinx-en-us faad)
# tesseract-ocr + its English model: the local visual index engine (OCR of display frames); the AI
# worker keeps it loaded through its library (libtesseract5, a dependency) with koffi (node_modules).
packages+=(tesseract-ocr tesseract-ocr-eng)
# g++, make, python3: node-gyp compiles better-sqlite3 (the search index) from source.
packages+=(g++ make python3)
# festival + the slt HTS voice: the known speech transcription tests and bench:transcript use;
# xterm: the window of known text the visual index reads off an Xvfb screen (slow suite);
# chromium: the browser tests (the console and the player) drive it with playwright-core.
$want_test && packages+=(podman runc xvfb pulseaudio pulseaudio-utils espeak-ng x11-utils x11-xserver-utils xterm festival festvox-us-slt-hts chromium)
$want_deploy && packages+=(podman-compose golang-github-containernetworking-plugin-dnsname mmdebstrap catatonit)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]} with apt-get"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- pnpm (npm, since corepack cannot verify signatures here) ----------------------------------
if [[ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]]; then
  log "installing pnpm@$PNPM_VERSION with npm"
  npm install -g --silent "pnpm@$PNPM_VERSION" >/dev/null
fi

# --- node_modules, only when the lockfile or a manifest changed --------------------------------
stamp=node_modules/.bootstrap-stamp
if [[ ! -f $stamp ]] || [[ -n "$(find pnpm-lock.yaml pnpm-workspace.yaml package.json packages/*/package.json apps/*/package.json -newer "$stamp" 2>/dev/null)" ]]; then
  log "pnpm install"
  # Native modules (better-sqlite3) are compiled here, never fetched prebuilt from GitHub, against
  # the installed Node's own headers (node-gyp would otherwise download them).
  node_prefix="$(cd "$(dirname "$(command -v node)")/.." && pwd)"
  [[ -f "$node_prefix/include/node/node.h" ]] && export npm_config_nodedir="$node_prefix"
  npm_config_build_from_source=true pnpm install --frozen-lockfile --reporter=append-only >/dev/null
  touch "$stamp"
fi

# --- build (turbo caches; tsc -b is incremental) ----------------------------------------------
pnpm exec turbo run build --output-logs=errors-only >/dev/null

if $want_test; then
  bash infra/podman/setup.sh || log "container engine not available; integration suites will use nats-server child processes"
fi

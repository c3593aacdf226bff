#!/usr/bin/env bash
# Builds the Capture image (infra/image/Containerfile) with podman, tagged localhost/capture:<git
# describe> and localhost/capture:latest, and prints the version tag.
#   build.sh              base images built here: this machine reaches Debian's mirror and the npm
#                         registry but no container registry, so Debian bookworm comes from
#                         mmdebstrap (localhost/capture-debian:bookworm-slim) and Node from
#                         node.Containerfile (localhost/capture-node:20-bookworm-slim); each is
#                         built once and reused
#   build.sh --registry   the official debian:bookworm-slim and node:20-bookworm-slim, pulled
# Quick when nothing changed: podman's layer cache keeps the dependency layers.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEBIAN_LOCAL=localhost/capture-debian:bookworm-slim
NODE_LOCAL=localhost/capture-node:20-bookworm-slim
log() { printf '[image] %s\n' "$*" >&2; }
fail() {
  log "$*"
  exit 1
}

command -v podman >/dev/null || fail "podman is not installed (apt-get install podman runc)"

build_args=()
# Where HTTPS goes through an intercepting proxy, its CA is in the host's bundle: the build's
# downloads (npm registry) trust the same bundle, mounted for the build only.
HOST_CA_FILE=${CAPTURE_BUILD_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}
if [[ -f $HOST_CA_FILE ]]; then
  build_args+=(--volume "$HOST_CA_FILE:/run/build-ca.crt:ro" --build-arg BUILD_CA_FILE=/run/build-ca.crt)
fi
if [[ "${1:-}" != "--registry" ]]; then
  if ! podman image exists "$DEBIAN_LOCAL"; then
    command -v mmdebstrap >/dev/null || fail "mmdebstrap is not installed (apt-get install mmdebstrap)"
    [[ $(id -u) -eq 0 ]] || fail "mmdebstrap needs root to build $DEBIAN_LOCAL"
    log "building $DEBIAN_LOCAL with mmdebstrap from deb.debian.org"
    # Like the official slim image: the minimal base, no documentation or manual pages.
    mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --aptopt='APT::Install-Recommends "false"' \
      bookworm - \
      "deb http://deb.debian.org/debian bookworm main" \
      "deb http://deb.debian.org/debian bookworm-updates main" \
      "deb http://deb.debian.org/debian-security bookworm-security main" |
      podman import --quiet --change 'CMD ["bash"]' \
        --message "Debian bookworm minbase from mmdebstrap (infra/image/build.sh)" - "$DEBIAN_LOCAL" >/dev/null ||
      fail "cannot build $DEBIAN_LOCAL"
  fi
  if ! podman image exists "$NODE_LOCAL"; then
    log "building $NODE_LOCAL (Node from the npm registry)"
    podman build --quiet "${build_args[@]}" -f infra/image/node.Containerfile --build-arg "DEBIAN_IMAGE=$DEBIAN_LOCAL" \
      -t "$NODE_LOCAL" infra/image >/dev/null || fail "cannot build $NODE_LOCAL"
  fi
  build_args+=(--build-arg "DEBIAN_IMAGE=$DEBIAN_LOCAL" --build-arg "NODE_IMAGE=$NODE_LOCAL")
fi

version=$(git describe --always --dirty 2>/dev/null || echo dev)
log "building localhost/capture:$version"
podman build "${build_args[@]}" -f infra/image/Containerfile \
  --label "org.opencontainers.image.version=$version" \
  -t "localhost/capture:$version" -t localhost/capture:latest . >&2 || fail "cannot build localhost/capture:$version"
echo "localhost/capture:$version"

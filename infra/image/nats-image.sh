#!/usr/bin/env bash
# Builds localhost/capture-nats-cluster:<version>: nats-server from Debian trixie on the Debian base
# image, for the compose topology where no container registry is reachable (the official
# docker.io/library/nats:2.10 is the same server). Not bookworm's 2.9.10: it may place the R1
# consumer a client creates for a read (an ordered consumer: an object's chunks, a subject's
# messages) on a node that is down, so with one node of three stopped about half of those reads
# time out (fixed upstream in 2.9.12, nats-io/nats-server#3820). The binary comes from
# scripts/nats-server-release.sh (pinned version and sha256). Prints the image name.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=$(bash scripts/nats-server-release.sh)
VERSION=$("$BIN" --version | sed -n 's/^nats-server: v//p')
BASE=${DEBIAN_IMAGE:-localhost/capture-debian:bookworm-slim}
# The suffix is this recipe's revision: raise it when the Containerfile below changes.
IMAGE="localhost/capture-nats-cluster:${VERSION}-2"
log() { printf '[nats-image] %s\n' "$*" >&2; }

if ! podman image exists "$IMAGE"; then
  podman image exists "$BASE" || { log "$BASE is missing: run infra/image/build.sh first"; exit 1; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  log "building $IMAGE from $BIN"
  cp "$BIN" "$work/nats-server"
  cat >"$work/Containerfile" <<CONTAINERFILE
FROM $BASE
# busybox's wget: infra/nats/start.sh asks the meta leader's /jsz whether its node is in the group.
RUN apt-get update && apt-get install -y --no-install-recommends busybox && rm -rf /var/lib/apt/lists/*
COPY nats-server /usr/sbin/nats-server
EXPOSE 4222 6222 8222
ENTRYPOINT ["/usr/sbin/nats-server"]
CMD ["-js", "-sd", "/data"]
CONTAINERFILE
  podman build --quiet -t "$IMAGE" "$work" >/dev/null
fi
echo "$IMAGE"

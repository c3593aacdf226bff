#!/usr/bin/env bash
# Builds localhost/capture-nats-cluster:<version>: nats-server from Debian trixie on the Debian base
# image, for the compose topology where no container registry is reachable (the official
# docker.io/library/nats:2.10 is the same server). Not bookworm's 2.9.10: it may place the R1
# consumer a client creates for a read (an ordered consumer: an object's chunks, a subject's
# messages) on a node that is down, so with one node of three stopped about half of those reads
# time out (fixed upstream in 2.9.12, nats-io/nats-server#3820). Prints the image name.
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=2.10.27-1+b2
SHA256=6d913ac987b78734c08537c2adeb1526cf735f216173a9170d94b185fcfe6f8a
DEB_URL="http://deb.debian.org/debian/pool/main/n/nats-server/nats-server_${VERSION}_amd64.deb"
BASE=${DEBIAN_IMAGE:-localhost/capture-debian:bookworm-slim}
IMAGE="localhost/capture-nats-cluster:${VERSION%%-*}"
log() { printf '[nats-image] %s\n' "$*" >&2; }

if ! podman image exists "$IMAGE"; then
  podman image exists "$BASE" || { log "$BASE is missing: run infra/image/build.sh first"; exit 1; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  log "building $IMAGE from $DEB_URL"
  curl -fsSL "$DEB_URL" -o "$work/nats.deb"
  echo "$SHA256  $work/nats.deb" | sha256sum -c --quiet -
  dpkg-deb -x "$work/nats.deb" "$work/root"
  cp "$work/root/usr/sbin/nats-server" "$work/nats-server"
  cat >"$work/Containerfile" <<CONTAINERFILE
FROM $BASE
COPY nats-server /usr/sbin/nats-server
EXPOSE 4222 6222 8222
ENTRYPOINT ["/usr/sbin/nats-server"]
CMD ["-js", "-sd", "/data"]
CONTAINERFILE
  podman build --quiet -t "$IMAGE" "$work" >/dev/null
fi
echo "$IMAGE"

#!/usr/bin/env bash
# Prints the path of a nats-server 2.10 binary for clusters: Debian trixie's package, fetched once from
# Debian's mirror, checked against its sha256 and unpacked into the user's cache. Not bookworm's 2.9.10
# (apt's): on a cluster it may place the R1 consumer a read creates on a node that is down, so with a
# node stopped about half of those reads time out (fixed upstream in 2.9.12, nats-io/nats-server#3820).
# Used by infra/image/nats-image.sh and `pnpm test:chaos`.
set -euo pipefail

VERSION=2.10.27-1+b2
SHA256=6d913ac987b78734c08537c2adeb1526cf735f216173a9170d94b185fcfe6f8a
DEB_URL="http://deb.debian.org/debian/pool/main/n/nats-server/nats-server_${VERSION}_amd64.deb"
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/capture/nats-server-${VERSION%%-*}"
BIN="$DIR/nats-server"

if [[ ! -x "$BIN" ]]; then
  printf '[nats-server-release] fetching %s\n' "$DEB_URL" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  curl -fsSL "$DEB_URL" -o "$work/nats.deb"
  echo "$SHA256  $work/nats.deb" | sha256sum -c --quiet -
  dpkg-deb -x "$work/nats.deb" "$work/root"
  mkdir -p "$DIR"
  install -m 0755 "$work/root/usr/sbin/nats-server" "$BIN.tmp"
  mv "$BIN.tmp" "$BIN"
fi
echo "$BIN"

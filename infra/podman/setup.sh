#!/usr/bin/env bash
# Makes rootful podman usable as the container engine for the integration suites (testcontainers talks to
# its Docker-compatible API), and is quick (well under a second) when everything is already in place:
#   1. /etc/containers/containers.conf: runc (crun fails on this kernel's cgroups) and no default ulimits
#      (raising NOFILE inside the container is not permitted here); other settings are kept.
#   2. A podman API service answering at unix:///run/podman/podman.sock (started detached if not).
#   3. A local image localhost/capture-nats:<version> (+ :latest) holding the apt nats-server binary, built
#      from the host's files with `podman import`, since no container registry is reachable.
# Exits non-zero with a one-line message when the engine cannot be made to work; the test fixtures then
# fall back to nats-server child processes.
set -euo pipefail

SOCKET_PATH=/run/podman/podman.sock
SOCKET_URL="unix://$SOCKET_PATH"
CONF=/etc/containers/containers.conf
IMAGE_REPO=localhost/capture-nats
SERVICE_LOG=/tmp/capture-podman-service.log
# Written after a container has been run and reached over a published port; lives in /run so a reboot
# (new kernel, fresh netfilter state) re-checks.
SMOKE_STAMP=/run/podman/capture-smoke-ok

fail() {
  printf '[podman-setup] %s\n' "$*" >&2
  exit 1
}
log() { printf '[podman-setup] %s\n' "$*" >&2; }

[[ $(id -u) -eq 0 ]] || fail "needs root (rootful podman serving $SOCKET_URL)"
command -v podman >/dev/null || fail "podman is not installed"
command -v runc >/dev/null || fail "runc is not installed"
NATS_BIN=$(command -v nats-server || echo /usr/sbin/nats-server)
[[ -x $NATS_BIN ]] || fail "nats-server is not installed"

# Concurrent callers (several bootstraps, or a suite starting one) must not race on the socket or the image.
mkdir -p /run/podman
exec 9>/run/podman/capture-setup.lock
flock -w 60 9 || fail "timed out waiting for another setup run"

NATS_VERSION=$("$NATS_BIN" --version | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p')
[[ -n $NATS_VERSION ]] || fail "cannot read the nats-server version"
IMAGE="$IMAGE_REPO:$NATS_VERSION"

# --- 1. containers.conf ------------------------------------------------------------------------------
# Sets `key = value` in `[section]`, replacing an existing (uncommented) assignment, adding it right after the
# section header, or appending the section; prints whether the file changed. POSIX awk (Debian ships mawk).
set_conf() {
  local section=$1 key=$2 value=$3 tmp
  tmp=$(mktemp)
  awk -v section="[$section]" -v key="$key" -v value="$value" '
    function flush() { if (in_section && !done) { print key " = " value; done = 1 } }
    /^[[:space:]]*\[/ {
      header = $0; gsub(/[[:space:]]/, "", header)
      if (in_section) flush()
      in_section = (header == section); seen = seen || in_section
      print; next
    }
    in_section && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" { if (!done) { print key " = " value; done = 1 }; next }
    { print }
    END {
      if (in_section) flush()
      if (!seen) { print ""; print section; print key " = " value }
    }
  ' "$CONF" >"$tmp"
  if cmp -s "$tmp" "$CONF"; then
    rm -f "$tmp"
  else
    cat "$tmp" >"$CONF" && rm -f "$tmp"
    echo changed
  fi
}

conf_changed=""
mkdir -p /etc/containers
if [[ ! -f $CONF ]]; then
  cat >"$CONF" <<'EOF'
# Written by infra/podman/setup.sh: crun fails on this kernel's cgroups, and raising NOFILE is not permitted.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
EOF
  conf_changed=yes
else
  conf_changed+=$(set_conf containers default_ulimits "[]")
  conf_changed+=$(set_conf engine runtime '"runc"')
fi

# --- 2. API service ----------------------------------------------------------------------------------
ping() { curl -fsS --max-time 2 --unix-socket "$SOCKET_PATH" http://d/_ping >/dev/null 2>&1; }

service_pids() { pgrep -f "podman system service .*$SOCKET_URL" || true; }

if [[ -n $conf_changed ]]; then
  # A running service read the old configuration; restart it so containers get runc and no ulimits.
  for pid in $(service_pids); do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    [[ -z $(service_pids) ]] && break
    sleep 0.1
  done
  rm -f "$SMOKE_STAMP"
fi

if ! ping; then
  if [[ -z $(service_pids) ]]; then
    # No service owns the socket file: it is stale, and would make the new service fail to bind.
    rm -f "$SOCKET_PATH"
    log "starting podman system service at $SOCKET_URL (log: $SERVICE_LOG)"
    # fd 9 (the lock) is closed for it: the long-lived service must not hold the lock forever.
    setsid nohup podman system service --time=0 "$SOCKET_URL" >"$SERVICE_LOG" 2>&1 </dev/null 9>&- &
    service_pid=$!
  fi
  for _ in $(seq 1 100); do
    ping && break
    # A service that exited (e.g. rejecting the configuration) will never answer: report why now.
    if [[ -n ${service_pid:-} ]] && ! kill -0 "$service_pid" 2>/dev/null; then
      fail "podman system service exited: $(tail -n 1 "$SERVICE_LOG" 2>/dev/null)"
    fi
    sleep 0.1
  done
  ping || fail "podman API service did not answer at $SOCKET_URL (see $SERVICE_LOG)"
fi

# --- 3. NATS image -----------------------------------------------------------------------------------
image_exists() { podman image exists "$1" 2>/dev/null; }

if ! image_exists "$IMAGE"; then
  log "building $IMAGE from $NATS_BIN"
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  mkdir -p "$rootfs/usr/sbin" "$rootfs/data" "$rootfs/tmp" "$rootfs/etc"
  chmod 1777 "$rootfs/tmp"
  cp -L "$NATS_BIN" "$rootfs/usr/sbin/nats-server"
  # Shared libraries and the dynamic loader, at the paths the binary and ldd name (symlinks resolved).
  while read -r lib; do
    [[ -n $lib ]] && cp -L --parents "$lib" "$rootfs/"
  done < <(ldd "$NATS_BIN" | awk '/=>/ && $3 ~ /^\// { print $3; next } $1 ~ /^\// { print $1 }')
  # Without these, anything in the image resolving uid 0 (podman's --user handling) has no names.
  printf 'root:x:0:0:root:/:/usr/sbin/nats-server\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\n' >"$rootfs/etc/group"
  tar -C "$rootfs" -c . |
    podman import --quiet \
      --change 'ENTRYPOINT ["/usr/sbin/nats-server"]' \
      --change 'CMD ["-js", "-sd", "/data"]' \
      --change 'EXPOSE 4222' \
      --change "LABEL org.opencontainers.image.version=$NATS_VERSION" \
      --message "nats-server $NATS_VERSION from the host's apt package (infra/podman/setup.sh)" \
      - "$IMAGE" >/dev/null || fail "podman import of $IMAGE failed"
  rm -f "$SMOKE_STAMP"
fi
if [[ $(podman image inspect --format '{{.Id}}' "$IMAGE_REPO:latest" 2>/dev/null) != \
  $(podman image inspect --format '{{.Id}}' "$IMAGE") ]]; then
  podman tag "$IMAGE" "$IMAGE_REPO:latest" || fail "cannot tag $IMAGE_REPO:latest"
fi

# --- smoke test: run the image with a published loopback port, as testcontainers will -----------------
if [[ ! -f $SMOKE_STAMP ]]; then
  name="capture-setup-smoke-$$"
  cid=$(podman run -d --rm --name "$name" -p 127.0.0.1::4222 "$IMAGE" 2>&1) ||
    fail "cannot run a container from $IMAGE: ${cid//$'\n'/ }"
  trap 'podman rm -f -t 0 "$name" >/dev/null 2>&1 || true; rm -rf "${rootfs:-}"' EXIT
  port=$(podman port "$name" 4222/tcp | sed -n 's/.*:\([0-9]*\)$/\1/p' | head -n1)
  ok=""
  for _ in $(seq 1 50); do
    # nats-server greets every client with an INFO line.
    if [[ -n $port ]] && timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && head -c 4 <&3" 2>/dev/null |
      grep -q INFO; then
      ok=yes
      break
    fi
    sleep 0.1
  done
  [[ -n $ok ]] || fail "a container from $IMAGE did not answer on a published port 127.0.0.1:${port:-?}"
  touch "$SMOKE_STAMP"
  log "podman ready: $IMAGE answers on published ports via $SOCKET_URL"
fi

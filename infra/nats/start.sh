#!/bin/sh
# Runs one node of the cluster: `start.sh <config> <self> <node>…`, the nodes named as the routes
# name them. nats-server 2.10.27 does not always bring all three nodes into the JetStream meta group
# (docs/deploy.md, "Every NATS node must be in the JetStream meta group"): a node may follow a leader
# whose group of two never adds it, or never hear from the leader, until it restarts. So:
#   - on a first start (no JetStream state in /data yet) nats-server waits until every node resolves
#     (all their containers run), so that the three start within a second of each other;
#   - then, every 10 s, a node that is not the leader asks the leader's /jsz (the leader it knows,
#     or else the one another node names) whether it is a current member of the group; left out
#     three times running, it stops with exit code 75 and its restart policy starts it again,
#     which brought the node in whenever that was tried here.
config=$1
self=$2
shift 2
leader_of() {
  fetch "http://$1:8222/jsz" | sed -n 's/.*"leader":"\([^"]*\)".*/\1/p'
}
fetch() {
  if command -v wget >/dev/null 2>&1; then wget -q -T 3 -O - "$1"; else busybox wget -q -T 3 -O - "$1"; fi
}
if [ ! -d /data/jetstream ]; then
  waited=0
  for node in "$@"; do
    # Five minutes at most: a node that never comes must not keep this one down for ever.
    until getent hosts "$node" >/dev/null 2>&1 || [ "$waited" -ge 1500 ]; do
      sleep 0.2
      waited=$((waited + 1))
    done
  done
fi
nats-server -c "$config" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server; exit $?' TERM INT
left_out=0
while kill -0 "$server" 2>/dev/null; do
  sleep 10 &
  wait $!
  known=$(leader_of 127.0.0.1)
  leader=$known
  # No leader here: the one another node names, if any (this node may just not hear from it).
  for node in "$@"; do
    [ -n "$leader" ] && break
    [ "$node" = "$self" ] || leader=$(leader_of "$node")
  done
  if [ -z "$leader" ] || [ "$leader" = "$self" ]; then
    left_out=0
  elif [ -n "$known" ] && fetch "http://$leader:8222/jsz" | grep -q "\"name\":\"$self\",\"current\":true"; then
    left_out=0
  else
    left_out=$((left_out + 1))
  fi
  if [ "$left_out" -ge 3 ]; then
    echo "[start.sh] $self is not in the JetStream meta group of $leader: restarting" >&2
    kill -TERM "$server"
    wait "$server"
    exit 75
  fi
done
wait "$server"

#!/bin/sh
# Starts one node of the cluster: `start.sh <config> <node>…`, the nodes named as the routes name
# them. On a node's first start (no JetStream state in /data yet) nats-server waits until every node
# resolves, that is until all their containers run, so the three servers start within a second of
# each other and the JetStream meta group forms with all three at its first election. A node
# started alone joins a group that two others already formed and, with nats-server 2.10.27, may
# never catch up with it: a late joiner's catch-up and the leader's first snapshot collide
# ("snapshot can not be installed while catchups running") and the node never hears from the
# leader again (docs/deploy.md). A node with state knows its peers and starts at once.
config=$1
shift
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
exec nats-server -c "$config"

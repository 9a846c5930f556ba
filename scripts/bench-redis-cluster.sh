#!/usr/bin/env bash
# Two nodes (a on :18080, b on :18081) on a private three-master Redis Cluster
# (:16401-:16403, cluster bus :26401-:26403, no persistence) with
# `redis.cluster = true` (cluster client, sharded pub/sub), then
# `flowgate-bench ARGS...` with its clients on node b; add
# `--post-url http://127.0.0.1:18080` to fanout to post through node a, so every
# event crosses the cluster. Prints the CPU the three redis-servers and node a used.
# FLOWGATE_BIN=DIR runs the binaries in DIR instead of target/release.
# The same shapes as scripts/bench-cluster.sh (one redis-server), side by side:
#   cargo build --release --bins && scripts/bench-redis-cluster.sh fanout --subscribers 1000 --chats 100 --events 2000 --post-url http://127.0.0.1:18080
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 20000
KEY=bench-key-0123456789abcdef
BIN=${FLOWGATE_BIN:-${CARGO_TARGET_DIR:-target}/release}
PORTS="16401 16402 16403"
WORK=$(mktemp -d)
REDIS=()
for p in $PORTS; do
  mkdir -p "$WORK/r$p"
  redis-server --bind 127.0.0.1 --port "$p" --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-port $((p + 10000)) --save "" --appendonly no --dir "$WORK/r$p" --daemonize no --loglevel warning &
  REDIS+=($!)
done
trap 'set +e; kill "${A:-}" "${B:-}" 2>/dev/null; wait "${A:-}" "${B:-}" 2>/dev/null; kill "${REDIS[@]}"; wait "${REDIS[@]}" 2>/dev/null; rm -rf "$WORK"' EXIT
for p in $PORTS; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
# shellcheck disable=SC2046
redis-cli --cluster create $(for p in $PORTS; do echo "127.0.0.1:$p"; done) --cluster-replicas 0 --cluster-yes >/dev/null
for p in $PORTS; do
  for _ in $(seq 100); do redis-cli -p "$p" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
done
SEEDS=$(for p in $PORTS; do printf 'redis://127.0.0.1:%s,' "$p"; done)
node() { # name port
  mkdir -p "$WORK/$1"
  FLOWGATE_DATA_DIR=$WORK/$1 FLOWGATE_API_KEY=$KEY FLOWGATE_LISTEN=127.0.0.1:$2 FLOWGATE_LOG=warn \
    FLOWGATE_STORE=redis FLOWGATE_REDIS_URL=${SEEDS%,} FLOWGATE_REDIS__CLUSTER=true FLOWGATE_NODE_ID=$1 \
    FLOWGATE_JWT__SECRET=bench-secret-bench-secret-bench-secret \
    FLOWGATE_LIMITS__WS_MAX_CONNECTIONS=20000 FLOWGATE_RATE_LIMITS__PER_KEY_PER_SEC=0 FLOWGATE_RATE_LIMITS__PER_TENANT_PER_SEC=0 \
    FLOWGATE_RUNS__MAX_CONCURRENT_RUNS_PER_TENANT=0 FLOWGATE_RUNS__MAX_CHATS_PER_TENANT=0 "$BIN/flowgate" serve &
}
node a 18080; A=$!
node b 18081; B=$!
for port in 18080 18081; do
  for _ in $(seq 50); do curl -sf 127.0.0.1:$port/healthz >/dev/null && break; sleep 0.2; done
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rticks() { local t=0; for r in "${REDIS[@]}"; do t=$((t + $(ticks "$r"))); done; echo $t; }
R0=$(rticks); A0=$(ticks $A)
FLOWGATE_API_KEY=$KEY FLOWGATE_BENCH_URL=http://127.0.0.1:18081 "$BIN/flowgate-bench" "$@"
R1=$(rticks); A1=$(ticks $A)
echo "redis-servers CPU (3 masters): $(( (R1 - R0) * 10 )) ms; node a CPU: $(( (A1 - A0) * 10 )) ms (USER_HZ = 100)"

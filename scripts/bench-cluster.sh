#!/usr/bin/env bash
# Two nodes (a on :18080, b on :18081) on a private redis-server (:16399, no
# persistence), then `flowgate-bench ARGS...` with its clients on node b; add
# `--post-url http://127.0.0.1:18080` to fanout to post through node a, so every
# event crosses Redis. Prints the CPU redis-server and node a used.
# FLOWGATE_BIN=DIR runs the binaries in DIR instead of target/release.
#   cargo build --release --bins && scripts/bench-cluster.sh fanout --subscribers 1000 --chats 100 --events 2000 --post-url http://127.0.0.1:18080
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 20000
KEY=bench-key-0123456789abcdef
RPORT=16399
for port in $RPORT 18080 18081; do # another bench still running would take these runs' clients
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is in use (another bench?)" >&2; exit 1; fi
done
WORK=$(mktemp -d)
redis-server --bind 127.0.0.1 --port $RPORT --save "" --appendonly no --dir "$WORK" --daemonize no --loglevel warning &
REDIS=$!
trap 'set +e; kill "${A:-}" "${B:-}" 2>/dev/null; wait "${A:-}" "${B:-}" 2>/dev/null; kill "$REDIS"; wait "$REDIS" 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do redis-cli -p $RPORT ping >/dev/null 2>&1 && break; sleep 0.1; done
node() { # name port
  mkdir -p "$WORK/$1"
  FLOWGATE_DATA_DIR=$WORK/$1 FLOWGATE_API_KEY=$KEY FLOWGATE_LISTEN=127.0.0.1:$2 FLOWGATE_LOG=warn \
    FLOWGATE_STORE=redis FLOWGATE_REDIS_URL=redis://127.0.0.1:$RPORT FLOWGATE_NODE_ID=$1 \
    FLOWGATE_JWT__SECRET=bench-secret-bench-secret-bench-secret \
    FLOWGATE_LIMITS__WS_MAX_CONNECTIONS=20000 FLOWGATE_RATE_LIMITS__PER_KEY_PER_SEC=0 FLOWGATE_RATE_LIMITS__PER_TENANT_PER_SEC=0 \
    FLOWGATE_RUNS__MAX_CONCURRENT_RUNS_PER_TENANT=0 FLOWGATE_RUNS__MAX_CHATS_PER_TENANT=0 "${FLOWGATE_BIN:-target/release}/flowgate" serve &
}
node a 18080; A=$!
node b 18081; B=$!
for port in 18080 18081; do
  for _ in $(seq 50); do curl -sf 127.0.0.1:$port/healthz >/dev/null && break; sleep 0.2; done
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
R0=$(ticks $REDIS); A0=$(ticks $A)
FLOWGATE_API_KEY=$KEY FLOWGATE_BENCH_URL=http://127.0.0.1:18081 "${FLOWGATE_BIN:-target/release}/flowgate-bench" "$@"
R1=$(ticks $REDIS); A1=$(ticks $A)
echo "redis-server CPU: $(( (R1 - R0) * 10 )) ms; node a CPU: $(( (A1 - A0) * 10 )) ms (USER_HZ = 100)"

#!/usr/bin/env bash
# One embedded node (SQLite + in-process bus) on 127.0.0.1:18080 with a fresh
# data dir, then `flowgate-bench ARGS...` against it; stops the node after.
# FLOWGATE_BIN=DIR runs the binaries in DIR instead of target/release.
#   cargo build --release --bins && scripts/bench-node.sh fanout --subscribers 1000 --chats 1 --events 10000
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 20000
KEY=bench-key-0123456789abcdef
DATA=$(mktemp -d)
trap 'kill "$NODE" 2>/dev/null; wait "$NODE" 2>/dev/null; rm -rf "$DATA"' EXIT
FLOWGATE_DATA_DIR=$DATA FLOWGATE_API_KEY=$KEY FLOWGATE_LISTEN=127.0.0.1:18080 FLOWGATE_LOG=warn \
  FLOWGATE_LIMITS__WS_MAX_CONNECTIONS=20000 FLOWGATE_RATE_LIMITS__PER_KEY_PER_SEC=0 FLOWGATE_RATE_LIMITS__PER_TENANT_PER_SEC=0 \
  FLOWGATE_RUNS__MAX_CONCURRENT_RUNS_PER_TENANT=0 FLOWGATE_RUNS__MAX_CHATS_PER_TENANT=0 "${FLOWGATE_BIN:-target/release}/flowgate" serve &
NODE=$!
for _ in $(seq 50); do curl -sf 127.0.0.1:18080/healthz >/dev/null && break; sleep 0.2; done
FLOWGATE_API_KEY=$KEY FLOWGATE_BENCH_URL=http://127.0.0.1:18080 "${FLOWGATE_BIN:-target/release}/flowgate-bench" "$@"

#!/usr/bin/env bash
# Every shape docs/benchmarks.md reports for issue 11, one after another, each
# on a fresh server (and a fresh Redis or three-master cluster), with the
# 1-minute load average printed before each run (the bench prints the CPU
# the rest of the machine used), so a busy machine shows in the figures. Takes about fifteen
# minutes. FLOWGATE_BIN=DIR runs the binaries in DIR (copy them out of a
# shared target dir first); ROUNDS=N repeats the fan-out shapes N times.
#   cargo build --release --bins && scripts/bench-all.sh 2>&1 | tee /tmp/bench-all.log
set -uo pipefail
cd "$(dirname "$0")/.."
export FLOWGATE_BIN=${FLOWGATE_BIN:-${CARGO_TARGET_DIR:-target}/release}
P="--post-url http://127.0.0.1:18080"

run() { # script args...
  echo
  echo "=== $* | load $(cut -d' ' -f1 /proc/loadavg) | $(date -u +%H:%M:%S) UTC"
  "$@" || echo "=== FAILED (exit $?): $*"
}

for _ in $(seq "${ROUNDS:-1}"); do
  for s in scripts/bench-node.sh scripts/bench-cluster.sh scripts/bench-redis-cluster.sh; do
    x=
    [ "$s" = scripts/bench-node.sh ] || x=$P
    run $s fanout --subscribers 1000 --chats 1 --events 10000 $x
    run $s fanout --subscribers 1000 --chats 100 --events 10000 $x
    run $s fanout --subscribers 2000 --chats 1000 --events 2000 $x
  done
done
# No delta lost across nodes at 400 tokens/s per chat; the bench checks every
# streamed message against the stored one (holes must be 0).
for s in scripts/bench-cluster.sh scripts/bench-redis-cluster.sh; do
  run $s fanout --subscribers 200 --chats 100 --events 2000 --tokens-per-sec 400 $P
  run $s fanout --subscribers 2000 --chats 1000 --events 2000 --tokens-per-sec 400 $P
done
run scripts/bench-node.sh latency --rate 50000 --duration 15
run scripts/bench-node.sh idle --connections 10000
run scripts/bench-node.sh idle --connections 10000 --no-subscribe
echo
echo "=== done | load $(cut -d' ' -f1 /proc/loadavg) | $(date -u +%H:%M:%S) UTC"

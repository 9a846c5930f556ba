#!/usr/bin/env bash
# The spec and the server agree, checked by an outside tool: starts a gateway
# (debug binary, free loopback port, fresh data dir, a seeded API key) and runs
# Schemathesis (https://schemathesis.readthedocs.io, 4.x) against the
# /openapi.json it serves. Fails on any 5xx, any response whose status,
# content type, headers or body the spec does not describe, any spec example
# or schema-valid request the server refuses, and any schema-violating request
# it accepts. See docs/testing.md ("Schemathesis").
#
# Environment:
#   SCHEMATHESIS           the schemathesis binary (default: `schemathesis` on PATH)
#   FLOWGATE_BIN           a built gateway (default: `cargo build`, target/debug/flowgate)
#   SCHEMATHESIS_EXAMPLES  cases per operation and phase (default 40)
#   SCHEMATHESIS_SEED      the generation seed (default fixed, so CI is reproducible)
#   SCHEMATHESIS_DEADLINE  seconds before the whole run is killed (default 420)
#   SCHEMATHESIS_REPORTS   where the JUnit and NDJSON reports go (default target/schemathesis)
# Extra arguments are passed to `schemathesis run` (e.g. --max-failures 1).
set -euo pipefail
cd "$(dirname "$0")/.."

st="${SCHEMATHESIS:-schemathesis}"
examples="${SCHEMATHESIS_EXAMPLES:-40}"
seed="${SCHEMATHESIS_SEED:-20260901}"
deadline="${SCHEMATHESIS_DEADLINE:-420}"
reports="${SCHEMATHESIS_REPORTS:-target/schemathesis}"

if ! command -v "$st" >/dev/null 2>&1; then
  echo "schemathesis: \`$st\` not found (pip install schemathesis, or set SCHEMATHESIS)" >&2
  exit 2
fi

if [ -n "${FLOWGATE_BIN:-}" ]; then
  bin="$FLOWGATE_BIN"
else
  cargo build --quiet --bin flowgate
  bin=target/debug/flowgate
fi

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
key="fgk_schemathesis_$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
data="$(mktemp -d)"
log="$data/gateway.log"
gateway=""

cleanup() {
  if [ -n "$gateway" ]; then
    kill "$gateway" 2>/dev/null || true
    wait "$gateway" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A long-poll (`GET /messages?wait=`) holds at most 1 s here, so a generated
# `wait=3599` answers well inside --request-timeout. The registry has a
# `default` model (scripted, offline), which the spec's FlowGen example needs.
FLOWGATE_API_KEY="$key" \
  FLOWGATE_DATA_DIR="$data" \
  FLOWGATE_LISTEN="127.0.0.1:$port" \
  FLOWGATE_LIMITS__LONG_POLL_MAX_SECS=1 \
  FLOWGATE_MODELS__DEFAULT__PROVIDER=scripted \
  FLOWGATE_MODELS__DEFAULT__REPLIES='["Done. TERMINATE"]' \
  FLOWGATE_LOG="${FLOWGATE_LOG:-flowgate=warn}" \
  "$bin" serve >"$log" 2>&1 &
gateway=$!

ready=""
for _ in $(seq 1 100); do
  if curl -fsS "$base/readyz" >/dev/null 2>&1; then
    ready=1
    break
  fi
  if ! kill -0 "$gateway" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "schemathesis: the gateway did not become ready on $base within 10 s; its log:" >&2
  cat "$log" >&2
  exit 1
fi

mkdir -p "$reports"
# Every operation but the two WebSocket upgrades (`GET /ws`,
# `GET /chats/{chat_id}/ws`): Schemathesis speaks HTTP requests and
# responses, not the 101 upgrade and its frames (tests/it/ws_*.rs cover them).
# The SSE variant of `GET /chats/{chat_id}/events` is never reached: the spec
# declares no `Accept` parameter, so Schemathesis always gets the JSON page
# (tests/it/browser_plumbing.rs and openapi/live.rs cover the stream).
# scripts/schemathesis.toml holds the per-operation settings.
status=0
timeout --signal=INT --kill-after=10 "$deadline" \
  "$st" --config-file scripts/schemathesis.toml run "$base/openapi.json" \
  --url "$base" \
  --header "X-API-KEY: $key" \
  --phases examples,coverage,fuzzing \
  --checks all \
  --max-examples "$examples" \
  --seed "$seed" \
  --workers 2 \
  --request-timeout 10 \
  --generation-database none \
  --exclude-operation-id connectWebSocket \
  --exclude-operation-id connectChatWebSocket \
  --no-color \
  --report junit,ndjson \
  --report-dir "$reports" \
  "$@" || status=$?

if [ "$status" -ne 0 ]; then
  echo "schemathesis: failed (exit $status); the gateway's log: $reports/gateway.log" >&2
  cp "$log" "$reports/gateway.log" || true
fi
exit "$status"

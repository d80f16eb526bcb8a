#!/usr/bin/env bash
# Starts the demo services, traces them with the agent (console waterfall),
# drives a few requests with curl, then stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
AGENT=${1:-bin/tracer-agent}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (sudo make demo): the agent loads eBPF programs" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/backend" ./demo/backend
OTEL_SERVICE_NAME=inventory "$tmp/backend" 127.0.0.1:8081 & pids+=($!)
OTEL_SERVICE_NAME=shop-frontend python3 demo/frontend.py 8080 http://127.0.0.1:8081 & pids+=($!)
for port in 8080 8081; do
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.1; done
done

"$AGENT" --pid "${pids[0]}" --pid "${pids[1]}" --drop-route '/health*' 2>"$tmp/agent.log" & agent=$!
pids+=($agent)
for _ in $(seq 100); do grep -q 'msg=ready' "$tmp/agent.log" && break; sleep 0.1; done
grep -q 'msg=ready' "$tmp/agent.log" || { cat "$tmp/agent.log" >&2; exit 1; }

echo "demo: tracing shop-frontend (python, :8080) and inventory (go, :8081); sending requests..." >&2
for item in 7 42 13; do
  curl -s -o /dev/null -w "GET /checkout/$item -> %{http_code}\n" "http://127.0.0.1:8080/checkout/$item"
done
sleep 3
kill -INT "$agent"; wait "$agent" || true
echo "--- agent log ---" >&2
cat "$tmp/agent.log" >&2

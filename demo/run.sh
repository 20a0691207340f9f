#!/usr/bin/env bash
# Quick start: the proxy on http://127.0.0.1:$DEMO_PORT/notes/mcp (default 8080)
# in front of a demo MCP server (tests/node/upstream.mjs, written with the
# official TypeScript SDK) on 127.0.0.1:$DEMO_UPSTREAM_PORT (default 3001) that
# only accepts the proxy's own bearer token. Log in as demo / demo.
# Ctrl-C stops both.
#
#   DEMO_PORT=9090 DEMO_UPSTREAM_PORT=4001 ./demo/run.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DEMO_PORT=${DEMO_PORT:-8080}
export DEMO_UPSTREAM_PORT=${DEMO_UPSTREAM_PORT:-3001}
export DEMO_UPSTREAM_TOKEN=${DEMO_UPSTREAM_TOKEN:-demo-upstream-token-$RANDOM$RANDOM}

if [[ ! -d tests/node/node_modules ]]; then
  npm ci --prefix tests/node --no-audit --no-fund
fi
cargo build --release

pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
node tests/node/upstream.mjs --port "$DEMO_UPSTREAM_PORT" --token "$DEMO_UPSTREAM_TOKEN" >/dev/null &
pids+=($!)
./target/release/mcp-oauth-proxy serve --config demo/config.yaml &
proxy=$!
pids+=("$proxy")

# The banner only once the proxy answers: a busy port shows the proxy's error instead.
for _ in $(seq 100); do
  if curl -fsS "http://127.0.0.1:$DEMO_PORT/healthz" >/dev/null 2>&1; then
    cat <<MSG
MCP server URL for your client:   http://127.0.0.1:$DEMO_PORT/notes/mcp
Login:                            demo / demo
MSG
    break
  fi
  kill -0 "$proxy" 2>/dev/null || break
  sleep 0.1
done
wait "$proxy"

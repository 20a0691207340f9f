#!/usr/bin/env bash
# Quick start: the proxy on http://127.0.0.1:8080/notes/mcp in front of a demo
# MCP server (tests/node/upstream.mjs, written with the official TypeScript SDK)
# that only accepts the proxy's own bearer token. Log in as demo / demo.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -d tests/node/node_modules ]]; then
  npm ci --prefix tests/node --no-audit --no-fund
fi
cargo build --release

export DEMO_UPSTREAM_TOKEN=${DEMO_UPSTREAM_TOKEN:-demo-upstream-token-$RANDOM$RANDOM}
node tests/node/upstream.mjs --port 3001 --token "$DEMO_UPSTREAM_TOKEN" >/dev/null &
upstream=$!
trap 'kill $upstream 2>/dev/null' EXIT

cat <<MSG
MCP server URL for your client:   http://127.0.0.1:8080/notes/mcp
Login:                            demo / demo
MSG
./target/release/mcp-oauth-proxy serve --config demo/config.yaml

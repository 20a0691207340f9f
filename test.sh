#!/usr/bin/env bash
# Runs the whole test suite: Rust unit + integration tests (which start the
# Node fixtures in tests/node), the systemd unit check, the Node interop
# tests in tests/interop when there are any, and the MCP conformance suite.
# Extra arguments for `cargo test` go in CARGO_TEST_ARGS, e.g.
#   CARGO_TEST_ARGS="-- --nocapture" ./test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# What the suite needs besides Rust, said up front rather than deep inside a test
# (Debian package names; .ci/run installs them all on a fresh machine).
missing=()
command -v node >/dev/null || missing+=("nodejs (Node.js 20+)")
command -v npm >/dev/null || missing+=("npm")
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=("python3-venv")
command -v systemd-analyze >/dev/null || missing+=("systemd (systemd-analyze)")
[[ -x /usr/bin/chromium ]] || missing+=("chromium")
command -v redis-server >/dev/null || missing+=("redis-server")
if (( ${#missing[@]} )); then
  echo "test.sh: missing: ${missing[*]} (e.g. apt-get install chromium fonts-liberation systemd python3-venv nodejs npm redis-server)" >&2
  exit 1
fi

for dir in tests/node tests/conformance; do
  if [[ ! -d $dir/node_modules ]]; then
    npm ci --prefix "$dir" --no-audit --no-fund
  fi
done

# The official Python MCP SDK for tests/interop/python-sdk.test.mjs, in .venv/
# (not committed); (re)installed when missing or when requirements.txt changed.
if ! cmp -s tests/interop/python/requirements.txt .venv/requirements.txt; then
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  .venv/bin/pip install --disable-pip-version-check --no-input -q -r tests/interop/python/requirements.txt
  cp tests/interop/python/requirements.txt .venv/requirements.txt
fi

# shellcheck disable=SC2086 # CARGO_TEST_ARGS is meant to be split into words
cargo test --all-targets ${CARGO_TEST_ARGS:-}

bash systemd/verify.sh

if compgen -G 'tests/interop/*.test.mjs' >/dev/null; then
  node --test tests/interop/
fi

# The official MCP conformance suite against the proxy (tests/conformance/README.md).
node tests/conformance/run.mjs
# Its 2026-07-28 server scenarios over the stdio route, where the proxy bridges
# those clients to server-everything (the others need the suite's own fixture tools).
node tests/conformance/run.mjs --upstream stdio --only server \
  --scenario server-stateless --scenario caching --scenario http-header-validation \
  --scenario input-required-result-ignore-extra-params --scenario input-required-result-missing-input-response \
  --scenario input-required-result-unsupported-methods --scenario input-required-result-validate-input

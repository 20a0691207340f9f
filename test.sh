#!/usr/bin/env bash
# Runs the whole test suite: Rust unit + integration tests (which start the
# Node fixtures in tests/node), the systemd unit check, the Node interop
# tests in tests/interop when there are any, and the MCP conformance suite.
# Extra arguments for `cargo test` go in CARGO_TEST_ARGS, e.g.
#   CARGO_TEST_ARGS="-- --nocapture" ./test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ ! -d tests/node/node_modules ]]; then
  npm ci --prefix tests/node --no-audit --no-fund
fi

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
# It needs `npm ci --prefix tests/conformance` (.ci/run does it); without that it
# is skipped, except under CI, where it must run.
if [[ -d tests/conformance/node_modules || ( -n "${CI:-}" && "${CI}" != "false" ) ]]; then
  node tests/conformance/run.mjs
else
  echo "test.sh: skipping the MCP conformance suite: tests/conformance/node_modules is missing (npm ci --prefix tests/conformance)"
fi

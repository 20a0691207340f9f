#!/usr/bin/env bash
# Runs the whole test suite: Rust unit + integration tests (which start the
# Node fixtures in tests/node), the systemd unit check, and the Node interop
# tests in tests/interop when there are any.
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

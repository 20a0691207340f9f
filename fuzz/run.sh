#!/usr/bin/env bash
# Builds every fuzz target and runs each for a short fixed time; fails if any
# target crashes (panic, failed assertion, timeout, out of memory).
#
#   FUZZ_SECONDS  seconds per target (default 20)
#   FUZZ_JOBS     targets run at once (default: the number of CPUs)
#   FUZZ_TARGETS  space-separated subset of targets (default: all)
#
# Runs on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the
# nightly-only flags it needs (-Z in cargo, sanitizer coverage). No sanitizer
# (-s none): the crate has no unsafe code, AddressSanitizer made the build take
# half as much CPU again (524 s against 350 s) and slows every execution; panics,
# failed assertions and overflow checks are what these targets find.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=${FUZZ_SECONDS:-20}
jobs=${FUZZ_JOBS:-$(nproc)}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "--- cargo install cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
installed=$(cargo fuzz --version | awk '{print $2}')
if [[ $installed != "$CARGO_FUZZ_VERSION" ]]; then
  echo "note: using the installed cargo-fuzz $installed, not $CARGO_FUZZ_VERSION"
fi

export RUSTC_BOOTSTRAP=1
if command -v rustup >/dev/null; then
  export RUSTUP_TOOLCHAIN=${FUZZ_TOOLCHAIN:-stable}
fi
# Same options for build and run, so `cargo fuzz run` finds the build up to date.
fuzz_opts=(-s none)

read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo fuzz list | tr '\n' ' ')}"

echo "--- cargo fuzz build (${targets[*]})"
start=$SECONDS
cargo fuzz build "${fuzz_opts[@]}"
echo "built in $((SECONDS - start)) s"

logs=fuzz/target/run-logs
rm -rf "$logs"
mkdir -p "$logs"

run_one() {
  local t=$1
  local dirs=("fuzz/corpus/$t")
  mkdir -p "fuzz/corpus/$t"
  if [[ -d fuzz/seeds/$t ]]; then
    dirs+=("fuzz/seeds/$t")
  fi
  # -timeout: one input taking 10 s counts as a crash (a hang).
  cargo fuzz run "${fuzz_opts[@]}" "$t" "${dirs[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 >"$logs/$t.log" 2>&1
}

echo "--- cargo fuzz run: ${#targets[@]} targets, ${seconds} s each, $jobs at a time"
start=$SECONDS
declare -A target_of
running=0
failed=()
# Waits for whichever target finishes first and reports it.
reap() {
  local pid status=0
  wait -n -p pid || status=$?
  local t=${target_of[$pid]}
  running=$((running - 1))
  if ((status == 0)); then
    echo "ok    $t: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$logs/$t.log" | tail -n 1 | tr -s ' \t' ' ' || true)"
  else
    failed+=("$t")
    echo "FAIL  $t (exit $status; whole log: $logs/$t.log)"
    # The panic or libFuzzer's reason, the input, and how to replay it.
    grep -E -A3 'panicked at|ERROR: libFuzzer|^error' "$logs/$t.log" | head -n 20 | sed "s/^/  $t| /" || true
    grep -E -A2 'Test unit written|^Reproduce with' "$logs/$t.log" | sed "s/^/  $t| /" || true
  fi
}
for t in "${targets[@]}"; do
  if ((running >= jobs)); then
    reap
  fi
  run_one "$t" &
  target_of[$!]=$t
  running=$((running + 1))
done
while ((running > 0)); do
  reap
done
echo "ran in $((SECONDS - start)) s"

if ((${#failed[@]} > 0)); then
  echo "fuzzing found crashes in: ${failed[*]} (inputs under fuzz/artifacts/<target>/;"
  echo "reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> <input>)"
  exit 1
fi

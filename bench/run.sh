#!/usr/bin/env bash
# Benchmark: mcp-oauth-proxy against a plain nginx proxy_pass, both in front of the same
# fast nginx upstream, on one machine. See bench/README.md for what is measured and how.
#
#   bench/run.sh                       # everything (~5 minutes on 2 cores; ROUNDS=2: ~8)
#   PHASES="call list" bench/run.sh    # only some phases: call list cache sse
#
# Knobs (environment): DURATION (s per wrk run, 10), CONCURRENCY ("1 16 64"), ROUNDS (1;
# more: the median per cell), PHASES ("call list cache sse"; also "profile"), SSE_STREAMS (10000),
# SSE_PROTOS ("h1 h2"), PROXY_BIN (target/release/mcp-oauth-proxy), SKIP_BUILD (0),
# OUT (bench/out/<time>), MAX_RUNTIME (1800 s), QUIET_MAX_BUSY (20 %), QUIET_WAIT (900 s),
# OTHERS_MAX (10 % of a CPU used by other processes during a block of runs: repeat it),
# PROXY_CPU (0), LOAD_CPU (1), BASE_PORT (18000), METRICS (on: the proxy has an `admin`
# listener, so it counts every request, as in production; off: no metrics), STORE (dir;
# redis: the proxy's state in a redis-server of the run's own, on LOAD_CPU).
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-"1 16 64"}
ROUNDS=${ROUNDS:-1}
PHASES=${PHASES:-"call list cache sse"}
SSE_STREAMS=${SSE_STREAMS:-10000}
SSE_PROTOS=${SSE_PROTOS:-"h1 h2"}
PROXY_BIN=${PROXY_BIN:-$ROOT/target/release/mcp-oauth-proxy}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT=${OUT:-$BENCH/out/$(date +%Y%m%d-%H%M%S)}
MAX_RUNTIME=${MAX_RUNTIME:-1800}
QUIET_MAX_BUSY=${QUIET_MAX_BUSY:-20}
QUIET_WAIT=${QUIET_WAIT:-900}
OTHERS_MAX=${OTHERS_MAX:-10}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BASE_PORT=${BASE_PORT:-18000}
UPSTREAM_PORT=$((BASE_PORT + 1))
NGINX_PORT=$((BASE_PORT + 2))
PROXY_PORT=$((BASE_PORT + 3))
SSE_PORT=$((BASE_PORT + 4))
ADMIN_PORT=$((BASE_PORT + 5))
METRICS=${METRICS:-on}
[[ $METRICS == on || $METRICS == off ]] || { echo "METRICS must be on or off, not $METRICS" >&2; exit 64; }
REDIS_PORT=$((BASE_PORT + 6))
STORE=${STORE:-dir}
PASSWORD=bench-password
CACHE_REQUESTS=200

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
has_phase() { [[ " $PHASES " == *" $1 "* ]]; }

for tool in nginx wrk taskset curl python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install nginx wrk util-linux curl python3)"
done
if has_phase sse; then command -v cargo >/dev/null || die "cargo is missing (the SSE phase builds bench/sse-bench)"; fi
case $STORE in
  dir) STATE_YAML="dir: \"@OUT@/state\"" ;;
  redis)
    command -v redis-server >/dev/null || die "redis-server is missing (apt-get install redis-server)"
    STATE_YAML="redis: \"redis://127.0.0.1:$REDIS_PORT/0\""
    ;;
  *) die "STORE must be dir or redis" ;;
esac
if has_phase cache || has_phase profile; then command -v valgrind >/dev/null || die "valgrind is missing (apt-get install valgrind)"; fi

# ---------------------------------------------------------------- cleanup and time bound
PIDS=()
cleanup() {
  local status=$?
  trap - EXIT
  trap '' INT TERM # finish cleaning up even if signalled again
  [[ -n ${WATCHDOG:-} ]] && kill "$WATCHDOG" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  log "stopped everything this run started; numbers and logs are in $OUT"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
(
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "$MAX_RUNTIME" &
  sleeper=$!
  wait "$sleeper"
  echo "[bench] MAX_RUNTIME=${MAX_RUNTIME}s reached: stopping" >&2
  kill -TERM $$
) &
WATCHDOG=$!

# Starts a background process (pinned with taskset by the caller) and remembers its pid.
start() {
  "$@" &
  PIDS+=($!)
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
stop() {
  local pid=$1 p rest=()
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || rest+=("$p"); done
  PIDS=("${rest[@]}")
}
wait_port() { # port pid: the process must be alive and listening
  for _ in $(seq 300); do
    kill -0 "$2" 2>/dev/null || die "the server for port $1 exited (see $OUT/logs)"
    port_free "$1" || return 0
    sleep 0.1
  done
  die "nothing listens on port $1 (see $OUT/logs)"
}

# ---------------------------------------------------------------- quiet machine
# busy and total jiffies of one CPU (busy: user nice system irq softirq steal)
cpu_ticks() { awk -v c="cpu$1" '$1 == c { b = $2+$3+$4+$7+$8+$9; print b, b+$5+$6 }' /proc/stat; }
busy_pct() { # busy% of all CPUs over 1 s
  local a b
  a=$(awk '$1 == "cpu" { b = $2+$3+$4+$7+$8+$9; print b, b+$5+$6 }' /proc/stat)
  sleep 1
  b=$(awk '$1 == "cpu" { b = $2+$3+$4+$7+$8+$9; print b, b+$5+$6 }' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); d = y[2] - x[2]; print (d > 0 ? int(100 * (y[1] - x[1]) / d) : 0) }'
}
NOISY=0
wait_quiet() { # our servers are idle here: any load belongs to someone else
  local waited=0 busy
  while :; do
    busy=$(busy_pct)
    ((busy <= QUIET_MAX_BUSY)) && return 0
    if ((waited == 0)); then
      log "machine busy (${busy}% CPU, e.g. $(ps -eo comm --sort=-pcpu | sed -n 2,4p | paste -sd, -)): waiting up to ${QUIET_WAIT}s"
    fi
    waited=$((waited + 5))
    if ((waited > QUIET_WAIT)); then
      log "still busy (${busy}%): measuring anyway, numbers marked noisy"
      NOISY=1
      return 0
    fi
    sleep 4
  done
}

# ---------------------------------------------------------------- build and setup
cd "$ROOT"
if [[ $SKIP_BUILD != 1 ]]; then
  log "cargo build --release"
  cargo build --release --quiet
fi
[[ -x $PROXY_BIN ]] || die "no proxy binary at $PROXY_BIN"
if has_phase sse; then
  log "cargo build --release (bench/sse-bench)"
  cargo build --release --quiet --manifest-path "$BENCH/sse-bench/Cargo.toml"
fi
mkdir -p "$OUT"/{data,tmp,run,logs,state,results}
OUT=$(cd "$OUT" && pwd) # absolute: nginx and the proxy run with other working directories
RESULTS=$OUT/results/runs.tsv
printf 'phase\ttarget\tconc\tround\trps\tp50_us\tp99_us\tbytes\terrors\tnon2xx\tcpu_proxy\tcpu_load\tcpu_others\n' >"$RESULTS"

# Enough descriptors for 2 x SSE_STREAMS sockets in the proxy (the hard limit may be lower).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

python3 "$BENCH/gen-data.py" "$OUT/data" >"$OUT/data/tools.size"
LIST_BYTES=$(stat -c %s "$OUT/data/tools.json")
CALL_JSON=$(cat "$OUT/data/call.json")
render() { # template -> file
  sed -e "s|@STATE@|$STATE_YAML|g" -e "s|@OUT@|$OUT|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" -e "s|@NGINX_PORT@|$NGINX_PORT|g" \
    -e "s|@PROXY_PORT@|$PROXY_PORT|g" -e "s|@SSE_PORT@|$SSE_PORT|g" \
    -e "s|@CALL_JSON@|$CALL_JSON|g" -e "s|@PASSWORD_HASH@|${PASSWORD_HASH:-}|g" "$1" >"$2"
}
PASSWORD_HASH=$(printf '%s' "$PASSWORD" | "$PROXY_BIN" hash-password)
render "$BENCH/nginx-upstream.conf.in" "$OUT/nginx-upstream.conf"
render "$BENCH/nginx-proxy.conf.in" "$OUT/nginx-proxy.conf"
render "$BENCH/proxy.yaml.in" "$OUT/proxy.yaml"
if [[ $METRICS == on ]]; then
  # Metrics on (and the admin API): what an operator runs.
  printf 'admin:\n  listen: "127.0.0.1:%s"\n' "$ADMIN_PORT" >>"$OUT/proxy.yaml"
fi
"$PROXY_BIN" check-config --config "$OUT/proxy.yaml" >/dev/null

{
  echo "date: $(date -Is)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "kernel: $(uname -r)"
  echo "nginx: $(nginx -v 2>&1 | cut -d/ -f2)"
  echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
  echo "proxy: $PROXY_BIN ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ' + local changes'))"
  echo "pinning: proxies on CPU $PROXY_CPU; upstream, load generators on CPU $LOAD_CPU"
  echo "metrics: $METRICS"
  echo "store: $STORE"
  echo "nofile: $NOFILE"
} >"$OUT/machine.txt"

for port in "$UPSTREAM_PORT" "$NGINX_PORT" "$PROXY_PORT" "$SSE_PORT" "$ADMIN_PORT" "$REDIS_PORT"; do
  port_free "$port" || die "port $port is in use (another run? BASE_PORT=$BASE_PORT picks others)"
done
if [[ $STORE == redis ]]; then
  log "redis-server on 127.0.0.1:$REDIS_PORT (CPU $LOAD_CPU, nothing saved)"
  start taskset -c "$LOAD_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$OUT/state" --logfile "$OUT/logs/redis.log"
  wait_port "$REDIS_PORT" "${PIDS[-1]}"
fi
log "upstream nginx on 127.0.0.1:$UPSTREAM_PORT (CPU $LOAD_CPU)"
start taskset -c "$LOAD_CPU" nginx -e "$OUT/logs/upstream-error.log" -p "$OUT" -c "$OUT/nginx-upstream.conf"
UPSTREAM_PID=${PIDS[-1]}
log "nginx proxy_pass on 127.0.0.1:$NGINX_PORT (CPU $PROXY_CPU, 1 worker)"
start taskset -c "$PROXY_CPU" nginx -e "$OUT/logs/nginx-proxy-error.log" -p "$OUT" -c "$OUT/nginx-proxy.conf"
NGINX_PID=${PIDS[-1]}
start_proxy() { # $1: optional wrapper (valgrind ...)
  log "mcp-oauth-proxy on 127.0.0.1:$PROXY_PORT (CPU $PROXY_CPU, TOKIO_WORKER_THREADS=1)"
  # shellcheck disable=SC2086
  start env TOKIO_WORKER_THREADS=1 taskset -c "$PROXY_CPU" ${1:-} "$PROXY_BIN" serve --config "$OUT/proxy.yaml" \
    2>>"$OUT/logs/proxy.log"
  PROXY_PID=${PIDS[-1]}
  wait_port "$PROXY_PORT" "$PROXY_PID"
}
start_proxy
wait_port "$UPSTREAM_PORT" "$UPSTREAM_PID"
wait_port "$NGINX_PORT" "$NGINX_PID"

# ---------------------------------------------------------------- tokens (real OAuth flow)
token() { # route path, [refreshes]
  python3 "$BENCH/get-token.py" --base "http://127.0.0.1:$PROXY_PORT" \
    --resource "http://127.0.0.1:$PROXY_PORT$1" --scope "tools:read" \
    --user bench --password "$PASSWORD" --refreshes "${2:-0}"
}
log "tokens through registration, login, consent and code exchange"
TOKEN_CALL=$(token /bench/mcp)
TOKEN_LIST=$(token /bench/list)
TOKEN_SSE=$(token /bench/sse)
printf '%s\n' "$TOKEN_CALL" >"$OUT/run/token-call"

# ---------------------------------------------------------------- sanity checks
CALL_BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_0001","arguments":{"path":"a.md"}}}'
WRITE_BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_0001","arguments":{"path":"a.md"}}}'
LIST_BODY='{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
post() { # url body [token] -> "status bytes" and the body in $OUT/run/last
  local auth=()
  [[ -n ${3:-} ]] && auth=(-H "Authorization: Bearer $3")
  curl -sS -o "$OUT/run/last" -w '%{http_code} %{size_download}' -X POST "$1" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' "${auth[@]}" --data "$2"
}
check() { [[ $2 == "$3" ]] || die "sanity check failed: $1: got '$2', want '$3'"; }
check "direct tools/call" "$(post "http://127.0.0.1:$UPSTREAM_PORT/mcp" "$CALL_BODY")" "200 ${#CALL_JSON}"
check "nginx tools/call" "$(post "http://127.0.0.1:$NGINX_PORT/mcp" "$CALL_BODY")" "200 ${#CALL_JSON}"
check "ours tools/call" "$(post "http://127.0.0.1:$PROXY_PORT/bench/mcp" "$CALL_BODY" "$TOKEN_CALL")" "200 ${#CALL_JSON}"
check "ours without token" "$(post "http://127.0.0.1:$PROXY_PORT/bench/mcp" "$CALL_BODY" | cut -d' ' -f1)" 401
check "ours tools/call outside the scope" \
  "$(post "http://127.0.0.1:$PROXY_PORT/bench/mcp" "$WRITE_BODY" "$TOKEN_CALL" | cut -d' ' -f1)" 403
check "direct tools/list" "$(post "http://127.0.0.1:$UPSTREAM_PORT/mcp-list" "$LIST_BODY")" "200 $LIST_BYTES"
post "http://127.0.0.1:$PROXY_PORT/bench/list" "$LIST_BODY" "$TOKEN_LIST" >/dev/null
FILTERED=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["result"]["tools"]; print(len(t), all(x["name"].startswith("read_") for x in t))' "$OUT/run/last")
check "ours filtered tools/list" "$FILTERED" "1000 True"
FILTERED_BYTES=$(stat -c %s "$OUT/run/last")
log "sanity checks passed (tools/list: $LIST_BYTES bytes upstream, $FILTERED_BYTES after the scope filter)"

# ---------------------------------------------------------------- load runs
# CPU time of the servers this run started (processes include their threads).
own_ticks() {
  local pids=() p t=0
  # shellcheck disable=SC2207
  for p in "$@"; do pids+=("$p" $(pgrep -P "$p" || true)); done
  for p in "${pids[@]}"; do
    [[ $p =~ ^[0-9]+$ && -r /proc/$p/stat ]] && t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
  done
  echo "$t"
}
# CPU time of this shell's finished children (wrk), in ticks.
# (`times` must run in this shell, not in a pipeline's or a substitution's subshell.)
children_ticks() {
  times >"$OUT/run/times"
  awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print int((u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 100) }' "$OUT/run/times"
}
busy_pct_of() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); d = y[2] - x[2]; print (d > 0 ? int(100 * (y[1] - x[1]) / d) : 0) }'; }

# run_wrk phase target conc round url token body -> one line of runs.tsv on stdout
run_wrk() {
  local phase=$1 target=$2 conc=$3 round=$4 url=$5 tok=$6 body=$7
  local file="$OUT/results/$phase-$target-c$conc-r$round.txt"
  local a0 a1 b0 b1 o0 o1 c0 c1
  local servers=("$UPSTREAM_PID" "$NGINX_PID" "$PROXY_PID")
  a0=$(cpu_ticks "$PROXY_CPU"); b0=$(cpu_ticks "$LOAD_CPU"); o0=$(own_ticks "${servers[@]}")
  children_ticks >"$OUT/run/c0"
  TOKEN=$tok BODY=$body timeout $((DURATION + 30)) taskset -c "$LOAD_CPU" \
    wrk -t1 -c"$conc" -d"${DURATION}s" --latency -s "$BENCH/post.lua" "$url" >"$file" 2>&1 || true
  a1=$(cpu_ticks "$PROXY_CPU"); b1=$(cpu_ticks "$LOAD_CPU"); o1=$(own_ticks "${servers[@]}")
  children_ticks >"$OUT/run/c1"
  c0=$(cat "$OUT/run/c0"); c1=$(cat "$OUT/run/c1")
  local cpu_p cpu_l other
  cpu_p=$(busy_pct_of "$a0" "$a1")
  cpu_l=$(busy_pct_of "$b0" "$b1")
  # Busy time of both CPUs not spent by the servers or wrk, in % of one CPU: someone else's.
  other=$(awk -v a0="$a0" -v a1="$a1" -v b0="$b0" -v b1="$b1" -v own=$((o1 - o0 + c1 - c0)) 'BEGIN {
    split(a0, w, " "); split(a1, x, " "); split(b0, y, " "); split(b1, z, " ")
    busy = x[1] - w[1] + z[1] - y[1]; per_cpu = (x[2] - w[2] + z[2] - y[2]) / 2
    v = per_cpu > 0 ? int(100 * (busy - own) / per_cpu) : 0; print (v < 0 ? 0 : v) }')
  local line
  line=$(grep '^RESULT' "$file" || true)
  [[ -n $line ]] || die "wrk failed, see $file"
  local r_rps r_p50 r_p99 r_bytes r_errors r_non2xx
  eval "$(sed -e 's/^RESULT //' -e 's/ /\n/g' <<<"$line" | grep -E '^(rps|p50_us|p99_us|bytes|errors|non2xx)=' | sed 's/_us=/=/; s/^/r_/')"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$target" "$conc" "$round" \
    "$r_rps" "$r_p50" "$r_p99" "$r_bytes" "$r_errors" "$r_non2xx" "$cpu_p" "$cpu_l" "$other"
  log "$phase $target c=$conc: $r_rps req/s, p50 ${r_p50} µs, p99 ${r_p99} µs (CPU proxy ${cpu_p}%, load ${cpu_l}%, others ${other}%, errors $r_errors, non-2xx $r_non2xx)"
}
target_url() {
  case $1 in
    direct) echo "http://127.0.0.1:$UPSTREAM_PORT/$2" ;;
    nginx) echo "http://127.0.0.1:$NGINX_PORT/$2" ;;
    ours) echo "http://127.0.0.1:$PROXY_PORT/bench/$3" ;;
  esac
}
# run_block phase conc upstream-path route-path token body: direct, nginx and ours, ROUNDS
# times; repeated (up to 3 times) when other processes took more than OTHERS_MAX % of a CPU.
run_block() {
  local phase=$1 conc=$2 up=$3 rt=$4 tok=$5 body=$6 attempt worst t round line
  for attempt in 1 2 3; do
    wait_quiet
    : >"$OUT/run/block.tsv"
    for round in $(seq "$ROUNDS"); do
      for t in direct nginx ours; do
        line=$(run_wrk "$phase" "$t" "$conc" "$round" "$(target_url $t "$up" "$rt")" \
          "$([[ $t == ours ]] && echo "$tok")" "$body") || die "wrk run failed ($phase $t c=$conc)"
        printf '%s\n' "$line" >>"$OUT/run/block.tsv"
      done
    done
    worst=$(cut -f13 "$OUT/run/block.tsv" | sort -n | tail -1)
    if ((worst <= OTHERS_MAX)); then break; fi
    if ((attempt == 3)); then
      log "$phase c=$conc: other processes still took ${worst}% of a CPU: keeping these numbers, marked noisy"
      NOISY=1
      break
    fi
    log "$phase c=$conc: other processes took ${worst}% of a CPU during the runs: repeating"
  done
  cat "$OUT/run/block.tsv" >>"$RESULTS"
}

# What the proxy counted (metrics on): a check that they were on, and a record of the
# requests it answered. $1: the file's name.
scrape_metrics() {
  [[ $METRICS == on ]] || return 0
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" >"$OUT/results/metrics-$1.txt" ||
    log "could not read the proxy's /metrics"
}

if has_phase call; then
  log "warm-up"
  for t in direct nginx ours; do
    TOKEN=$TOKEN_CALL timeout 30 taskset -c "$LOAD_CPU" wrk -t1 -c16 -d2s -s "$BENCH/post.lua" \
      "$(target_url $t mcp mcp)" >/dev/null 2>&1 || true
  done
  for conc in $CONCURRENCY; do
    run_block call "$conc" mcp mcp "$TOKEN_CALL" "$CALL_BODY"
  done
fi

if has_phase list; then
  run_block list 1 mcp-list list "$TOKEN_LIST" "$LIST_BODY"
fi
scrape_metrics load

# ---------------------------------------------------------------- verified-token cache
if has_phase cache; then
  log "token cache: $CACHE_REQUESTS requests with one token vs $CACHE_REQUESTS fresh tokens, proxy under callgrind"
  FRESH=$(token /bench/mcp "$CACHE_REQUESTS" | tail -n "$CACHE_REQUESTS")
  stop "$PROXY_PID"
  start_proxy "valgrind --tool=callgrind --callgrind-out-file=$OUT/results/callgrind.out --dump-instr=no"
  CG_PID=$PROXY_PID
  wait_quiet
  printf '%s\n' "$TOKEN_CALL" | python3 "$BENCH/send.py" 127.0.0.1 "$PROXY_PORT" /bench/mcp >/dev/null
  callgrind_control --zero "$CG_PID" >/dev/null 2>&1
  for _ in $(seq "$CACHE_REQUESTS"); do printf '%s\n' "$TOKEN_CALL"; done | python3 "$BENCH/send.py" 127.0.0.1 "$PROXY_PORT" /bench/mcp >/dev/null
  callgrind_control --dump=same-token "$CG_PID" >/dev/null 2>&1
  callgrind_control --zero "$CG_PID" >/dev/null 2>&1
  printf '%s\n' "$FRESH" | python3 "$BENCH/send.py" 127.0.0.1 "$PROXY_PORT" /bench/mcp >/dev/null
  callgrind_control --dump=fresh-tokens "$CG_PID" >/dev/null 2>&1
  sleep 1
  stop "$CG_PID"
  VERIFY_RE='verify_signature|ge_double_scalarmult_vartime'
  for f in "$OUT"/results/callgrind.out.*; do
    label=$(grep -m1 '^desc: Trigger' "$f" | sed 's/.*--dump=//; s/.*Client Request: //' || true)
    case $label in
      *same-token*) python3 "$BENCH/callgrind-summary.py" "$f" "$VERIFY_RE" >"$OUT/results/cache-same.txt" ;;
      *fresh-tokens*) python3 "$BENCH/callgrind-summary.py" "$f" "$VERIFY_RE" >"$OUT/results/cache-fresh.txt" ;;
    esac
  done
  start_proxy
fi

# ---------------------------------------------------------------- instructions per request
# Not in the default PHASES: callgrind counts the proxy's user-space instructions for
# PROFILE_REQUESTS tools/call requests on one keep-alive connection (stable on a noisy
# machine: what to compare before and after a change) and the top functions, inclusive.
if has_phase profile; then
  n=${PROFILE_REQUESTS:-2000}
  log "profile: $n tools/call requests on one connection, proxy under callgrind"
  stop "$PROXY_PID"
  start_proxy "valgrind --tool=callgrind --callgrind-out-file=$OUT/results/profile.out --dump-instr=${PROFILE_DUMP_INSTR:-no}"
  CG_PID=$PROXY_PID
  printf '%s\n' "$TOKEN_CALL" | python3 "$BENCH/send.py" 127.0.0.1 "$PROXY_PORT" /bench/mcp >/dev/null
  callgrind_control --zero "$CG_PID" >/dev/null 2>&1
  for _ in $(seq "$n"); do printf '%s\n' "$TOKEN_CALL"; done | python3 "$BENCH/send.py" 127.0.0.1 "$PROXY_PORT" /bench/mcp >/dev/null
  callgrind_control --dump=profile "$CG_PID" >/dev/null 2>&1
  scrape_metrics profile
  sleep 1
  stop "$CG_PID"
  f=$(ls "$OUT"/results/profile.out.* | head -1)
  total=$(python3 "$BENCH/callgrind-summary.py" "$f" '^$' | sed -n 's/^total_Ir=//p')
  # `head` closes the pipe early: not a failure.
  callgrind_annotate --inclusive=yes --threshold=99 "$f" 2>/dev/null | head -80 >"$OUT/results/profile.txt" || true
  log "profile: $((total / n)) instructions per request (top functions: $OUT/results/profile.txt)"
  start_proxy
fi

# ---------------------------------------------------------------- idle SSE streams
if has_phase sse; then
  SSE_BENCH=$BENCH/sse-bench/target/release/sse-bench
  sse_bench() { # the measuring process: upstream and client ends in one, on the load CPU
    timeout 300 taskset -c "$LOAD_CPU" "$SSE_BENCH" --port "$SSE_PORT" "$@"
  }
  wait_quiet
  log "SSE baseline: 100 streams straight to the measuring upstream (no proxy)"
  sse_bench --url "http://127.0.0.1:$SSE_PORT/sse" --streams 100 --samples 1000 >"$OUT/results/sse-direct.json"
  for proto in $SSE_PROTOS; do
    n=$SSE_STREAMS
    if [[ $proto == h1 ]] && ((2 * n + 100 > NOFILE)); then
      n=$(((NOFILE - 100) / 2))
      log "HTTP/1.1 streams take 2 descriptors each in the proxy and in the measuring process: ulimit -n is $NOFILE, so $n streams"
    fi
    # A fresh proxy: its resident memory before the streams is the baseline.
    stop "$PROXY_PID"
    start_proxy
    sleep 1
    wait_quiet
    log "SSE $proto: $n idle streams through the proxy (pid $PROXY_PID)"
    sse_bench --url "http://127.0.0.1:$PROXY_PORT/bench/sse" --token "$TOKEN_SSE" --streams "$n" --proto "$proto" \
      --pid "$PROXY_PID" --samples 2000 >"$OUT/results/sse-$proto.json" ||
      log "SSE $proto run failed (see $OUT/results/sse-$proto.json)"
  done
fi

# ---------------------------------------------------------------- report
python3 "$BENCH/report.py" "$OUT" "$LIST_BYTES" "$FILTERED_BYTES" "$NOISY" | tee "$OUT/summary.txt"

#!/usr/bin/env bash
# Checks systemd/mcp-oauth-proxy.service without installing anything:
#   1. `systemd-analyze verify` on a temporary copy whose ExecStart (and every
#      other mention of /usr/local/bin/mcp-oauth-proxy) points at a stub
#      executable, since verify refuses a unit whose command does not exist.
#      Any message about the unit (unknown key, bad value, missing command,
#      missing dependency) fails the check; verify itself exits 0 on unknown
#      keys, so its output is read, not just its exit code.
#   2. The directives the project promises (Type=notify, the hardening) are set.
#   3. `systemd-analyze security --offline` stays at or below an exposure of
#      MAX_EXPOSURE (tenths: 25 = 2.5, "OK"), so a weakened unit fails.
# Usage: bash systemd/verify.sh [UNIT_FILE]     exits non-zero on any problem.
set -euo pipefail

unit_src=${1:-"$(dirname "${BASH_SOURCE[0]}")/mcp-oauth-proxy.service"}
unit_name=mcp-oauth-proxy.service
max_exposure=${MAX_EXPOSURE:-25}

if ! command -v systemd-analyze >/dev/null; then
  echo "verify.sh: systemd-analyze not found (apt-get install systemd)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
cp /bin/true "$tmp/bin/mcp-oauth-proxy"
sed "s#/usr/local/bin/mcp-oauth-proxy#$tmp/bin/mcp-oauth-proxy#g" "$unit_src" >"$tmp/$unit_name"

fail=0

# 1. systemd-analyze verify
status=0
out=$(systemd-analyze verify "$tmp/$unit_name" 2>&1) || status=$?
if [[ -n $out ]]; then
  printf '%s\n' "$out" | sed "s#$tmp/#systemd/#g"
fi
if ((status != 0)); then
  echo "verify.sh: systemd-analyze verify exited $status" >&2
  fail=1
elif grep -q "$unit_name" <<<"$out"; then
  echo "verify.sh: systemd-analyze verify reported problems in $unit_name" >&2
  fail=1
fi

# 2. promised directives
required=(
  "Type=notify"
  "ExecStart=/usr/local/bin/mcp-oauth-proxy serve --config /etc/mcp-oauth-proxy/config.yaml"
  "ExecReload=/bin/kill -HUP \$MAINPID"
  "DynamicUser=yes"
  "StateDirectory=mcp-oauth-proxy"
  "ConfigurationDirectory=mcp-oauth-proxy"
  "ProtectSystem=strict"
  "ProtectHome=yes"
  "PrivateTmp=yes"
  "PrivateDevices=yes"
  "NoNewPrivileges=yes"
  "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"
  "AmbientCapabilities=CAP_NET_BIND_SERVICE"
  "EnvironmentFile=-/etc/mcp-oauth-proxy/env"
  "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"
  "SystemCallFilter=@system-service"
  "MemoryDenyWriteExecute=yes"
  "LockPersonality=yes"
  "RestrictNamespaces=yes"
  "ProtectKernelTunables=yes"
  "ProtectKernelModules=yes"
  "ProtectKernelLogs=yes"
  "ProtectControlGroups=yes"
  "RestrictRealtime=yes"
  "RestrictSUIDSGID=yes"
  "UMask=0077"
  "Restart=on-failure"
  "KillSignal=SIGTERM"
)
for line in "${required[@]}"; do
  if ! grep -qxF "$line" "$unit_src"; then
    echo "verify.sh: missing directive: $line" >&2
    fail=1
  fi
done
stop_timeout=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$unit_src")
if [[ -z $stop_timeout ]] || ((stop_timeout <= 30)); then
  echo "verify.sh: TimeoutStopSec must be a plain number of seconds above the 30s drain" >&2
  fail=1
fi

# 3. exposure score
status=0
summary=$(systemd-analyze security --offline=yes --threshold="$max_exposure" --no-pager "$tmp/$unit_name" 2>&1 | tail -n 1) || status=$?
echo "$summary"
if ((status != 0)); then
  echo "verify.sh: exposure above $max_exposure/10 (systemd-analyze security exited $status)" >&2
  fail=1
fi

if ((fail)); then
  echo "verify.sh: FAILED" >&2
  exit 1
fi
echo "verify.sh: $unit_name OK"

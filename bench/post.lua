-- wrk script: POSTs one JSON-RPC message, optionally with a bearer token, and prints
-- a machine-readable result line at the end.
--   BODY   the request body (default: a tools/call of read_0001)
--   TOKEN  bearer token; unset or empty: no Authorization header
wrk.method = "POST"
wrk.body = os.getenv("BODY")
  or '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_0001","arguments":{"path":"a.md"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
local token = os.getenv("TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration, summary.bytes,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status))
end

#!/usr/bin/env python3
"""Sends tools/call POSTs over one keep-alive connection, one per token line read from
stdin (the same token N times, or N distinct tokens). Exits non-zero unless every answer
is 200. Used by run.sh's token-cache phase (the proxy runs under callgrind there)."""
import http.client
import sys

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_0001","arguments":{"path":"a.md"}}}'
conn = http.client.HTTPConnection(host, port, timeout=120)
n = 0
for token in sys.stdin:
    conn.request("POST", path, body=body, headers={
        "Authorization": "Bearer " + token.strip(),
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    })
    res = conn.getresponse()
    res.read()
    if res.status != 200:
        sys.exit(f"send.py: HTTP {res.status} on request {n + 1}")
    n += 1
print(n)

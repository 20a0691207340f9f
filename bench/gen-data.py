#!/usr/bin/env python3
"""Writes the upstream's canned MCP answers into DIR:

call.json   a JSON-RPC tools/call result (what POST /mcp answers)
tools.json  a tools/list result with 2,000 tools, ~1 MB (what POST /mcp-list answers):
            read_0000..read_0999 and write_0000..write_0999, interleaved, so a token with
            the scope that unlocks read_* sees exactly half of them.
"""
import json
import sys

out = sys.argv[1]
call = {"jsonrpc": "2.0", "id": 1, "result": {
    "content": [{"type": "text", "text": "note 1: the quick brown fox jumps over the lazy dog"}],
    "isError": False}}
with open(f"{out}/call.json", "w") as f:
    f.write(json.dumps(call, separators=(",", ":")))

tools = []
for i in range(1000):
    for kind in ("read", "write"):
        name = f"{kind}_{i:04d}"
        tools.append({
            "name": name,
            "title": f"{kind.capitalize()} note {i}",
            "description": f"{kind.capitalize()}s note number {i} of the benchmark notebook. " + (
                "Tells the model what it returns."),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "Path of the note, relative to the notebook root"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Most lines returned"},
                    "format": {"type": "string", "enum": ["text", "markdown", "json"]},
                },
                "required": ["path"],
            },
            "annotations": {"readOnlyHint": kind == "read", "idempotentHint": True},
        })
listing = {"jsonrpc": "2.0", "id": 2, "result": {"tools": tools}}
text = json.dumps(listing, separators=(",", ":"))
with open(f"{out}/tools.json", "w") as f:
    f.write(text)
print(len(text))

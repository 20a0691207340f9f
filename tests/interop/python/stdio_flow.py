"""The official Python MCP SDK client (`mcp` from PyPI) through a stdio route of mcp-oauth-proxy.

The route starts `@modelcontextprotocol/server-everything` in stdio mode; this
program talks Streamable HTTP to the proxy with an access token it is given
(tests/interop/stdio.test.mjs gets it through the proxy's OAuth flow):

  1. connects with the SDK's default `mode="auto"`: a 2026-07-28 `server/discover`
     probe, which the proxy answers for the stdio server (it bridges 2026-07-28
     clients to a server that speaks only `initialize`), so the SDK stays modern;
  2. lists and calls tools, lists and gets a prompt, lists and reads a resource;
  3. calls a tool that sends progress notifications;
  4. calls a tool that asks the client for sampling, answered by `sampling_callback`.

Prints one JSON object on stdout with what happened; everything else goes to
stderr. Exits 0 when every step completed, 1 otherwise (`ok: false`, `error`).

  STDIO_FLOW_TOKEN=TOKEN .venv/bin/python tests/interop/python/stdio_flow.py --url URL [--mode legacy]

With `--mode legacy` the SDK skips the probe and opens with `initialize`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import httpx2
import mcp_types as types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from report import report


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") or "" for c in (result.content or []))


async def run(args: argparse.Namespace, out: dict[str, Any]) -> None:
    sampled: list[str] = []
    progress: list[float] = []
    http_log: list[dict[str, Any]] = []

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        sampled.append(json.dumps(params.model_dump(mode="json"))[:200])
        return types.CreateMessageResult(
            role="assistant",
            model="interop",
            content=types.TextContent(type="text", text="sampled by the Python SDK"),
        )

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def on_request(request: httpx2.Request) -> None:
        entry: dict[str, Any] = {"method": request.method}
        if request.method == "POST" and request.content:
            try:
                entry["jsonrpc_method"] = json.loads(request.content).get("method")
            except (ValueError, AttributeError):
                pass
        request.extensions["stdio_flow_entry"] = entry
        http_log.append(entry)

    async def on_response(response: httpx2.Response) -> None:
        entry = response.request.extensions.get("stdio_flow_entry")
        if entry is not None:
            entry["status"] = response.status_code

    out["http"] = http_log
    started = time.monotonic()
    timings: dict[str, float] = {}
    out["timings"] = timings

    def step(name: str) -> None:
        out["step"] = name
        timings[name] = round(time.monotonic() - started, 3)

    http = httpx2.AsyncClient(
        headers={"authorization": f"Bearer {args.token}"},
        timeout=httpx2.Timeout(30, read=120),
        event_hooks={"request": [on_request], "response": [on_response]},
    )
    async with http:
        transport = streamable_http_client(args.url, http_client=http)
        async with Client(transport, sampling_callback=sampling, mode=args.mode) as client:
            out["protocol_version"] = client.protocol_version
            out["server_name"] = client.server_info.name if client.server_info else None
            step("connected")

            out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
            out["echo"] = _text(await client.call_tool("echo", {"message": "hello from Python"}))
            step("tools")

            out["prompts"] = sorted(p.name for p in (await client.list_prompts()).prompts)
            prompt = await client.get_prompt("simple-prompt")
            out["prompt_messages"] = len(prompt.messages)
            step("prompts")

            resources = (await client.list_resources()).resources
            out["resources"] = len(resources)
            read = await client.read_resource(str(resources[0].uri))
            out["resource_read"] = {"asked": str(resources[0].uri), "got": str(read.contents[0].uri)}
            step("resources")

            result = await client.call_tool(
                "trigger-long-running-operation", {"duration": 1, "steps": 3}, progress_callback=on_progress
            )
            out["long_running"] = _text(result)
            out["progress"] = progress
            step("progress")

            result = await client.call_tool("trigger-sampling-request", {"prompt": "hello", "maxTokens": 5})
            out["sampling_result"] = _text(result)
            out["sampling_requests"] = len(sampled)
            step("sampling")
    step("closed")
    out["ok"] = True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", default=os.environ.get("STDIO_FLOW_TOKEN"), help="default: $STDIO_FLOW_TOKEN")
    parser.add_argument("--timeout", type=float, default=100)
    parser.add_argument("--mode", default="auto", help='the SDK\'s connect mode: "auto" or "legacy" (initialize)')
    args = parser.parse_args()
    if not args.token:
        parser.error("--token or STDIO_FLOW_TOKEN is required")
    out: dict[str, Any] = {"ok": False, "step": "start"}
    return report(run(args, out), out, args.timeout)


if __name__ == "__main__":
    sys.exit(main())

"""The official Python MCP SDK client (`mcp` 2.3), pinned to the 2026-07-28 revision, through a stdio route of mcp-oauth-proxy.

The client is `Client(..., mode="2026-07-28")`: no `initialize`, no session;
every request is a POST of its own with `MCP-Protocol-Version`, `Mcp-Method`,
`Mcp-Name` and the `_meta` envelope. It talks Streamable HTTP to the proxy
with an access token it is given (tests/interop/stdio-modern.test.mjs gets it
through the proxy's OAuth flow) and asks `server/discover` first (the SDK does
not when pinned; the answer is adopted, so `server_info` comes from it).

`--server everything`: the route starts `@modelcontextprotocol/server-everything`
in stdio mode, a 2025 server the proxy bridges:
  tools (list, `echo`), progress (`trigger-long-running-operation`), a prompt,
  a resource read, and sampling (`trigger-sampling-request`): the child's
  `sampling/createMessage` reaches this client as an `input_required` result,
  `sampling_callback` answers, the SDK retries, and the tool's result carries
  the answer.

`--server modern`: the route starts python/modern_stdio_server.py, a 2026-07-28
server the proxy passes requests to unchanged:
  `whoami` twice (one process), `ask_name` (an elicitation through the child's
  own MRTR, answered by `elicitation_callback`), `count` (progress), the prompt
  `greeting`, the resource `interop://pid`, and `seen` (what the child got).

Prints one JSON object on stdout with what happened (and `http`: every HTTP
request with the headers that matter, and its status); everything else goes
to stderr. Exits 0 when every step completed, 1 otherwise (`ok: false`, `error`).

  .venv/bin/python tests/interop/python/stdio_modern.py --server everything --url URL --token TOKEN
  (or the token in STDIO_MODERN_TOKEN instead of --token)
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

MODERN = "2026-07-28"
SAMPLED_TEXT = "sampled by the Python SDK over 2026-07-28"
ELICITED_NAME = "Ada from the Python SDK"


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") or "" for c in (result.content or []))


class Run:
    """Shared plumbing: the HTTP log, the steps, the callbacks' records."""

    def __init__(self, args: argparse.Namespace, out: dict[str, Any]) -> None:
        self.args = args
        self.out = out
        self.http: list[dict[str, Any]] = []
        self.sampled: list[dict[str, Any]] = []
        self.elicited: list[dict[str, Any]] = []
        self.started = time.monotonic()
        out["http"] = self.http
        out["timings"] = {}

    def step(self, name: str) -> None:
        self.out["step"] = name
        self.out["timings"][name] = round(time.monotonic() - self.started, 3)

    async def on_request(self, request: httpx2.Request) -> None:
        entry: dict[str, Any] = {
            "method": request.method,
            "mcp_protocol_version": request.headers.get("mcp-protocol-version"),
            "mcp_method": request.headers.get("mcp-method"),
            "mcp_name": request.headers.get("mcp-name"),
            "session_id": request.headers.get("mcp-session-id"),
        }
        if request.method == "POST" and request.content:
            try:
                body = json.loads(request.content)
                entry["jsonrpc_method"] = body.get("method")
                params = body.get("params") or {}
                entry["meta_version"] = (params.get("_meta") or {}).get("io.modelcontextprotocol/protocolVersion")
                entry["retry"] = "requestState" in params or "inputResponses" in params
            except (ValueError, AttributeError):
                pass
        request.extensions["stdio_modern_entry"] = entry
        self.http.append(entry)

    async def on_response(self, response: httpx2.Response) -> None:
        entry = response.request.extensions.get("stdio_modern_entry")
        if entry is not None:
            entry["status"] = response.status_code
            entry["content_type"] = response.headers.get("content-type", "").split(";")[0]
            entry["response_session_id"] = response.headers.get("mcp-session-id")

    async def sampling(self, context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.sampled.append(params.model_dump(mode="json", by_alias=True, exclude_none=True))
        return types.CreateMessageResult(
            role="assistant",
            model="interop",
            content=types.TextContent(type="text", text=SAMPLED_TEXT),
        )

    async def elicitation(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicited.append(params.model_dump(mode="json", by_alias=True, exclude_none=True))
        return types.ElicitResult(action="accept", content={"name": ELICITED_NAME})

    def client(self, transport: Any) -> Client:
        return Client(
            transport,
            mode=MODERN,
            sampling_callback=self.sampling,
            elicitation_callback=self.elicitation,
            client_info=types.Implementation(name="stdio-modern-interop", version="0.0.0"),
            cache=None,  # every call reaches the proxy
        )

    async def discover(self, client: Client) -> None:
        """`server/discover` on the wire, its result adopted (so `server_info` is what it said)."""
        raw = await client.session.send_discover(MODERN)
        self.out["discover"] = raw
        client.session.adopt(types.DiscoverResult.model_validate(raw))
        self.out["protocol_version"] = client.protocol_version
        self.out["server_name"] = client.server_info.name if client.server_info else None
        self.step("discovered")


async def everything(run: Run, client: Client) -> None:
    out = run.out
    await run.discover(client)

    out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
    out["echo"] = _text(await client.call_tool("echo", {"message": "hello over 2026-07-28"}))
    run.step("tools")

    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    result = await client.call_tool(
        "trigger-long-running-operation", {"duration": 1, "steps": 3}, progress_callback=on_progress
    )
    out["long_running"] = _text(result)
    out["progress"] = progress
    run.step("progress")

    out["prompts"] = sorted(p.name for p in (await client.list_prompts()).prompts)
    prompt = await client.get_prompt("simple-prompt")
    out["prompt_messages"] = len(prompt.messages)
    run.step("prompts")

    resources = (await client.list_resources()).resources
    out["resources"] = len(resources)
    read = await client.read_resource(str(resources[0].uri))
    out["resource_read"] = {"asked": str(resources[0].uri), "got": str(read.contents[0].uri)}
    run.step("resources")

    result = await client.call_tool("trigger-sampling-request", {"prompt": "hello", "maxTokens": 5})
    out["sampling_result"] = _text(result)
    out["sampling_is_error"] = bool(result.is_error)
    out["sampling_requests"] = run.sampled
    run.step("sampling")


async def modern(run: Run, client: Client) -> None:
    out = run.out
    await run.discover(client)

    out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
    who = [(await client.call_tool("whoami", {})).structured_content for _ in range(2)]
    out["whoami"] = who
    run.step("whoami")

    result = await client.call_tool("ask_name", {"greeting": "Hello"})
    out["ask_name"] = _text(result)
    out["elicitations"] = run.elicited
    run.step("elicitation")

    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    out["count"] = _text(await client.call_tool("count", {"steps": 3}, progress_callback=on_progress))
    out["progress"] = progress
    run.step("progress")

    prompt = await client.get_prompt("greeting", {"name": "Grace"})
    out["prompt"] = [getattr(m.content, "text", None) for m in prompt.messages]
    read = await client.read_resource("interop://pid")
    out["resource"] = json.loads(getattr(read.contents[0], "text", "null"))
    run.step("prompt and resource")

    out["seen"] = (await client.call_tool("seen", {})).structured_content
    run.step("seen")


async def main_async(args: argparse.Namespace, out: dict[str, Any]) -> None:
    run = Run(args, out)
    http = httpx2.AsyncClient(
        headers={"authorization": f"Bearer {args.token}"},
        timeout=httpx2.Timeout(30, read=120),
        event_hooks={"request": [run.on_request], "response": [run.on_response]},
    )
    async with http:
        transport = streamable_http_client(args.url, http_client=http)
        async with run.client(transport) as client:
            run.step("connected")
            await (everything if args.server == "everything" else modern)(run, client)
    run.step("closed")
    out["ok"] = True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=["everything", "modern"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", default=os.environ.get("STDIO_MODERN_TOKEN"))
    parser.add_argument("--timeout", type=float, default=100)
    args = parser.parse_args()
    if not args.token:
        parser.error("--token or STDIO_MODERN_TOKEN is required")
    out: dict[str, Any] = {"ok": False, "step": "start", "server": args.server}
    return report(main_async(args, out), out, args.timeout)


if __name__ == "__main__":
    sys.exit(main())

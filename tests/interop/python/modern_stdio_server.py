"""A tiny MCP server over stdio, written with the official Python SDK (`mcp` 2.3).

The SDK's stdio server is dual-era: the first request decides. A request with
the 2026-07-28 `_meta` envelope (the proxy's `server/discover` probe) makes it
a modern server for the life of the process: every request carries its own
envelope, `initialize` is refused, and the server asks the client for input
only through `input_required` results (MRTR), with a `requestState` the SDK
seals (AES-GCM, a key of this process: "v1." then base64url).

tests/interop/stdio-modern.test.mjs puts it behind a stdio route of
mcp-oauth-proxy to check that modern requests reach a modern child unchanged:

- `whoami`: this process's PID (and the protocol version of the request), to
  tell which process a user's requests reach;
- `ask_name`: an elicitation through MRTR, written by hand (the tool returns
  an `InputRequiredResult`; on the retry it reads `ctx.input_responses` and the
  state it put in `requestState`, which the SDK unsealed); -32021
  (MissingRequiredClientCapability) when the request did not declare elicitation;
- `count`: progress notifications (`ctx.report_progress`) before its result;
- `seen`: the methods and protocol versions of every request this process got
  (the proxy's probe first; no `initialize`);
- a prompt `greeting` and a resource `interop://pid`.

Runs until stdin closes: `python modern_stdio_server.py`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import CallNext, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError

SERVER_NAME = "interop-modern-stdio"

#: (method, protocol version of the request) of every request, oldest first.
SEEN: list[dict[str, Any]] = []


async def record(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> Any:
    if ctx.request_id is not None:
        SEEN.append({"method": ctx.method, "protocol_version": ctx.protocol_version})
    return await call_next(ctx)


mcp = MCPServer(name=SERVER_NAME, version="1.0.0", middleware=[record])


@mcp.tool()
def whoami(ctx: Context) -> dict[str, Any]:
    """The PID of the process that answers, and the protocol version of the request."""
    return {"pid": os.getpid(), "protocol_version": ctx.protocol_version}


@mcp.tool()
def seen() -> dict[str, Any]:
    """Every request this process got: method and protocol version, oldest first."""
    return {"requests": SEEN}


@mcp.tool()
async def ask_name(greeting: str, ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
    """Asks the client for a name (elicitation through MRTR), then greets it."""
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.elicitation is None:
        # 2026-07-28: a server never asks for what the client did not declare.
        raise MCPError(
            code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            message="ask_name needs the elicitation capability",
            data=types.MissingRequiredClientCapabilityErrorData(
                required_capabilities=types.ClientCapabilities(elicitation=types.ElicitationCapability())
            ).model_dump(mode="json", by_alias=True, exclude_none=True),
        )
    answer = (ctx.input_responses or {}).get("name")
    if ctx.request_state is None or not isinstance(answer, types.ElicitResult):
        # First round (or a retry without the answer): ask. The state is sealed by the SDK.
        return types.InputRequiredResult(
            input_requests={
                "name": types.ElicitRequest(
                    params=types.ElicitRequestFormParams(
                        message="Who are you?",
                        requested_schema={
                            "type": "object",
                            "properties": {"name": {"type": "string"}},
                            "required": ["name"],
                        },
                    )
                )
            },
            request_state=f"asked-by-pid-{os.getpid()}",
        )
    name = (answer.content or {}).get("name")
    text = f"{greeting}, {name}! (action {answer.action}, state {ctx.request_state})"
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


@mcp.tool()
async def count(steps: int, ctx: Context) -> str:
    """Reports progress 1..steps, a tenth of a second apart, then says it is done."""
    for i in range(1, steps + 1):
        await anyio.sleep(0.1)
        await ctx.report_progress(i, steps, f"step {i}")
    return f"counted to {steps}"


@mcp.prompt()
def greeting(name: str) -> str:
    """A greeting for `name`."""
    return f"Please greet {name} warmly."


@mcp.resource("interop://pid", mime_type="application/json")
def pid_resource() -> str:
    """This process's PID."""
    return f'{{"pid": {os.getpid()}}}'


if __name__ == "__main__":
    print(f"{SERVER_NAME}: pid {os.getpid()} serving on stdio", file=sys.stderr)
    mcp.run("stdio")

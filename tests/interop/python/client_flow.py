"""The official Python MCP SDK client (`mcp` from PyPI) through mcp-oauth-proxy.

Runs what a Python MCP host does against an OAuth-protected MCP server, with
nothing but the SDK's own machinery for OAuth:

  1. connects with `OAuthClientProvider` as the httpx2 auth of a Streamable
     HTTP transport; the first request gets a 401, and the SDK discovers the
     protected-resource and authorization-server metadata, registers a client
     (DCR) and builds the authorization URL;
  2. its `redirect_handler` hands that URL to `tests/interop/lib/browse.mjs`,
     which signs in and consents in headless chromium; chromium follows the
     redirect to this program's own loopback callback server (127.0.0.1, a
     random port, as a CLI client does), and `callback_handler` returns the
     code, state and iss from there; the SDK checks state and iss and
     exchanges the code;
  3. lists the tools and calls `echo`;
  4. waits until the access token has expired (and checks that the proxy
     refuses it), then calls `echo` again: the SDK refreshes the token first.

Prints one JSON object on stdout with what happened (including the tokens,
so that the caller can check the proxy's log for leaks); everything else goes
to stderr. Exits 0 when the flow completed, 1 otherwise (the JSON then has
`ok: false` and `error`).

  .venv/bin/python tests/interop/python/client_flow.py \
      --mcp-url http://127.0.0.1:PORT/notes/mcp --username alice --password PW
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import traceback
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp.client import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

HERE = Path(__file__).resolve().parent
BROWSE_MJS = HERE.parent / "lib" / "browse.mjs"

log = logging.getLogger("client_flow")


def _query(url: str) -> dict[str, str]:
    """The query parameters of `url`, each with its first value."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


class RecordingStorage(TokenStorage):
    """In-memory `TokenStorage` that records every write the SDK makes."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.saved_tokens: list[dict[str, Any]] = []
        self.saved_client_infos: list[dict[str, Any]] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        record = tokens.model_dump(mode="json", exclude_none=True)
        record["saved_at"] = time.time()
        self.saved_tokens.append(record)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info
        self.saved_client_infos.append(client_info.model_dump(mode="json", exclude_none=True))


class CallbackServer:
    """The client's loopback redirect URI: records `GET /callback?…` and answers with a small page."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if urlsplit(target).path == "/callback":
                self.calls.append({"method": method, "target": target, "query": _query(target)})
                body = b"<!doctype html><title>Callback received</title><p id=done>You can close this window.</p>"
                status = b"200 OK"
                self._arrived.set()
            else:
                body, status = b"not found", b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-type: text/html; charset=utf-8\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    async def next_call(self, index: int, timeout: float) -> dict[str, Any]:
        """The `index`-th callback (0-based), waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        while len(self.calls) <= index:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no request reached the loopback callback {self.redirect_uri} within {timeout} s")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=left)
            except asyncio.TimeoutError:
                pass
        return self.calls[index]


class BrowserUserAgent:
    """`redirect_handler` and `callback_handler` for `OAuthClientProvider`."""

    def __init__(self, callback: CallbackServer, username: str, password: str, node: str) -> None:
        self.callback = callback
        self.username = username
        self.password = password
        self.node = node
        self.authorizations: list[dict[str, Any]] = []

    async def redirect_handler(self, authorization_url: str) -> None:
        record: dict[str, Any] = {
            "url": authorization_url,
            "params": _query(authorization_url),
            "callback_index": len(self.callback.calls),
        }
        self.authorizations.append(record)
        log.info("opening the authorization URL in chromium (browse.mjs)")
        proc = await asyncio.create_subprocess_exec(
            self.node,
            str(BROWSE_MJS),
            authorization_url,
            self.username,
            self.password,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,  # browse.mjs reports problems on our stderr
        )
        try:
            stdout, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeError("browse.mjs did not finish within 90 s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"browse.mjs exited {proc.returncode} (its stderr above says why)")
        record["browser_final_url"] = stdout.decode().strip()

    async def callback_handler(self) -> AuthorizationCodeResult:
        record = self.authorizations[-1]
        call = await self.callback.next_call(record["callback_index"], timeout=30)
        record["callback"] = call
        q = call["query"]
        if "error" in q:
            raise RuntimeError(f"the authorization server answered with an error: {q}")
        return AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))


class HttpLog:
    """Every HTTP exchange the SDK's httpx2 client makes, without secrets in the record."""

    def __init__(self) -> None:
        self.exchanges: list[dict[str, Any]] = []

    async def on_request(self, request: httpx2.Request) -> None:
        entry: dict[str, Any] = {"method": request.method, "url": str(request.url.copy_with(query=None))}
        if request.headers.get("authorization"):
            entry["authorization"] = request.headers["authorization"].split(" ", 1)[0]
        for name in ("mcp-protocol-version", "mcp-method", "mcp-name"):
            if request.headers.get(name):
                entry[name.replace("-", "_")] = request.headers[name]
        if request.method == "POST" and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            form = _query("?" + request.content.decode())
            # Names of every field, values only of the non-secret ones.
            entry["form_fields"] = sorted(form)
            entry["form"] = {k: v for k, v in form.items() if k in ("grant_type", "resource", "scope", "client_id")}
        elif request.method == "POST" and request.content:
            try:
                body = json.loads(request.content)
                if isinstance(body, dict) and "method" in body:
                    entry["jsonrpc_method"] = body["method"]
            except ValueError:
                pass
        request.extensions["client_flow_entry"] = entry
        self.exchanges.append(entry)

    async def on_response(self, response: httpx2.Response) -> None:
        entry = response.request.extensions.get("client_flow_entry")
        if entry is not None:
            entry["status"] = response.status_code
            if response.headers.get("www-authenticate"):
                entry["www_authenticate"] = response.headers["www-authenticate"]

    def token_requests(self) -> list[dict[str, Any]]:
        return [e for e in self.exchanges if e.get("form", {}).get("grant_type")]


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") or "" for c in (result.content or []))


def _result_record(result: Any) -> dict[str, Any]:
    return {"is_error": bool(result.is_error), "text": _text(result)}


async def _probe_token(mcp_url: str, access_token: str) -> dict[str, Any]:
    """POSTs an `initialize` with `access_token`, outside the SDK: what the proxy thinks of that token."""
    body = {
        "jsonrpc": "2.0",
        "id": "expiry-probe",
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "client_flow-probe", "version": "0"},
        },
    }
    async with httpx2.AsyncClient(timeout=30) as raw:
        res = await raw.post(
            mcp_url,
            json=body,
            headers={
                "authorization": f"Bearer {access_token}",
                "accept": "application/json, text/event-stream",
            },
        )
        await res.aread()
        return {"status": res.status_code, "www_authenticate": res.headers.get("www-authenticate")}


async def run(args: argparse.Namespace, out: dict[str, Any]) -> None:
    callback = CallbackServer()
    await callback.start()
    agent = BrowserUserAgent(callback, args.username, args.password, args.node)
    storage = RecordingStorage()
    http_log = HttpLog()
    out["redirect_uri"] = callback.redirect_uri
    out["authorizations"] = agent.authorizations
    out["registrations"] = storage.saved_client_infos
    out["saved_tokens"] = storage.saved_tokens
    out["http"] = http_log.exchanges

    provider = OAuthClientProvider(
        server_url=args.mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="mcp-oauth-proxy interop (Python SDK)",
            redirect_uris=[callback.redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=agent.redirect_handler,
        callback_handler=agent.callback_handler,
    )

    http_client = httpx2.AsyncClient(
        auth=provider,
        timeout=httpx2.Timeout(30, read=300),
        event_hooks={"request": [http_log.on_request], "response": [http_log.on_response]},
    )
    try:
        async with http_client:
            transport = streamable_http_client(args.mcp_url, http_client=http_client)
            async with Client(transport, mode=args.mode) as client:
                out["protocol_version"] = client.protocol_version
                out["server_info"] = client.server_info.model_dump(mode="json") if client.server_info else None
                out["step"] = "connected"

                listed = await client.list_tools()
                out["tools"] = [t.name for t in listed.tools]
                out["step"] = "listed tools"

                out["call_before_refresh"] = _result_record(
                    await client.call_tool("echo", {"message": "hello from the Python SDK"})
                )
                out["step"] = "called echo"

                first = storage.tokens
                if first is None or first.expires_in is None:
                    raise RuntimeError(f"the SDK holds no token with an expiry after the first call: {first!r}")
                # Past the token's lifetime as the SDK counts it (from when it saved it),
                # plus a margin for the proxy's own clock.
                wait = storage.saved_tokens[-1]["saved_at"] + first.expires_in + 1.0 - time.time()
                log.info("waiting %.1f s for the access token to expire", wait)
                await asyncio.sleep(max(wait, 0))
                out["expired_token_probe"] = await _probe_token(args.mcp_url, first.access_token)
                out["step"] = "access token expired"

                out["call_after_refresh"] = _result_record(
                    await client.call_tool("echo", {"message": "hello again after the refresh"})
                )
                out["step"] = "called echo after the refresh"
        out["ok"] = True
    finally:
        await callback.close()


def _format_exception(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__))


def _innermost_message(e: BaseException) -> str:
    """The message of the first leaf exception (anyio wraps errors in ExceptionGroups)."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return f"{type(e).__name__}: {e}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mcp-url", required=True, help="the proxy's MCP endpoint, e.g. http://127.0.0.1:8080/notes/mcp")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--node", default=os.environ.get("NODE", "node"), help="the node binary for browse.mjs")
    parser.add_argument(
        "--mode",
        default="auto",
        help="the SDK Client's protocol negotiation: auto (default: server/discover, then initialize), legacy, …",
    )
    parser.add_argument("--timeout", type=float, default=150, help="give up after this many seconds")
    parser.add_argument("--verbose", action="store_true", help="SDK and httpx2 debug logs on stderr")
    args = parser.parse_args()

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s client_flow %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The SDK logs a traceback of its own for OAuth errors; ours (in the JSON) suffices.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
        logging.getLogger("httpcore2").setLevel(logging.WARNING)

    out: dict[str, Any] = {"ok": False, "step": "start", "python": sys.version.split()[0]}
    out["sdk_versions"] = {name: dist_version(name) for name in ("mcp", "mcp-types", "httpx2")}
    status = 1
    try:
        asyncio.run(asyncio.wait_for(run(args, out), timeout=args.timeout))
        status = 0
    except BaseException as e:  # noqa: BLE001 - everything ends up in the JSON
        if isinstance(e, asyncio.TimeoutError):
            out["error"] = f"timed out after {args.timeout} s (last step reached: {out['step']})"
        else:
            out["error"] = _innermost_message(e)
        out["traceback"] = _format_exception(e)
        print(out["traceback"], file=sys.stderr)
        if isinstance(e, KeyboardInterrupt):
            status = 130
    sys.stdout.write(json.dumps(out, indent=2, default=str) + "\n")
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())

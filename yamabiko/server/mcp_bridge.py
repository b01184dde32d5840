"""``yamabiko mcp-bridge``: an MCP server over stdio (the SDK's) for stdio-only clients,
relaying every MCP method to a running server's socket (docs/mcp.md, The stdio bridge).

Theory of operation
-------------------
The bridge holds one socket connection (:class:`~yamabiko.client.client.Client`) and
relays each MCP request as the same JSON-RPC call: tools, resources and their
templates, subscriptions, prompts, completions and ``logging/setLevel`` are the
socket's own methods, so the three faces serve one definition. A socket error becomes
the same MCP error (code and message); a tool call cut off by a lost connection is an
``isError`` result. The socket's notifications come back: progress to the request that
carried the progress token (the bridge sends one of its own and maps it back), log
messages and ``notifications/resources/updated`` to the stdio client.

Tokens: a fixed ``--token``, or a :class:`TokenSource` that rereads ``--token-file`` or
runs ``--token-command`` when a token is needed. With a source the bridge refreshes the
session (``session/refresh``) before the token expires (at 80 % of its life, or when
the server warns ``session/expiring``) and uses a fresh token for every reconnection.

Connection loss: the bridge reconnects in the background with exponential backoff (0.2 s
doubling to 30 s, with jitter), then subscribes again to what the client subscribed to
and sets the log level again. A request that arrives while it is down waits for the
reconnection up to ``reconnect_wait_s``. stdout belongs to the MCP protocol: nothing else
is written there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import random
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any, Final

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.session import ServerSession
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel
from websockets.exceptions import ConnectionClosed, InvalidStatus

from yamabiko.client.client import Client
from yamabiko.protocol import errors
from yamabiko.schema import mcp as schema
from yamabiko.schema.session import PROGRESS, SESSION_EXPIRING, SESSION_REFRESH
from yamabiko.server.mcp_methods import METHODS, as_result

log = logging.getLogger("yamabiko.mcp_bridge")

BACKOFF_FIRST_S: Final = 0.2
BACKOFF_MAX_S: Final = 30.0
REFRESH_AT: Final = 0.8
"""Refresh when this share of the token's life has passed."""
_COMMAND_TIMEOUT_S: Final = 30.0
_MAX_TOKEN_BYTES: Final = 16 << 10
_DRAIN_S: Final = 5.0
_LOST: Final = (ConnectionError, ConnectionClosed, OSError)


class TokenError(Exception):
    """The token source gave nothing usable (the message says why; never the token)."""


class TokenSource:
    """Where the bridge gets a token: fixed, a file it rereads, or a command it runs
    (its stdout, trimmed)."""

    def __init__(
        self, *, token: str | None = None, file: str | None = None, command: str | None = None
    ) -> None:
        if sum(x is not None for x in (token, file, command)) != 1:
            raise ValueError("exactly one of token, file, command")
        self._token = token
        self._file = file
        self._command = command

    @property
    def refreshable(self) -> bool:
        return self._token is None

    async def get(self) -> str:
        if self._token is not None:
            return self._token
        if self._file is not None:
            path = Path(self._file)
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                raise TokenError(f"cannot read the token file {path}: {exc.strerror}") from None
            return _token_text(data, f"the token file {path}")
        assert self._command is not None
        try:
            done = await asyncio.to_thread(
                subprocess.run,
                shlex.split(self._command),
                capture_output=True,
                timeout=_COMMAND_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TokenError(f"the token command failed: {exc}") from None
        if done.returncode != 0:
            raise TokenError(f"the token command exited {done.returncode}")
        return _token_text(done.stdout, "the token command's output")


def _token_text(data: bytes, where: str) -> str:
    text = data[:_MAX_TOKEN_BYTES].decode("utf-8", errors="replace").strip()
    if not text or len(data) > _MAX_TOKEN_BYTES:
        raise TokenError(f"{where} holds no token")
    return text


def expires_at(token: str) -> float | None:
    """The token's ``exp`` (read, not verified: the server verifies), None if absent."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp")
        return float(exp) if isinstance(exp, int | float) else None
    except (IndexError, ValueError, AttributeError):
        return None


class Bridge:
    """The socket connection behind the stdio server, reopened after a loss."""

    def __init__(
        self,
        url: str,
        tokens: TokenSource,
        *,
        timeout: float = 300.0,
        reconnect_wait_s: float = 30.0,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self.url = url
        self.tokens = tokens
        self.timeout = timeout
        self.reconnect_wait_s = reconnect_wait_s
        self.backoff_max_s = backoff_max_s
        self.stdio: ServerSession | None = None
        """The stdio client's session, for notifications (set by the first request)."""
        self.reconnections = 0
        """Reconnections done (subscriptions and log level restored)."""
        self._reconnected = asyncio.Condition()
        self._client: Client | None = None
        self._up = asyncio.Event()
        self._closed = False
        self._progress_ids = itertools.count(1)
        self._subscribed: set[str] = set()
        self._level: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconnecting: asyncio.Task[None] | None = None
        self._token_exp: float | None = None

    # Connection

    async def open(self) -> None:
        """Connect once (raises if refused or unreachable: the caller reports it)."""
        await self._connect()

    async def _connect(self) -> None:
        token = await self.tokens.get()
        client = await Client.connect(self.url, token=token)
        self._client = client
        self._token_exp = expires_at(token)
        self._spawn(self._pump(client))
        if self.tokens.refreshable:
            self._spawn(self._refresher(client))
        self._up.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(self, client: Client) -> None:
        """Forward the socket's notifications until it closes, then reconnect."""
        sub = client.subscribe(schema.RESOURCES_UPDATED, schema.LOGGING_MESSAGE)
        sub_expiring = client.subscribe(SESSION_EXPIRING)
        self._spawn(self._on_expiring(client, sub_expiring))
        async for note in client.iterate(sub):
            params = note.params if isinstance(note.params, dict) else {}
            with contextlib.suppress(Exception):  # the stdio side is gone: nothing to do
                await self._forward(note.method, params)
        if self._client is client:
            self._lost()

    async def _forward(self, method: str, params: dict[str, Any]) -> None:
        if self.stdio is not None and method == schema.RESOURCES_UPDATED:
            await self.stdio.send_resource_updated(str(params.get("uri", "")))
        elif self.stdio is not None and method == schema.LOGGING_MESSAGE:
            await self.stdio.send_notification(
                types.LoggingMessageNotification(
                    params=types.LoggingMessageNotificationParams.model_validate(params)
                )
            )

    def _lost(self) -> None:
        self._up.clear()
        self._client = None
        if not self._closed and (self._reconnecting is None or self._reconnecting.done()):
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = BACKOFF_FIRST_S
        while not self._closed:
            try:
                await self._connect()
            except (TokenError, InvalidStatus, *_LOST, TimeoutError) as exc:
                log.warning("reconnection failed: retrying", extra={"reason": type(exc).__name__})
                await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not a secret
                delay = min(delay * 2, self.backoff_max_s)
                continue
            await self._restore()
            async with self._reconnected:
                self.reconnections += 1
                self._reconnected.notify_all()
            return

    async def _restore(self) -> None:
        """Subscribe again and set the log level again on the new connection."""
        client = self._client
        if client is None:
            return
        try:
            if self._level is not None:
                await client.call(schema.LOGGING_SET_LEVEL, {"level": self._level})
            for uri in sorted(self._subscribed):
                with contextlib.suppress(errors.RemoteError):
                    await client.call(schema.RESOURCES_SUBSCRIBE, {"uri": uri})
        except _LOST:
            return  # the pump sees the loss and reconnects again

    async def _refresher(self, client: Client) -> None:
        """Refresh the session's token when 80 % of what was left of its life has
        passed; a failed refresh is tried again (bounded waits) until the token ends."""
        while self._client is client and self._token_exp is not None:
            left = self._token_exp - time.time()
            await asyncio.sleep(max(left * REFRESH_AT, 0.0))
            if self._client is not client:
                return
            if not await self._refresh(client):
                if self._token_exp is None or self._token_exp <= time.time():
                    return  # the server closes the session (4001); we reconnect
                await asyncio.sleep(min(max(left * 0.1, 1.0), 30.0))

    async def _on_expiring(self, client: Client, sub: Any) -> None:
        async for _ in client.iterate(sub):
            if self.tokens.refreshable:
                await self._refresh(client)

    async def _refresh(self, client: Client) -> bool:
        try:
            token = await self.tokens.get()
            await client.call(SESSION_REFRESH, {"token": token}, timeout=30)
        except (TokenError, errors.RemoteError, TimeoutError, *_LOST) as exc:
            log.warning("token refresh failed", extra={"reason": type(exc).__name__})
            return False
        new_exp = expires_at(token)
        if new_exp is None or (self._token_exp is not None and new_exp <= self._token_exp):
            log.warning("the token source gave no newer token")
            return False
        self._token_exp = new_exp
        return True

    async def wait_reconnections(self, count: int) -> None:
        """Return once ``count`` reconnections are done (the caller bounds the wait)."""
        async with self._reconnected:
            await self._reconnected.wait_for(lambda: self.reconnections >= count)

    async def client(self) -> Client:
        client = self._client
        if client is not None:
            return client
        if self._reconnecting is None or self._reconnecting.done():
            self._lost()
        try:
            async with asyncio.timeout(self.reconnect_wait_s):
                await self._up.wait()
        except TimeoutError:
            raise ConnectionError(
                f"not connected to the server (reconnecting, waited {self.reconnect_wait_s:g} s)"
            ) from None
        assert self._client is not None
        return self._client

    async def close(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        client, self._client = self._client, None
        for task in list(self._tasks):
            task.cancel()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    # Requests

    async def relay(
        self,
        method: str,
        params: dict[str, Any],
        *,
        stdio: ServerSession | None = None,
        wants_progress: bool = False,
    ) -> dict[str, Any]:
        """Relay one MCP request; ``stdio``: the client's session (notifications go
        there); ``wants_progress``: the request carried a progress token."""
        if stdio is not None:
            self.stdio = stdio
        try:
            if method == schema.TOOLS_CALL and wants_progress and stdio is not None:
                result = await self._call_with_progress(params, stdio)
            else:
                result = await self._call(method, params)
        except errors.RemoteError as exc:
            raise MCPError(exc.remote_code, exc.message, exc.data) from None
        except TimeoutError:
            if method == schema.TOOLS_CALL:
                return _error(f"no answer from the server within {self.timeout:g} s")
            raise MCPError(-32603, f"no answer from the server within {self.timeout:g} s") from None
        except _LOST as exc:
            if method == schema.TOOLS_CALL:
                return _error(f"the connection to the server was lost: {exc}")
            raise MCPError(-32603, f"the connection to the server was lost: {exc}") from None
        if method == schema.RESOURCES_SUBSCRIBE:
            self._subscribed.add(str(params.get("uri")))
        elif method == schema.RESOURCES_UNSUBSCRIBE:
            self._subscribed.discard(str(params.get("uri")))
        elif method == schema.LOGGING_SET_LEVEL:
            self._level = str(params.get("level"))
        return result if isinstance(result, dict) else {}

    async def _call_with_progress(self, params: dict[str, Any], stdio: ServerSession) -> Any:
        """``tools/call`` with a progress token of the bridge's own; the socket's
        progress for it is forwarded as it comes, all of it before the result (a client
        drops progress that arrives after the result)."""
        key = f"bridge-{next(self._progress_ids)}"
        params = {**params, "_meta": {**params.get("_meta", {}), "progressToken": key}}
        client = await self.client()
        sub = client.subscribe(PROGRESS)  # before the call can report anything

        async def forward() -> None:
            async for note in client.iterate(sub):
                got = note.params if isinstance(note.params, dict) else {}
                if got.get("progressToken") == key:
                    with contextlib.suppress(Exception):  # the stdio side is gone
                        await stdio.report_progress(
                            got.get("progress", 0), got.get("total"), got.get("message")
                        )

        relay = asyncio.get_running_loop().create_task(forward())
        try:
            return await client.call(schema.TOOLS_CALL, params, timeout=self.timeout)
        finally:
            # Progress sent before the result is already in the queue: this end
            # marker comes after it, so the forwarder finishes it first.
            sub.queue.put_nowait(None)
            try:
                async with asyncio.timeout(_DRAIN_S):
                    await relay
            except TimeoutError:
                relay.cancel()

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        client = await self.client()
        try:
            return await client.call(method, params, timeout=self.timeout)
        except _LOST:
            if method == schema.TOOLS_CALL:
                raise  # a tool may have run: not repeated behind the caller's back
            client = await self.client()  # one retry, on the new connection
            return await client.call(method, params, timeout=self.timeout)


def _error(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


def build_server(bridge: Bridge) -> Server[Any]:
    server: Server[Any] = Server("yamabiko-bridge")

    def handler(method: str) -> Any:
        async def handle(ctx: ServerRequestContext[Any, Any], params: Any) -> BaseModel:
            wants_progress = (ctx.meta or {}).get("progress_token") is not None
            result = await bridge.relay(
                method, dict(ctx.params or {}), stdio=ctx.session, wants_progress=wants_progress
            )
            try:
                return as_result(method, result)
            except ValueError:
                log.exception("a result did not fit the MCP types", extra={"method": method})
                raise MCPError(-32603, "the server's result could not be encoded") from None

        return handle

    for method, types_of in METHODS.items():
        server.add_request_handler(method, types_of.params, handler(method))
    return server


async def serve_stdio(url: str, tokens: TokenSource | str) -> None:
    """Connect to ``url`` (raises if refused or unreachable), then serve MCP on
    stdin/stdout until stdin closes."""
    source = TokenSource(token=tokens) if isinstance(tokens, str) else tokens
    bridge = Bridge(url, source)
    await bridge.open()
    server = build_server(bridge)
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await bridge.close()

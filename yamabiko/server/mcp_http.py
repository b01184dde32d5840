"""The MCP Streamable HTTP face: the socket's MCP tools through the SDK's low-level
``Server``, on ``settings.mcp_port`` at ``/mcp``.

Theory of operation
-------------------
:func:`build_asgi` wraps the SDK's Streamable HTTP app in :class:`BearerAuth`, which
verifies the bearer JWT with the app's :class:`~yamabiko.server.auth.TokenVerifier`
exactly as the socket's handshake does (401 with ``WWW-Authenticate`` without a valid
one, before the SDK sees the request) and puts the :class:`Identity` in the ASGI scope.
The SDK hands each MCP request its HTTP request, so every request is served as the
identity of its own token, even within one MCP session.

For each ``tools/list`` or ``tools/call`` a headless :class:`Session` is built (identity
from the token; the app's methods, session config and services; state READY) and the
same handlers as the socket's (:mod:`yamabiko.handlers.mcp_face`) run with a
:class:`Context` on it. The session's :class:`_Relay` transport drops everything but
``notifications/progress``, which it forwards to the SDK as progress for the request
(when the caller sent ``_meta.progressToken``). The session is shut down when the
request ends. Results are already MCP-shaped and are validated into the SDK's types;
tool failures are ``isError`` results.

The SDK's server speaks both the ``initialize`` handshake versions (stateful, with
``Mcp-Session-Id``) and its stateless per-request era; ``stateless=True`` also makes
the handshake era stateless (no session ids, no server-to-client stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Final

import mcp_types as types
import msgspec
import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server

from yamabiko.handlers import mcp_face
from yamabiko.schema.base import RequestMeta
from yamabiko.schema.mcp import CallToolParams, ListToolsParams
from yamabiko.schema.session import PROGRESS, ProgressParams
from yamabiko.server.app import AuditHook
from yamabiko.server.auth import TokenRejected, TokenVerifier
from yamabiko.sessions.identity import Identity
from yamabiko.sessions.session import Context, RateLimiter, Session, State

log = logging.getLogger("yamabiko.mcp_http")

PATH: Final = "/mcp"
IDENTITY_KEY: Final = "yamabiko.identity"
"""Where :class:`BearerAuth` leaves the verified identity in the ASGI scope."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Progress = Callable[[float, float | None, str | None], Awaitable[None]]


class _Note(msgspec.Struct):
    method: str
    params: ProgressParams | None = None


class _Relay:
    """The headless session's transport: progress notifications go to ``progress``
    (the SDK's report for the request), everything else nowhere."""

    __slots__ = ("_progress",)

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress

    def try_send_text(self, data: bytes) -> bool:
        return False

    async def send_text(self, data: bytes) -> None:
        if self._progress is None:
            return
        try:
            note = msgspec.json.decode(data, type=_Note)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        if note.method == PROGRESS and note.params is not None:
            params = note.params
            await self._progress(params.progress, params.total, params.message)

    async def send_binary(self, data: bytes) -> None:
        return None

    async def close(self, code: int, reason: str) -> None:
        return None


class Backend(msgspec.Struct, frozen=True):
    """What the tools need from the app (an :class:`~yamabiko.server.app.App` has it)."""

    verifier: TokenVerifier
    methods: Any
    session_config: Any
    services: Any
    rate_limiter: RateLimiter | None = None
    audit: AuditHook | None = None
    allowed_origins: frozenset[str] = frozenset()


def backend_of(app: Any) -> Backend:
    return Backend(
        app.verifier,
        app.methods,
        app.session_config,
        app.services,
        app.rate_limiter,
        app.audit,
        frozenset(app.options.allowed_origins),
    )


@contextlib.asynccontextmanager
async def _context(backend: Backend, ctx: ServerRequestContext[Any, Any]) -> AsyncIterator[Context]:
    request = ctx.request
    identity = getattr(request, "scope", {}).get(IDENTITY_KEY)
    if not isinstance(identity, Identity):  # only reachable without BearerAuth
        raise PermissionError("no verified identity for this request")
    token = (ctx.meta or {}).get("progress_token")
    progress: Progress | None = None
    if token is not None:
        progress = ctx.session.report_progress
    session = Session(
        _Relay(progress),
        backend.methods,
        identity=identity,
        config=backend.session_config,
        services=backend.services,
        subprotocol="mcp",
    )
    session.state = State.READY
    session.protocol_version = ctx.protocol_version
    meta = RequestMeta(progress_token=token) if token is not None else None
    try:
        yield Context(session, ctx.request_id, meta)
    finally:
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(1.0):
                await session.outbound.drain()
        session.shutdown()


def build_server(backend: Backend) -> Server[Any]:
    """The SDK server whose ``tools/list`` and ``tools/call`` run the socket's tools."""

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        async with _context(backend, ctx) as context:
            listed = await mcp_face.list_tools(context, ListToolsParams())
        return types.ListToolsResult.model_validate(msgspec.to_builtins(listed))

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        async with _context(backend, ctx) as context:
            limiter = backend.rate_limiter
            if limiter is not None:
                wait_ms = await limiter(context.identity, "tools/call")
                if wait_ms > 0:
                    return _error(f"rate limited: retry in {wait_ms} ms")
            result = await mcp_face.call_tool(
                context, CallToolParams(name=params.name, arguments=params.arguments or {})
            )
        try:
            return types.CallToolResult.model_validate(msgspec.to_builtins(result))
        except ValueError:
            log.exception("a tool result did not fit the MCP types", extra={"tool": params.name})
            return _error("internal error: the tool's result could not be encoded")

    config = backend.session_config
    return Server(
        config.server_name,
        version=config.server_version,
        instructions=config.instructions,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


class BearerAuth:
    """ASGI middleware, the socket handshake's checks: an ``Origin`` not in
    ``allowed_origins`` (when set) gets 403; a request without a valid bearer token
    gets 401 and ``WWW-Authenticate``, and an audit event; a valid one goes on with its
    :class:`Identity` at ``scope[IDENTITY_KEY]``."""

    def __init__(self, inner: ASGIApp, backend: Backend) -> None:
        self.inner = inner
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        headers: dict[bytes, str] = {
            k.lower(): v.decode("latin-1") for k, v in scope.get("headers", ())
        }
        allowed = self.backend.allowed_origins
        origin = headers.get(b"origin")
        if allowed and origin is not None and origin not in allowed:
            await self._refuse(scope, send, 403, "origin_not_allowed", "origin not allowed")
            return
        token = _bearer(headers.get(b"authorization"))
        if token is None:
            await self._refuse(
                scope, send, 401, "missing_token", "missing bearer token", 'Bearer realm="yamabiko"'
            )
            return
        try:
            identity = await self.backend.verifier.verify(token)
        except TokenRejected as exc:
            challenge = (
                f'Bearer realm="yamabiko", error="{exc.error}", error_description="{exc.reason}"'
            )
            await self._refuse(scope, send, 401, "invalid_token", exc.reason, challenge)
            return
        await self.inner({**scope, IDENTITY_KEY: identity}, receive, send)

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        status: int,
        kind: str,
        reason: str,
        challenge: str | None = None,
    ) -> None:
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "?"
        log.info("mcp request refused", extra={"status": status, "reason": reason, "peer": peer})
        audit = self.backend.audit
        if audit is not None:
            action = "token.refused" if kind == "invalid_token" else "connection.refused"
            try:
                await audit(
                    None,
                    None,
                    action,
                    "refused",
                    {"reason": reason, "status": status, "peer": peer},
                )
            except Exception:
                log.exception("could not record an audit event")
        body = reason.encode() + b"\n"
        response: list[tuple[bytes, bytes]] = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if challenge is not None:
            response.append((b"www-authenticate", challenge.encode()))
        await send({"type": "http.response.start", "status": status, "headers": response})
        await send({"type": "http.response.body", "body": body})


def _bearer(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def build_asgi(backend: Backend, *, host: str = "127.0.0.1", stateless: bool = False) -> ASGIApp:
    """The ASGI app: bearer auth in front of the SDK's Streamable HTTP app at ``/mcp``."""
    server = build_server(backend)
    inner = server.streamable_http_app(
        streamable_http_path=PATH, stateless_http=stateless, host=host
    )
    return BearerAuth(inner, backend)


class McpHttp:
    """The face's HTTP server (uvicorn, in this event loop): :meth:`start`, :meth:`stop`."""

    def __init__(self, backend: Backend, host: str, port: int, *, stateless: bool = False) -> None:
        self.host = host
        self._config = uvicorn.Config(
            build_asgi(backend, host=host, stateless=stateless),
            host=host,
            port=port,
            lifespan="on",
            ws="none",
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
        self._server: uvicorn.Server | None = None
        self._sockets: list[Any] = []

    async def start(self) -> None:
        config = self._config
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            self._sockets = [socket.create_server((self.host, config.port), family=family)]
        except OSError as exc:
            raise OSError(f"cannot listen on {self.host}:{config.port}: {exc.strerror}") from None
        await server.startup(sockets=self._sockets)
        if server.should_exit:  # startup failed (it logged why)
            raise OSError(f"cannot serve MCP on {self.host}:{config.port}: see the log")
        self._server = server

    @property
    def port(self) -> int:
        return int(self._sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{PATH}"

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown(sockets=self._sockets)


async def start_mcp_http(app: Any, host: str, port: int) -> McpHttp | None:
    """Start the face for ``app``; None (the reason on stderr) if its port cannot be
    had: the socket serves on without it (several nodes on one host, say)."""
    face = McpHttp(backend_of(app), host, port)
    try:
        await face.start()
    except OSError as exc:
        print(f"yamabiko: MCP HTTP face not started: {exc}", file=sys.stderr, flush=True)
        return None
    return face

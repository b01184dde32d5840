"""The WebSocket server: handshake and auth, HTTP endpoints on the same port, the read
loop of each connection, graceful shutdown.

The sockets are served by :mod:`yamabiko.server.ws_connection` (an I/O layer on
websockets' sans-I/O protocol); the app is their :class:`~yamabiko.server.ws_connection.Listener`.
The handshake is where identity is settled: a request to ``/ws`` or ``/mcp`` is put to
the node's :class:`~yamabiko.server.admission.Admission` and refused before any upgrade
(never getting a session) unless admitted; plain ``GET`` requests to the HTTP endpoints
are answered there too. The admission's ticket lives on the connection and is released
when the connection is lost, at whatever stage: a handshake that fails after admission
(no ``Upgrade``, a bad ``Sec-WebSocket-Key``) leaves nothing behind. A connection that
is upgraded gets one :class:`~yamabiko.sessions.session.Session`, which the connection
feeds and which writes to it.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from functools import cache
from http import HTTPStatus
from importlib import resources
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec
from websockets.datastructures import Headers
from websockets.http11 import Request
from websockets.http11 import Response as HttpResponse

from yamabiko.protocol import errors
from yamabiko.server.admission import (
    SUBPROTOCOL_TOKEN_PREFIX,
    Admission,
    AdmissionRequest,
    AuditHook,
    Refusal,
)
from yamabiko.server.auth import TokenRejected, TokenVerifier
from yamabiko.server.devtoken import PATH as DEV_TOKEN_PATH
from yamabiko.server.devtoken import DevTokens
from yamabiko.server.metrics import render_metrics
from yamabiko.server.ws_connection import Receiver, WsConnection, WsOptions
from yamabiko.sessions.identity import Identity
from yamabiko.sessions.methods import MethodEntry
from yamabiko.sessions.registry import SessionRegistry
from yamabiko.sessions.session import RateLimiter, Session, SessionConfig
from yamabiko.sessions.stats import Stats
from yamabiko.sessions.transport import WS_1001_GOING_AWAY, WS_4001_TOKEN_EXPIRED
from yamabiko.store.revocations import RevokedTokens

log = logging.getLogger("yamabiko.server")

WS_PATHS: Final = frozenset({"/ws", "/mcp"})
SUBPROTOCOLS: Final = ("yamabiko.v1", "mcp")
SECURITY_HEADERS: Final = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Cache-Control", "no-store"),
)

ReadyCheck = Callable[[], Awaitable[None]]
Closer = Callable[[], Awaitable[None]]
Background = Callable[[], Coroutine[Any, Any, None]]
"""A node-level job that runs from :meth:`App.start` until :meth:`App.stop` cancels it."""


GC_THRESHOLDS: Final = (50_000, 20, 100)


def tune_gc() -> None:
    """Set the process's garbage collector for serving; call once, after start-up.

    A server allocates short-lived objects for every message (futures, tasks, queue
    slots), and at Python's default young-generation threshold (700) the collector ran
    so often that in a fan-out of one stream to 1,000 subscribers it took 40-50% of the
    CPU, mostly in full collections walking the long-lived objects. Everything built at
    start-up (modules, the app, the models) is frozen out of collections, and young
    collections wait for 50,000 allocations (measured: 1.6x the fan-out rate).
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class ServerOptions:
    """What the server needs beyond the method table, grouped by concern."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        max_message_bytes: int = 1 << 20,
        ping_interval_s: float = 20.0,
        ping_timeout_s: float = 20.0,
        compression: bool = False,
        allowed_origins: Sequence[str] = (),
        max_connections_per_user: int = 16,
        shutdown_timeout_s: float = 10.0,
        max_mcp_sessions_per_user: int = 8,
        handshakes_per_second: float = 100.0,
        handshake_burst: int = 2000,
        mcp_session_idle_s: float = 300.0,
    ) -> None:
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.compression = compression
        self.allowed_origins = frozenset(allowed_origins)
        self.max_connections_per_user = max_connections_per_user
        self.shutdown_timeout_s = shutdown_timeout_s
        self.max_mcp_sessions_per_user = max_mcp_sessions_per_user
        self.handshakes_per_second = handshakes_per_second
        self.handshake_burst = handshake_burst
        self.mcp_session_idle_s = mcp_session_idle_s


class App:
    """One Yamabiko node's socket server."""

    def __init__(
        self,
        options: ServerOptions,
        *,
        verifier: TokenVerifier,
        methods: Mapping[str, MethodEntry],
        session_config: SessionConfig,
        openrpc: bytes,
        ready_checks: Sequence[ReadyCheck] = (),
        stats: Stats | None = None,
        rate_limiter: RateLimiter | None = None,
        services: Any = None,
        audit: AuditHook | None = None,
        revoked: RevokedTokens | None = None,
        closers: Sequence[Closer] = (),
        background: Sequence[Background] = (),
        dev_tokens: DevTokens | None = None,
    ) -> None:
        self.options = options
        self.dev_tokens = dev_tokens
        """Playground tokens at ``GET /dev/token``: dev mode only (see :mod:`.devtoken`)."""
        self.verifier = verifier
        self.methods = methods
        self.session_config = session_config
        self.openrpc = openrpc
        self.ready_checks = list(ready_checks)
        self.rate_limiter = rate_limiter
        self.services = services
        self.audit = audit
        self.revoked = revoked
        self.closers = list(closers)
        self.background = list(background)
        self._background: list[asyncio.Task[None]] = []
        self._revocations_seen = time.time()
        self.stats = stats or Stats()
        self.registry = SessionRegistry()
        self.admission = Admission(
            verifier,
            allowed_origins=options.allowed_origins,
            max_connections_per_user=options.max_connections_per_user,
            max_mcp_sessions_per_user=options.max_mcp_sessions_per_user,
            handshakes_per_second=options.handshakes_per_second,
            handshake_burst=options.handshake_burst,
            stats=self.stats,
            audit=audit,
        )
        self._server: asyncio.Server | None = None
        self._connections: set[WsConnection] = set()
        """Every open socket (handshaking, HTTP or upgraded): what shutdown must end."""
        self._sweeper: asyncio.Task[None] | None = None
        self._http: dict[str, Callable[[], Awaitable[HttpResponse]]] = {
            "/": self._playground,
            "/health/live": self._live,
            "/health/ready": self._ready,
            "/metrics": self._metrics,
            "/schema/openrpc.json": self._openrpc,
        }

    # Lifecycle

    async def start(self, *, reuse_port: bool = False) -> None:
        """Listen and start the node's jobs. ``reuse_port``: bind with SO_REUSEPORT, so
        that several worker processes share the port (docs/deployment.md, Workers)."""
        opts = self.options
        ws_options = WsOptions(
            subprotocols=SUBPROTOCOLS,
            max_message_bytes=opts.max_message_bytes,
            ping_interval_s=opts.ping_interval_s,
            ping_timeout_s=opts.ping_timeout_s,
            compression=opts.compression,
        )
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: WsConnection(self, ws_options),
            opts.host,
            opts.port,
            backlog=1024,
            reuse_port=reuse_port or None,
        )
        self._sweeper = loop.create_task(self._sweep_forever())
        self._background = [loop.create_task(job()) for job in self.background]

    @property
    def port(self) -> int:
        assert self._server is not None
        for sock in self._server.sockets:
            return int(sock.getsockname()[1])
        raise RuntimeError("server has no socket")

    @property
    def url(self) -> str:
        return f"ws://{self.options.host}:{self.port}/ws"

    async def stop(self) -> None:
        """Stop accepting, let running requests finish (bounded), close with 1001."""
        server = self._server
        if server is None:
            return
        server.close()  # stop accepting; open connections stay until closed below
        running = [t for s in self.registry.sessions.values() for t in s.running.values()]
        if running:
            await asyncio.wait(running, timeout=self.options.shutdown_timeout_s)
        for session in list(self.registry.sessions.values()):
            try:
                async with asyncio.timeout(1.0):
                    await session.outbound.drain()
            except TimeoutError:
                pass
        closes = [
            s.close(WS_1001_GOING_AWAY, "server shutting down")
            for s in list(self.registry.sessions.values())
        ]
        if closes:
            await asyncio.wait(
                [asyncio.ensure_future(c) for c in closes],
                timeout=self.options.shutdown_timeout_s,
            )
        # Whatever did not close in time (or never got a session: a handshake, an HTTP
        # request) is dropped.
        for connection in list(self._connections):
            connection.abort()
        await server.wait_closed()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in self._background:
            task.cancel()
        self._background = []
        self.admission.report(force=True)
        self._server = None
        for close in self.closers:
            try:
                await close()
            except Exception:
                log.exception("error while closing")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.registry.sweep()
            self.admission.report()
            if self.revoked is not None and self.registry.sessions:
                try:
                    await self._close_revoked(self.revoked)
                except Exception:
                    log.exception("revocation check failed")

    async def _close_revoked(self, revoked: RevokedTokens) -> None:
        """Close, with 4001, open sessions whose token was revoked on any node."""
        # Look back a little past the last check: another node's clock may lag, and a
        # revocation committed during the last query must not be missed.
        now = time.time()
        found = await revoked.revoked_since(self._revocations_seen - 5.0)
        self._revocations_seen = now
        if not found:
            return
        wanted = set(found)
        for session in list(self.registry.sessions.values()):
            identity = session.identity
            jti = identity.jti
            if jti is not None and (identity.tid, jti) in wanted and not session.closing:
                log.info("token revoked: closing", extra={"session": session.id})
                self.registry.close_later(session, WS_4001_TOKEN_EXPIRED, "token revoked")

    # Handshake

    async def respond(self, connection: WsConnection, request: Request) -> HttpResponse | None:
        """Answer an HTTP endpoint, refuse, or admit the upgrade (``None``): then the
        ticket is on the connection, which gives it back when it is lost."""
        parts = urlsplit(request.path)
        path = parts.path
        if path == DEV_TOKEN_PATH and self.dev_tokens is not None:
            return self._dev_token(self.dev_tokens, connection.peer, request, parts.query)
        if path not in WS_PATHS:
            handler = self._http.get(path)
            if handler is None:
                return _text(HTTPStatus.NOT_FOUND, b"not found\n")
            return await handler()
        offered = [
            p.strip()
            for value in request.headers.get_all("Sec-WebSocket-Protocol")
            for p in value.split(",")
        ]
        admitted = await self.admission.admit(
            AdmissionRequest(
                path=path,
                headers=request.headers,
                query=parts.query,
                peer=connection.peer,
                subprotocols=offered,
            ),
            hold="socket",
        )
        if isinstance(admitted, Refusal):
            return _refusal(admitted)
        connection.ticket = admitted
        # The credential is verified: drop it from the request (memory is not where a
        # token should linger), and never offer the token subprotocol back.
        if "Authorization" in request.headers:
            del request.headers["Authorization"]
        if any(p.startswith(SUBPROTOCOL_TOKEN_PREFIX) for p in offered):
            del request.headers["Sec-WebSocket-Protocol"]
            kept = [p for p in offered if p and not p.startswith(SUBPROTOCOL_TOKEN_PREFIX)]
            if kept:
                request.headers["Sec-WebSocket-Protocol"] = ", ".join(kept)
        return None

    async def _verify_for_refresh(self, token: str) -> Identity:
        try:
            return await self.verifier.verify(token)
        except TokenRejected as exc:
            raise errors.Unauthorized(f"token refused: {exc.reason}") from None

    # Connections

    def connection_made(self, connection: WsConnection) -> None:
        self._connections.add(connection)

    def opened(self, connection: WsConnection) -> Receiver:
        """An upgraded connection gets its session; the connection feeds it."""
        ticket = connection.ticket
        assert ticket is not None
        identity = ticket.identity
        session = Session(
            connection,
            self.methods,
            identity=identity,
            config=self.session_config,
            stats=self.stats,
            verify_token=self._verify_for_refresh,
            rate_limiter=self.rate_limiter,
            subprotocol=connection.subprotocol,
            services=self.services,
        )
        connection.session = session
        self.stats.connections_total += 1
        self.registry.add(session)
        log.info(
            "session opened",
            extra={
                "session": session.id,
                "sub": identity.sub,
                "tid": identity.tid,
                "subprotocol": connection.subprotocol,
            },
        )
        return session.receive

    def lost(self, connection: WsConnection) -> None:
        self._connections.discard(connection)
        session = connection.session
        if session is None:
            return
        connection.session = None
        session.shutdown()
        self.registry.remove(session)
        log.info(
            "session closed",
            extra={
                "session": session.id,
                "code": connection.close_code,
                "seconds": round(time.monotonic() - connection.opened, 3),
            },
        )

    # HTTP endpoints

    async def _live(self) -> HttpResponse:
        return _json(HTTPStatus.OK, b'{"status":"ok"}')

    async def _ready(self) -> HttpResponse:
        try:
            async with asyncio.timeout(2.0):
                for check in self.ready_checks:
                    await check()
        except Exception as exc:
            log.info("not ready", extra={"reason": type(exc).__name__})
            return _json(HTTPStatus.SERVICE_UNAVAILABLE, b'{"status":"unavailable"}')
        return _json(HTTPStatus.OK, b'{"status":"ready"}')

    async def _metrics(self) -> HttpResponse:
        body, content_type = render_metrics(self.stats, self.registry, self.admission)
        return _make(HTTPStatus.OK, body, content_type)

    async def _openrpc(self) -> HttpResponse:
        return _json(HTTPStatus.OK, self.openrpc)

    def _dev_token(
        self, tokens: DevTokens, peer: str, request: Request, query: str
    ) -> HttpResponse:
        if not tokens.allowed(peer, request.headers):
            # As if the path did not exist: a remote caller learns nothing.
            return _text(HTTPStatus.NOT_FOUND, b"not found\n")
        minted = tokens.mint(query)
        if minted is None:
            return _text(HTTPStatus.BAD_REQUEST, b"sub: 1-32 of a-z, 0-9, _ and -\n")
        return _json(HTTPStatus.OK, msgspec.json.encode(minted))

    async def _playground(self) -> HttpResponse:
        body, csp = _playground_page()
        response = _make(HTTPStatus.OK, body, "text/html; charset=utf-8")
        del response.headers["Content-Security-Policy"]  # Headers appends on set
        response.headers["Content-Security-Policy"] = csp
        return response


@cache
def _playground_page() -> tuple[bytes, str]:
    """The playground's HTML (read once) and its CSP: only its own inline script and
    style run (by hash), it connects to WebSockets and plays nothing but generated audio.
    ``blob:`` scripts are allowed because the client library loads its AudioWorklet
    processor from a blob URL it builds itself (a worklet module cannot be inline)."""
    body = resources.files("yamabiko").joinpath("server/playground/index.html").read_bytes()
    text = body.decode()

    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL)
        digests = (base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in found)
        return " ".join(f"'sha256-{d}'" for d in digests)

    csp = (
        f"default-src 'none'; script-src {hashes('script')} blob:; style-src {hashes('style')}; "
        "connect-src 'self' ws: wss:; media-src blob:; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return body, csp


def _refusal(refusal: Refusal) -> HttpResponse:
    response = _text(HTTPStatus(refusal.status), refusal.reason.encode() + b"\n")
    for name, value in refusal.headers:
        response.headers[name] = value
    return response


def _make(status: HTTPStatus, body: bytes, content_type: str) -> HttpResponse:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    for name, value in SECURITY_HEADERS:
        headers[name] = value
    return HttpResponse(int(status), status.phrase, headers, body)


def _json(status: HTTPStatus, body: bytes) -> HttpResponse:
    return _make(status, body, "application/json")


def _text(status: HTTPStatus, body: bytes) -> HttpResponse:
    return _make(status, body, "text/plain; charset=utf-8")

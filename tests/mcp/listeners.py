"""Servers on 127.0.0.1 for the MCP security tests: the test tools over Streamable
HTTP (optionally demanding a bearer token), and a raw listener that records every
connection and the bytes it was sent (the "attacker's" server, or a private service that
must never be reached)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, Literal

import uvicorn

from tests.mcp.tool_server import build

Answer = Literal["close", "404", "garbage", "silence"]


@asynccontextmanager
async def mcp_http_server(token: str | None = None) -> AsyncIterator[int]:
    """The test tools' Streamable HTTP app on a free 127.0.0.1 port (yielded), at
    ``/mcp``; with ``token``, a request without ``Authorization: Bearer token`` is 401."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    app: Any = build().streamable_http_app()
    if token is not None:
        app = _require_bearer(app, token)
    config = uvicorn.Config(
        app, lifespan="on", ws="none", log_level="warning", timeout_graceful_shutdown=2
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    try:
        yield sock.getsockname()[1]
    finally:
        await server.shutdown(sockets=[sock])


def _require_bearer(app: Any, token: str) -> Callable[..., Awaitable[None]]:
    expected = f"Bearer {token}".encode()

    async def guarded(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return guarded


class Recorder:
    """A TCP listener on 127.0.0.1 that keeps what each connection sent (its first
    64 KiB) and answers as told: ``close`` at once, an HTTP ``404``, ``garbage`` bytes,
    ``silence`` until the peer leaves, or ``redirect`` (HTTP 307) to a location."""

    def __init__(self, answer: Answer = "close", redirect: str | None = None) -> None:
        self.answer = answer
        self.redirect = redirect
        self.received: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def connections(self) -> int:
        return len(self.received)

    def seen(self) -> bytes:
        return b"".join(self.received)

    async def __aenter__(self) -> Recorder:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.received)
        self.received.append(b"")
        try:
            if self.answer == "close":
                return
            if self.answer == "garbage":
                writer.write(b"\x00\xffnot http at all\r\n\r\n")
                await writer.drain()
                return
            head = b""
            async with asyncio.timeout(10):
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = await reader.read(4096)
                    if not chunk:
                        break
                    head += chunk
                    self.received[index] = head
                if self.answer == "silence":
                    await reader.read()  # until the peer gives up
                    return
            if self.redirect is not None:
                status = f"307 Temporary Redirect\r\nLocation: {self.redirect}"
            else:
                status = "404 Not Found"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()


def closed_port() -> int:
    """A 127.0.0.1 port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

"""An in-memory :class:`~yamabiko.sessions.transport.Transport` and helpers for session tests.

The transport records every frame in the order it is handed over. Like ``websockets``, a
frame counts as sent at once and the send then waits for the client to read it:
``block()`` makes every send wait until ``unblock()`` (a client that reads nothing), and
``release(n)`` lets the blocked client read ``n`` more. Nothing here sleeps; every wait
is bounded by :data:`WAIT`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from yamabiko.protocol import errors
from yamabiko.schema.base import MethodSchema, Params, Result
from yamabiko.schema.methods import build_table
from yamabiko.sessions import lifecycle
from yamabiko.sessions.identity import Identity
from yamabiko.sessions.methods import MethodEntry, Router
from yamabiko.sessions.session import Context, Session, SessionConfig, TokenVerifier

WAIT = 2.0
"""The bound on every wait in these tests: a hang fails fast instead of stalling CI."""


class MemoryTransport:
    """Records frames in send order; can hold every send until released."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, bytes]] = []
        """("text" | "binary", payload), in the order they were handed to the socket."""
        self.closed: tuple[int, str] | None = None
        self.close_calls = 0
        self._credits: int | None = None
        """None: the client reads everything; n: it reads n more held sends, then stops."""
        self._held = 0
        self._changed = asyncio.Event()
        self._arrived = asyncio.Event()
        self._writing = asyncio.Event()

    # Control

    def block(self) -> None:
        """Make every later send wait until :meth:`unblock` (a client that reads nothing)."""
        self._credits = 0

    def unblock(self) -> None:
        self._credits = None
        self._changed.set()

    def release(self, count: int = 1) -> None:
        """While blocked, let the client read ``count`` more messages."""
        assert self._credits is not None, "release() is for a blocked transport"
        self._credits += count
        self._changed.set()

    async def wait_frames(self, count: int) -> list[tuple[str, bytes]]:
        """Wait (bounded) until at least ``count`` frames were sent; return them all."""
        async with asyncio.timeout(WAIT):
            while len(self.frames) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.frames

    async def wait_closed(self) -> tuple[int, str]:
        """Wait (bounded) until someone closed the connection; return (code, reason)."""
        async with asyncio.timeout(WAIT):
            while self.closed is None:
                await asyncio.sleep(0)
        return self.closed

    async def wait_writing(self) -> None:
        """Wait (bounded) until a send is held (its frame is out, the client has not read
        it, so the sender waits)."""
        await asyncio.wait_for(self._writing.wait(), WAIT)

    @property
    def texts(self) -> list[bytes]:
        return [data for kind, data in self.frames if kind == "text"]

    def messages(self) -> list[Any]:
        """Every text frame, decoded."""
        return [json.loads(data) for data in self.texts]

    # Transport

    def try_send_text(self, data: bytes) -> bool:
        if self.closed is not None or self._credits is not None:
            return False
        self.frames.append(("text", bytes(data)))
        self._arrived.set()
        return True

    async def send_text(self, data: bytes) -> None:
        await self._send("text", data)

    async def send_binary(self, data: bytes) -> None:
        await self._send("binary", data)

    async def close(self, code: int, reason: str) -> None:
        self.close_calls += 1
        if self.closed is None:
            self.closed = (code, reason)
        self._changed.set()

    async def _send(self, kind: str, data: bytes) -> None:
        # Like websockets: the frame is handed to the socket at once, then the send waits
        # for the buffer to drain. A send cancelled while it waits has still been sent.
        if self.closed is not None:
            raise ConnectionError("closed")
        self.frames.append((kind, bytes(data)))
        self._arrived.set()
        if self._credits == 0:
            self._held += 1
            self._writing.set()
            try:
                while self._credits == 0 and self.closed is None:
                    self._changed.clear()
                    await self._changed.wait()
            finally:
                self._held -= 1
                if not self._held:
                    self._writing.clear()
            if self.closed is not None:
                raise ConnectionError("closed")
        if self._credits:
            self._credits -= 1


async def settle(rounds: int = 20) -> None:
    """Let every runnable task take a few steps (a yield, not a wait for time)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


# Test-only methods


class GateParams(Params):
    name: str
    """Which gate of :class:`Gates` the handler waits on; ``raise`` fails at once."""


class EchoResult(Result):
    name: str


class NoteParams(Params):
    mode: str
    """``boom`` raises RuntimeError, ``refuse`` a YamabikoError, anything else is fine."""


class Gates:
    """Events that test handlers wait on, and a record of what the handlers did."""

    def __init__(self) -> None:
        self.events: dict[str, asyncio.Event] = {}
        self.started: dict[str, asyncio.Event] = {}
        self.entered: list[str] = []
        self.exited: list[str] = []
        self.notes: list[str] = []

    def event(self, name: str) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())

    def open(self, name: str) -> None:
        self.event(name).set()

    async def wait_started(self, name: str) -> None:
        event = self.started.setdefault(name, asyncio.Event())
        await asyncio.wait_for(event.wait(), WAIT)


SCHEMAS = build_table(
    [
        MethodSchema("test/gate", GateParams, EchoResult, "Wait on a named gate."),
        MethodSchema("test/note", NoteParams, None, "A notification handler that may fail."),
    ]
)


def gate_router(gates: Gates) -> Router:
    router = Router(SCHEMAS)

    @router.method("test/gate")
    async def gate(ctx: Context, params: GateParams) -> EchoResult:
        if params.name == "raise":
            raise RuntimeError("secret internal detail")
        gates.entered.append(params.name)
        gates.started.setdefault(params.name, asyncio.Event()).set()
        try:
            await gates.event(params.name).wait()
        finally:
            gates.exited.append(params.name)
        return EchoResult(name=params.name)

    @router.method("test/note")
    async def note(ctx: Context, params: NoteParams) -> None:
        gates.notes.append(params.mode)
        if params.mode == "boom":
            raise RuntimeError("secret internal detail")
        if params.mode == "refuse":
            raise errors.Forbidden("no")

    return router


def method_table(gates: Gates) -> dict[str, MethodEntry]:
    return Router().include(lifecycle.router, gate_router(gates)).entries


def make_identity(
    sub: str = "alice",
    tid: str = "acme",
    *,
    ttl_s: float = 600.0,
    scopes: frozenset[str] = frozenset({"chat"}),
) -> Identity:
    return Identity(sub=sub, tid=tid, scopes=scopes, exp=time.time() + ttl_s)


def make_session(
    transport: MemoryTransport | None = None,
    gates: Gates | None = None,
    *,
    identity: Identity | None = None,
    subprotocol: str | None = None,
    verify_token: TokenVerifier | None = None,
    **config: Any,
) -> Session:
    """A session over ``transport``; ``config`` are :class:`SessionConfig` fields."""
    return Session(
        transport if transport is not None else MemoryTransport(),
        method_table(gates if gates is not None else Gates()),
        identity=identity if identity is not None else make_identity(),
        config=SessionConfig(**config),
        subprotocol=subprotocol,
        verify_token=verify_token,
    )


def request(request_id: Any, method: str, params: Any = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode()


def notification(method: str, params: Any = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode()


def batch(*messages: bytes) -> bytes:
    return b"[" + b",".join(messages) + b"]"


def cancel(request_id: int | str) -> bytes:
    return notification("notifications/cancelled", {"requestId": request_id})


INITIALIZE = request(0, "initialize", {"protocolVersion": "yamabiko/1"})

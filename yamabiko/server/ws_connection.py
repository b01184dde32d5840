"""One WebSocket connection on an I/O layer the server owns: websockets' sans-I/O
:class:`~websockets.server.ServerProtocol` driven by an :class:`asyncio.Protocol`.

Theory of operation
-------------------
Bytes read go into the protocol object (``receive_data``); what it parses comes out as
events: first the HTTP request, then frames. The request goes to the server's
:class:`Listener` (``respond``, in a task: admission may ask the store), which answers
an HTTP response (an endpoint, a refusal) or ``None`` to accept the upgrade; a
connection that is not upgraded is closed once its answer is written. Frames become
messages (fragmented ones joined; the protocol bounds their size and closes with 1009)
queued for the session and handed to it at once, in ``data_received``; a reader task
exists only while the session waits on something (``eager.py``), so an idle
connection holds no task and most messages never need one. When more than
``READ_QUEUE_BYTES`` wait (the session is backed up), reading from the socket pauses
until the session catches up.

Writes: the connection is the session's write-only
:class:`~yamabiko.sessions.transport.Transport`. A message is framed into the
protocol's buffer and the buffer is written with one ``writelines`` at the end of the
loop iteration (or at once past ``FLUSH_AT_BYTES``, or when the reader has nothing
more to take), so a burst of replies costs one system call. When the socket's write
buffer passes its high-water mark, asyncio calls ``pause_writing``: then
``try_send_text`` refuses and ``send_*`` wait for ``resume_writing``, which is how a
slow reader pushes back on its own session and nobody else's.

Closing: ``close`` sends a close frame and waits (bounded by ``close_timeout_s``) for
the peer's reply, after which the protocol asks for the end of the stream; a peer that
does not answer is cut off. A ping goes out every ``ping_interval_s``; no pong within
``ping_timeout_s`` closes the connection with 1011 and drops it (the peer is gone).
Everything the connection holds (the admission ticket, the session) lives on it and is
released in ``connection_lost``, at whatever stage the connection is lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final, Protocol, cast

from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from yamabiko.server.eager import start_eagerly
from yamabiko.sessions.transport import WS_1011_INTERNAL_ERROR

if TYPE_CHECKING:
    from yamabiko.server.admission import Ticket
    from yamabiko.sessions.session import Session

log = logging.getLogger("yamabiko.server")

FLUSH_AT_BYTES: Final = 64 * 1024
"""Frames buffered past this are written at once rather than at the end of the loop
iteration, so that a burst never piles up unwritten and the socket can push back."""
READ_TURN_S: Final = 0.002
"""How long one connection's reader may take queued messages before it lets the
other connections run."""
READ_QUEUE_BYTES: Final = 256 * 1024
"""Bytes of received messages a backed-up session may have waiting before reading
from its socket pauses."""
MESSAGE_OVERHEAD_BYTES: Final = 64
"""What a queued message counts beyond its bytes (the queue slot, the session's work):
a flood of empty messages must reach the bound too."""
WRITE_HIGH_WATER: Final = 64 * 1024
"""The socket's write buffer above which sends wait (asyncio's ``pause_writing``)."""

Receiver = Callable[[bytes], Awaitable[None]]


class Listener(Protocol):
    """What a server gives its connections; one object shared by all of them."""

    def connection_made(self, connection: WsConnection) -> None:
        """A socket was accepted (nothing read yet)."""
        ...

    def respond(self, connection: WsConnection, request: Request) -> Awaitable[Response | None]:
        """Answer a request: a response to send (an HTTP endpoint, a refusal), or None
        to accept the WebSocket upgrade (the listener has put what the connection
        needs, its ticket, on it)."""
        ...

    def opened(self, connection: WsConnection) -> Receiver:
        """The upgrade was sent: start serving; returns what takes each message."""
        ...

    def lost(self, connection: WsConnection) -> None:
        """The connection is gone (at any stage): release what it held."""
        ...


class WsOptions:
    """The socket-level limits and timers of every connection of a server."""

    __slots__ = (
        "close_timeout_s", "extensions", "max_message_bytes", "open_timeout_s",
        "ping_interval_s", "ping_timeout_s", "select_subprotocol", "subprotocols",
    )  # fmt: skip

    def __init__(
        self,
        *,
        subprotocols: Sequence[str],
        max_message_bytes: int,
        ping_interval_s: float,
        ping_timeout_s: float,
        compression: bool,
        open_timeout_s: float = 10.0,
        close_timeout_s: float = 10.0,
    ) -> None:
        self.subprotocols = [Subprotocol(p) for p in subprotocols]
        self.select_subprotocol = _selector(frozenset(subprotocols))
        self.max_message_bytes = max_message_bytes
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.open_timeout_s = open_timeout_s
        self.close_timeout_s = close_timeout_s
        self.extensions: list[ServerExtensionFactory] | None = (
            [ServerPerMessageDeflateFactory()] if compression else None
        )


class WsConnection(asyncio.Protocol):
    """One client socket: its protocol state, its admission ticket, its session's
    reader, its write buffer and its timers. Also the session's ``Transport``."""

    __slots__ = (
        "_buffered", "_closed_waiter", "_eof", "_fast", "_flush_pending", "_fragmented",
        "_fragments", "_handshake", "_inbuf", "_incoming", "_incoming_bytes", "_listener",
        "_loop", "_lost", "_options", "_out", "_ping_payload", "_protocol", "_reader",
        "_reading_paused", "_receive", "_timer", "_transport", "_writable", "_write_paused",
        "opened", "peer", "session", "subprotocol", "ticket",
    )  # fmt: skip

    def __init__(self, listener: Listener, options: WsOptions) -> None:
        self._listener = listener
        self._options = options
        self._loop = asyncio.get_running_loop()
        self._protocol = ServerProtocol(
            extensions=options.extensions,
            subprotocols=options.subprotocols,
            select_subprotocol=options.select_subprotocol,
            max_size=options.max_message_bytes,
        )
        self._transport: asyncio.Transport | None = None
        self._handshake: asyncio.Task[None] | None = None
        self._receive: Receiver | None = None
        self._reader: asyncio.Task[None] | None = None
        self._incoming: deque[bytes] = deque()
        self._incoming_bytes = 0
        self._fragments: list[bytes] | None = None
        self._reading_paused = False
        self._write_paused = False
        self._writable: asyncio.Future[None] | None = None
        self._closed_waiter: asyncio.Future[None] | None = None
        self._flush_pending = False
        self._buffered = 0
        self._out: list[bytes] = []
        """Bytes to write at the next flush, in order: ours and the protocol's."""
        self._eof = False
        """The protocol asked for the end of the stream after ``_out``."""
        self._fast = False
        """Frames are read and written here rather than by the protocol object (see
        ``_read_frames``): open, no extension, nothing received before the upgrade."""
        self._inbuf = bytearray()
        self._fragmented = False
        """A fragmented message is being handed to the protocol object."""
        self._timer: asyncio.TimerHandle | None = None
        """The one pending deadline: opening, the next ping, its pong, or closing."""
        self._ping_payload: bytes | None = None
        self._lost = False
        self.ticket: Ticket | None = None
        """The admission ticket, set by the listener when it admits the upgrade."""
        self.session: Session | None = None
        """The session, set by the listener once the upgrade is sent."""
        self.subprotocol: str | None = None
        self.peer = "?"
        self.opened = 0.0
        """``time.monotonic()`` when the upgrade was sent."""

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        address = transport.get_extra_info("peername")
        if isinstance(address, tuple) and len(address) >= 2:
            self.peer = f"{address[0]}:{address[1]}"
        self._timer = self._loop.call_later(self._options.open_timeout_s, self.abort)
        self._listener.connection_made(self)

    def data_received(self, data: bytes) -> None:
        if self._fast:
            self._read_frames(data)
        else:
            before = self._handshake
            self._feed(data)
            if before is not None or (
                self._handshake is not None and not data.endswith(b"\r\n\r\n")
            ):
                # Bytes after the request head (frames sent before our answer) are in
                # the protocol object's buffer: it keeps reading this connection.
                self._fragmented = True
        # Pongs, close replies and protocol errors (1009, a bad request's 400) go out now.
        if self._out or self._eof:
            self._flush()
        if self._incoming and self._reader is None and self._receive is not None:
            self._reader = start_eagerly(self._loop, self._read())

    def _feed(self, data: bytes) -> None:
        """Hand bytes to the protocol object and act on what it parsed."""
        protocol = self._protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if type(event) is Frame:
                self._on_frame(event)
            elif type(event) is Request and self._handshake is None:
                self._handshake = self._loop.create_task(self._open(event))
        self._take_output()
        if self._fast and protocol.state is not State.OPEN:
            self._fast = False  # closing or failed: the protocol object handles the rest

    def _read_frames(self, data: bytes) -> None:
        """Take the complete frames of ``data`` (after what is left from before).

        The common frame (final, unfragmented text or binary, masked, no reserved bit,
        under the size limit) is unmasked here; any other complete frame (control
        frames, fragments, anything malformed) goes whole to the protocol object, which
        enforces RFC 6455 on it, so that it always sees the stream at a frame boundary.
        A frame over the size limit hands the rest of the stream to it (it closes 1009).
        """
        buf = self._inbuf
        buf += data
        end = len(buf)
        pos = 0
        limit = self._options.max_message_bytes
        while end - pos >= 2:
            first = buf[pos]
            second = buf[pos + 1]
            length = second & 0x7F
            head = pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[head : head + 2], "big")
                head += 2
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[head : head + 8], "big")
                head += 8
            masked = second & 0x80
            stop = head + (4 if masked else 0) + length
            if length > limit:
                self._fast = False
                rest = bytes(buf[pos:])
                buf.clear()
                self._feed(rest)
                return
            if stop > end:
                break
            if (first == 0x81 or first == 0x82) and masked and not self._fragmented:
                self._queue(_unmask(buf[head + 4 : stop], buf[head : head + 4]))
            else:
                if first & 0x0F < 3:  # a data frame: FIN ends a fragmented message
                    self._fragmented = not first & 0x80
                self._feed(bytes(buf[pos:stop]))
                if not self._fast:
                    rest = bytes(buf[stop:])
                    buf.clear()
                    if rest:
                        self._feed(rest)
                    return
            pos = stop
        del buf[:pos]

    def eof_received(self) -> bool | None:
        self._protocol.receive_eof()
        self._take_output()
        self._flush()
        return None  # asyncio closes the socket once the buffer is written

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._protocol.receive_eof()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._incoming.clear()
        self._wake_writers()
        if self._closed_waiter is not None and not self._closed_waiter.done():
            self._closed_waiter.set_result(None)
        for task in (self._handshake, self._reader):
            if task is not None and not task.done():
                task.cancel()
        try:
            self._listener.lost(self)
        finally:
            ticket, self.ticket = self.ticket, None
            if ticket is not None:
                ticket.release()

    # The session's Transport

    @property
    def is_open(self) -> bool:
        return not self._lost and self._protocol.state is State.OPEN

    @property
    def close_code(self) -> int | None:
        """The close code received, else the one sent, else None."""
        return self._protocol.close_code

    def try_send_text(self, data: bytes) -> bool:
        if self._write_paused or not self.is_open:
            return False
        self._send(0x81, data)
        return True

    async def send_text(self, data: bytes) -> None:
        await self._wait_writable()
        self._send(0x81, data)

    async def send_binary(self, data: bytes) -> None:
        await self._wait_writable()
        self._send(0x82, data)

    def _send(self, first: int, data: bytes) -> None:
        """Frame one message: here (a server frame is a header and the bytes), or by
        the protocol object when an extension (compression) is in use."""
        size = len(data)
        if self._fast:
            if size < 126:
                self._out.append(bytes((first, size)) + data)
            elif size < 65536:
                self._out.append(bytes((first, 126)) + size.to_bytes(2, "big") + data)
            else:
                self._out.append(bytes((first, 127)) + size.to_bytes(8, "big"))
                self._out.append(data)
        else:
            if first == 0x81:
                self._protocol.send_text(data)
            else:
                self._protocol.send_binary(data)
            self._take_output()
        self._buffer(size)

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame (once) and wait, bounded, until the connection is gone."""
        if self.is_open:
            self._protocol.send_close(code, reason)
            self._take_output()
            self._flush()
            self._set_timer(self._options.close_timeout_s, self.abort)
        if self._lost:
            return
        if self._closed_waiter is None:
            self._closed_waiter = self._loop.create_future()
        try:
            async with asyncio.timeout(self._options.close_timeout_s + 1.0):
                await asyncio.shield(self._closed_waiter)
        except TimeoutError:
            self.abort()

    def flush_if_pending(self) -> None:
        """Write what is buffered now rather than at the end of the loop iteration."""
        if self._flush_pending:
            self._flush()

    def abort(self) -> None:
        """Drop the connection at once (a dead peer, a handshake that never came)."""
        if self._transport is not None:
            self._transport.abort()

    # Reading

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._queue(bytes(frame.data))
            else:
                self._fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            fragments = self._fragments
            if fragments is None:  # the protocol refuses this; be safe
                return
            fragments.append(bytes(frame.data))
            if frame.fin:
                self._fragments = None
                self._queue(b"".join(fragments))
        elif (
            opcode is Opcode.PONG
            and self._ping_payload is not None
            and frame.data == self._ping_payload
        ):
            self._ping_payload = None
            self._set_timer(self._options.ping_interval_s, self._ping)

    def _queue(self, data: bytes) -> None:
        self._incoming.append(data)
        self._incoming_bytes += len(data) + MESSAGE_OVERHEAD_BYTES
        if self._incoming_bytes > READ_QUEUE_BYTES and not self._reading_paused:
            self._reading_paused = True
            if self._transport is not None:
                self._transport.pause_reading()

    async def _read(self) -> None:
        """Hand queued messages to the session in order; ends when none wait."""
        receive = self._receive
        assert receive is not None
        incoming = self._incoming
        clock = time.perf_counter
        turn_ends = clock() + READ_TURN_S
        try:
            while incoming:
                data = incoming.popleft()
                self._incoming_bytes -= len(data) + MESSAGE_OVERHEAD_BYTES
                if self._reading_paused and self._incoming_bytes <= READ_QUEUE_BYTES // 2:
                    self._reading_paused = False
                    if self._transport is not None and not self._lost:
                        self._transport.resume_reading()
                await receive(data)
                if not incoming:
                    # Nothing else waits: a lone reply leaves now; a burst's replies
                    # went out together.
                    self.flush_if_pending()
                elif clock() >= turn_ends:
                    # A client with a backlog must not keep the loop from the others.
                    await asyncio.sleep(0)
                    turn_ends = clock() + READ_TURN_S
        except Exception:
            log.exception("error in the read loop")
        finally:
            self._reader = None

    # Writing

    def _buffer(self, size: int) -> None:
        self._buffered += size
        if self._buffered >= FLUSH_AT_BYTES:
            self._flush()
        elif not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def _take_output(self) -> None:
        """Move what the protocol object wrote (handshake answer, pongs, close frames)
        to the output, in order with our own frames."""
        for chunk in self._protocol.data_to_send():
            if chunk:
                self._out.append(chunk)
            else:  # an empty chunk means: end the stream
                self._eof = True

    def _flush(self) -> None:
        self._flush_pending = False
        self._buffered = 0
        out = self._out
        if not out and not self._eof:
            return
        self._out = []
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if out:
            transport.writelines(out)
        if self._eof:
            transport.close()

    async def _wait_writable(self) -> None:
        while self._write_paused and not self._lost:
            if self._writable is None:
                self._writable = self._loop.create_future()
            await self._writable
        if not self.is_open:
            raise ConnectionError("connection closed")

    def _wake_writers(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # Opening and keepalive

    async def _open(self, request: Request) -> None:
        protocol = self._protocol
        try:
            response = await self._listener.respond(self, request)
        except Exception:
            log.exception("error while answering a request")
            response = protocol.reject(500, "internal error\n")
        if self._lost:
            return
        if response is None:
            response = protocol.accept(request)
            response.headers["Server"] = "Yamabiko"
        protocol.send_response(response)
        self._take_output()
        if protocol.state is not State.OPEN:
            # An HTTP answer or a refused upgrade: the protocol ends the stream.
            self._flush()
            if self._transport is not None and not self._transport.is_closing():
                self._transport.close()
            return
        self.subprotocol = protocol.subprotocol
        self.opened = time.monotonic()
        self._fast = not self._fragmented and "Sec-WebSocket-Extensions" not in response.headers
        self._fragmented = False
        self._flush()
        self._set_timer(self._options.ping_interval_s, self._ping)
        self._receive = self._listener.opened(self)
        if self._incoming and self._reader is None:
            self._reader = start_eagerly(self._loop, self._read())

    def _ping(self) -> None:
        self._timer = None
        if not self.is_open:
            return
        self._ping_payload = os.urandom(4)
        self._protocol.send_ping(self._ping_payload)
        self._take_output()
        self._flush()
        self._set_timer(self._options.ping_timeout_s, self._ping_timed_out)

    def _ping_timed_out(self) -> None:
        self._timer = None
        log.info("keepalive ping timed out", extra={"peer": self.peer})
        if self.is_open:
            self._protocol.send_close(WS_1011_INTERNAL_ERROR, "keepalive ping timeout")
            self._take_output()
            self._flush()
        # The peer answers nothing: waiting for its close reply would be waiting forever.
        self.abort()

    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, callback)


Selector = Callable[[ServerProtocol, Sequence[Subprotocol]], Subprotocol | None]


def _selector(supported: frozenset[str]) -> Selector:
    def select(protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        # Subprotocols are optional: a client that offers none we speak is served
        # plain JSON-RPC (websockets' default would refuse it with 400).
        for name in offered:
            if name in supported:
                return name
        return None

    return select


def _unmask(payload: bytearray, mask: bytearray) -> bytes:
    """A client frame's payload, unmasked (RFC 6455, 5.3): XOR with the 4-byte key
    repeated, done on two integers at C speed."""
    size = len(payload)
    if not size:
        return b""
    key = (mask * ((size >> 2) + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little"
    )

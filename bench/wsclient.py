"""A minimal WebSocket client for load generation: handshake, masked frames, a frame counter.

Why not the ``websockets`` client: the benchmark measures servers, so the load generator
must spend far less CPU per message than the server it drives, or the figure measures the
client. Frames are built once (masked with a fixed key) and written as plain bytes; the
reader only walks frame headers and counts data frames, answering the server's pings so
that idle connections survive keepalive. Everything here is the same for every server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
import time
from collections.abc import Mapping
from typing import Any, cast

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEAD = 16384


class HandshakeError(ConnectionError):
    """The server did not answer the upgrade with 101 and the right accept key."""


def handshake_request(
    host: str, port: int, path: str, headers: Mapping[str, str]
) -> tuple[bytes, bytes]:
    """The HTTP upgrade request and the ``Sec-WebSocket-Accept`` value to expect."""
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())  # RFC 6455 accept key
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), accept


def check_handshake_response(head: bytes, accept: bytes) -> None:
    """Raise :class:`HandshakeError` unless ``head`` (up to the blank line) is a valid 101."""
    status, _, rest = head.partition(b"\r\n")
    if not status.startswith(b"HTTP/1.1 101"):
        raise HandshakeError(f"upgrade refused: {status.decode(errors='replace')}")
    for line in rest.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-accept" and value.strip() == accept:
            return
    raise HandshakeError("upgrade answered without the right Sec-WebSocket-Accept")


def frame(payload: bytes, opcode: int = OP_TEXT, mask: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    """One final, masked client frame (clients must mask, RFC 6455 section 5.3)."""
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    elif length < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    keystream = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(
        length, "big"
    )
    return head + mask + masked


class FrameReader:
    """Splits the server's (unmasked) byte stream into frames.

    :meth:`feed` returns how many data messages completed. Pings are answered through
    :attr:`replies` (bytes to write), a close frame sets :attr:`closed`. With
    ``keep=True`` the payloads of data frames are kept in :attr:`payloads`.
    """

    __slots__ = ("_buf", "closed", "keep", "payloads", "replies")

    def __init__(self, *, keep: bool = False) -> None:
        self._buf = bytearray()
        self.keep = keep
        self.payloads: list[bytes] = []
        self.replies = b""
        self.closed = False

    def feed(self, data: bytes) -> int:
        buf = self._buf
        buf += data
        size = len(buf)
        pos = 0
        count = 0
        while size - pos >= 2:
            first = buf[pos]
            length = buf[pos + 1] & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            else:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            opcode = first & 0x0F
            if opcode <= OP_BINARY:
                count += first >> 7  # a message is complete at its FIN frame
                if self.keep:
                    self.payloads.append(bytes(buf[start:end]))
            else:
                self._control(opcode, bytes(buf[start:end]))
            pos = end
        if pos:
            del buf[:pos]
        return count

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self.replies += frame(payload, OP_PONG)
        elif opcode == OP_CLOSE:
            self.closed = True

    def take_replies(self) -> bytes:
        replies, self.replies = self.replies, b""
        return replies


DELTA_HEAD = b'{"jsonrpc":"2.0","method":"stream/delta",'
"""How every ``stream/delta`` notification starts (Yamabiko's and the baselines')."""
END_HEAD = b'{"jsonrpc":"2.0","method":"stream/end",'
_FROM_SEQ = b'"fromSeq"'


class StreamItemReader(FrameReader):
    """A :class:`FrameReader` that also counts the items of one token stream.

    Each ``stream/delta`` frame counts in :attr:`frames`; its items (one, or
    ``seq - fromSeq + 1`` for a delta merged for a slow reader, the only frames it
    decodes) in :attr:`items`, merged frames in :attr:`merged`. The arrival time
    (``time.monotonic()``) of the first delta and of ``stream/end`` are kept; every
    other message (responses, ``stream/error``) is kept in :attr:`payloads`.
    """

    __slots__ = ("end_at", "end_payload", "first_at", "frames", "items", "merged")

    def __init__(self) -> None:
        super().__init__(keep=True)
        self.reset()

    def reset(self) -> None:
        self.frames = 0
        self.items = 0
        self.merged = 0
        self.first_at: float | None = None
        self.end_at: float | None = None
        self.end_payload = b""
        self.payloads.clear()

    def feed(self, data: bytes) -> int:
        buf = self._buf
        buf += data
        size = len(buf)
        pos = 0
        count = 0
        frames = 0
        while size - pos >= 2:
            first = buf[pos]
            length = buf[pos + 1] & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            else:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            opcode = first & 0x0F
            if opcode > OP_BINARY:
                self._control(opcode, bytes(buf[start:end]))
            else:
                count += first >> 7
                if buf.startswith(DELTA_HEAD, start):
                    frames += 1
                    if buf.find(_FROM_SEQ, start, end) < 0:
                        self.items += 1
                    else:
                        params = json.loads(buf[start:end])["params"]
                        self.items += params["seq"] - params["fromSeq"] + 1
                        self.merged += 1
                elif buf.startswith(END_HEAD, start):
                    self.end_at = time.monotonic()
                    self.end_payload = bytes(buf[start:end])
                else:
                    self.payloads.append(bytes(buf[start:end]))
            pos = end
        if frames:
            if self.first_at is None:
                self.first_at = time.monotonic()
            self.frames += frames
        if pos:
            del buf[:pos]
        return count


class BlockingConnection:
    """One connection on a blocking socket: the lowest-overhead round-trip client."""

    def __init__(self, sock: socket.socket, reader: FrameReader) -> None:
        self.sock = sock
        self.reader = reader

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        path: str,
        headers: Mapping[str, str],
        *,
        timeout: float = 10.0,
        reader: FrameReader | None = None,
    ) -> BlockingConnection:
        """Connect and upgrade; every later ``recv`` waits at most ``timeout`` seconds."""
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request, accept = handshake_request(host, port, path, headers)
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk or len(head) > _MAX_HEAD:
                    raise HandshakeError("connection closed during the upgrade")
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            check_handshake_response(head, accept)
            reader = reader if reader is not None else FrameReader()
            reader.feed(rest)
        except BaseException:
            sock.close()
            raise
        return cls(sock, reader)

    def wait_messages(self, count: int) -> None:
        """Block until ``count`` more data messages have arrived."""
        reader = self.reader
        sock = self.sock
        while count > 0:
            data = sock.recv(65536)
            if not data or reader.closed:
                raise ConnectionError("the server closed the connection")
            count -= reader.feed(data)
            if reader.replies:
                sock.sendall(reader.take_replies())

    def round_trip(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.wait_messages(1)

    def receive(self) -> None:
        """Read once from the socket into the reader (answering pings)."""
        data = self.sock.recv(65536)
        if not data or self.reader.closed:
            raise ConnectionError("the server closed the connection")
        self.reader.feed(data)
        if self.reader.replies:
            self.sock.sendall(self.reader.take_replies())

    def call(self, request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a JSON-RPC request and return its (decoded) response. Needs a reader that
        keeps payloads; the messages that are not the response stay in its ``payloads``."""
        reader = self.reader
        if not reader.keep:
            raise ValueError("call() needs a reader that keeps payloads")
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self.sock.sendall(frame(json.dumps(message, separators=(",", ":")).encode()))
        seen = 0
        while True:
            for index in range(seen, len(reader.payloads)):
                answer = json.loads(reader.payloads[index])
                if isinstance(answer, dict) and answer.get("id") == request_id:
                    del reader.payloads[index]
                    return cast(dict[str, Any], answer)
            seen = len(reader.payloads)
            self.receive()

    def close(self) -> None:
        self.sock.close()


class StreamConnection(asyncio.Protocol):
    """One asyncio connection that upgrades, says hello, then idles or pipelines.

    Pipelining keeps ``window`` requests in flight: each reply that arrives sends the next
    request at once, taken from a prebuilt ring of equally sized frames (``ring`` holds
    the ring twice over so that any run of up to ``ring_count`` frames is one slice).
    """

    def __init__(
        self,
        request: bytes,
        accept: bytes,
        hello: bytes,
        hello_replies: int,
        *,
        ring: bytes = b"",
        frame_size: int = 0,
        ring_count: int = 0,
        reader: FrameReader | None = None,
    ) -> None:
        self._request = request
        self._accept = accept
        self._hello = hello
        self._hello_left = hello_replies
        self._ring = ring
        self._frame_size = frame_size
        self._ring_count = ring_count
        self._pos = 0
        self._head = b""
        self._upgraded = False
        self._pumping = False
        self.reader = reader if reader is not None else FrameReader()
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.received = 0
        self.error_chunks = 0
        self.started_at = time.monotonic()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if not self._upgraded:
            data = self._upgrade(data)
            if not data:
                return
        count = self.reader.feed(data)
        if self.reader.replies:
            self._write(self.reader.take_replies())
        if self._pumping:
            self.received += count
            if b'"error"' in data:
                self.error_chunks += 1
            pos = self._pos
            size = self._frame_size
            self.transport.write(self._ring[pos * size : (pos + count) * size])  # type: ignore[union-attr]
            self._pos = (pos + count) % self._ring_count
        elif self._hello_left > 0:
            self._hello_left -= count
            if self._hello_left <= 0 and not self.ready.done():
                self.ready.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pumping = False
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before the hello"))

    # Control

    def pump(self, window: int) -> None:
        """Start pipelining: ``window`` requests now, one more per reply."""
        self._pumping = True
        self.received = 0
        self._pos = window % self._ring_count
        self._write(self._ring[: window * self._frame_size])

    def stop(self) -> None:
        self._pumping = False
        if self.transport is not None:
            self.transport.abort()

    # Internals

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _upgrade(self, data: bytes) -> bytes:
        self._head += data
        if b"\r\n\r\n" not in self._head:
            if len(self._head) > _MAX_HEAD:
                self._fail(HandshakeError("upgrade response too long"))
            return b""
        head, _, rest = self._head.partition(b"\r\n\r\n")
        self._head = b""
        try:
            check_handshake_response(head, self._accept)
        except HandshakeError as exc:
            self._fail(exc)
            return b""
        self._upgraded = True
        if self._hello_left > 0:
            self._write(self._hello)
        elif not self.ready.done():
            self.ready.set_result(None)
        return rest

    def _fail(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()


AUDIO_HEADER = struct.Struct(">2sBBII")
"""A binary audio frame's header: ``YA``, version, flags (bit 0: last), streamNo, seq."""
AUDIO_END_HEAD = b'{"jsonrpc":"2.0","method":"audio/end",'


class AudioFrameReader(FrameReader):
    """A :class:`FrameReader` for a client that declared ``audio.binary``: binary
    messages are audio frames, kept as ``(streamNo, seq, flags, payload bytes,
    time.monotonic())`` in :attr:`frames` (the time is when the bytes reached
    :meth:`feed`); with ``digest`` the payloads also go into a SHA-256 per streamNo
    (:attr:`digests`), for checking ``audio/end``'s. Text messages are kept in
    :attr:`payloads` (their arrival times in :attr:`times`); :attr:`ends` counts the
    ``audio/end`` among them."""

    __slots__ = ("digests", "ends", "frames", "times", "with_digest")

    def __init__(self, *, digest: bool = False) -> None:
        super().__init__(keep=True)
        self.frames: list[tuple[int, int, int, int, float]] = []
        self.digests: dict[int, Any] = {}
        self.times: list[float] = []
        self.with_digest = digest
        self.ends = 0

    def clear(self) -> None:
        """Forget the frames, digests and text messages received so far."""
        self.frames.clear()
        self.digests.clear()
        self.payloads.clear()
        self.times.clear()

    def feed(self, data: bytes) -> int:
        buf = self._buf
        buf += data
        size = len(buf)
        pos = 0
        count = 0
        now = time.monotonic()
        while size - pos >= 2:
            first = buf[pos]
            length = buf[pos + 1] & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            else:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            opcode = first & 0x0F
            if opcode > OP_BINARY:
                self._control(opcode, bytes(buf[start:end]))
            elif not first & 0x80 or opcode == OP_CONT:
                raise ValueError("a fragmented message (the server never fragments)")
            else:
                count += 1
                if opcode == OP_BINARY:
                    magic, version, flags, number, seq = AUDIO_HEADER.unpack_from(buf, start)
                    if magic != b"YA" or version != 1:
                        raise ValueError(f"not an audio frame: {bytes(buf[start : start + 4])!r}")
                    head = start + AUDIO_HEADER.size
                    self.frames.append((number, seq, flags, end - head, now))
                    if self.with_digest:
                        digest = self.digests.get(number)
                        if digest is None:
                            digest = self.digests[number] = hashlib.sha256()
                        digest.update(buf[head:end])
                else:
                    if buf.startswith(AUDIO_END_HEAD, start):
                        self.ends += 1
                    self.payloads.append(bytes(buf[start:end]))
                    self.times.append(now)
            pos = end
        if pos:
            del buf[:pos]
        return count

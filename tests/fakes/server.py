"""A minimal HTTP/1.1 server on asyncio streams, the base of the fake providers.

Theory of operation: one task per connection reads a request (headers, then a body by
``Content-Length`` or chunked), hands it to the provider subclass, and keeps the
connection alive for the next one, as the SDKs' connection pools expect. While a
response is being written, a watcher reads from the socket: the client sends nothing
else until the response ends, so end-of-file there means the client hung up, and the
monotonic time of that moment is recorded on the request. That is how a test asserts
that a cancel closed the upstream HTTP stream, and how quickly.

What a fake does is set by its :class:`Script` (tokens, delays, failures), which a test
may change between requests. Every request is recorded (:class:`RecordedRequest`).

The server runs on the caller's event loop, or with ``threaded=True`` on its own loop in
a thread (for benchmarks, so that the fake does not compete with the code under test for
the same loop). Waits (:meth:`FakeProvider.wait_disconnect`) work in both modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlsplit

FailMode = Literal["drop", "error"]
"""How a stream fails mid-way: ``drop`` closes the connection without finishing the
chunked body; ``error`` sends the provider's in-stream error event and ends cleanly."""

_MAX_HEADER_BYTES = 64 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}


@dataclass
class Script:
    """What a fake answers. Change it between requests to script a test."""

    tokens: list[str] = field(default_factory=lambda: ["Hello", ",", " world", "!"])
    """The text deltas of a successful stream, in order."""
    delay: float = 0.0
    """Seconds before each token."""
    first_delay: float = 0.0
    """Seconds after the response headers, before the first event."""
    fail_status: int | None = None
    """Answer this HTTP status (with the provider's error body) instead of a stream..."""
    fail_times: int = 0
    """...for this many requests, then stream normally."""
    retry_after: float | None = None
    """Sent as ``retry-after`` with a failure status."""
    fail_after: int | None = None
    """Fail the stream after this many tokens (0: after the opening events)."""
    fail_mode: FailMode = "drop"
    input_tokens: int = 12
    """Reported as the prompt's token count."""
    finish: Literal["stop", "length"] = "stop"
    expect_key: str | None = None
    """If set, requests without this key get 401."""

    @classmethod
    def count(cls, n: int, **kwargs: Any) -> Script:
        """A script of ``n`` tokens, ``"t0"``, ``" t1"``, ``" t2"``..."""
        tokens = [("" if i == 0 else " ") + f"t{i}" for i in range(n)]
        return cls(tokens=tokens, **kwargs)

    @property
    def text(self) -> str:
        return "".join(self.tokens)


@dataclass
class RecordedRequest:
    """One request the fake received, and what became of its response."""

    method: str
    path: str
    """Without the query string."""
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case names."""
    body: Any
    """The decoded JSON body, or None."""
    received_at: float
    """``time.monotonic()`` when the request was read."""
    peer: tuple[str, int] = ("", 0)
    """The client's address: the same port for requests on one kept-alive connection."""
    status: int = 0
    tokens_sent: int = 0
    completed_at: float | None = None
    """When the response was fully written."""
    disconnected_at: float | None = None
    """When the client closed the connection before the response was complete."""
    _disconnected: threading.Event = field(default_factory=threading.Event, repr=False)

    def mark_disconnected(self) -> None:
        if self.disconnected_at is None and self.completed_at is None:
            self.disconnected_at = time.monotonic()
            self._disconnected.set()


class Disconnected(Exception):
    """The client went away while we were writing."""


class ResponseWriter:
    """Writes one response: either a plain body or a chunked event stream."""

    def __init__(
        self, writer: asyncio.StreamWriter, record: RecordedRequest, gone: asyncio.Event
    ) -> None:
        self._writer = writer
        self._record = record
        self._gone = gone
        self._chunked = False

    @property
    def gone(self) -> bool:
        return self._gone.is_set()

    def _head(self, status: int, headers: Iterable[tuple[str, str]]) -> bytes:
        self._record.status = status
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        lines += [f"{name}: {value}" for name, value in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def json(self, status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        data = json.dumps(body).encode()
        head = self._head(
            status,
            [
                ("content-type", "application/json"),
                ("content-length", str(len(data))),
                *headers,
            ],
        )
        await self._write(head + data, final=True)

    async def start_stream(self) -> None:
        head = self._head(
            200,
            [
                ("content-type", "text/event-stream"),
                ("cache-control", "no-cache"),
                ("transfer-encoding", "chunked"),
            ],
        )
        self._chunked = True
        await self._write(head)

    async def event(self, data: bytes) -> None:
        """One chunk of the event stream (one or more whole SSE events)."""
        await self._write(b"%x\r\n%s\r\n" % (len(data), data))

    async def end_stream(self) -> None:
        await self._write(b"0\r\n\r\n", final=True)

    def drop(self) -> None:
        """Close the connection at once, leaving the body incomplete."""
        self._writer.transport.abort()

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake up early (raising :class:`Disconnected`) if the client leaves."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gone.wait(), seconds)
        if self._gone.is_set():
            raise Disconnected

    async def _write(self, data: bytes, *, final: bool = False) -> None:
        if self._gone.is_set():
            raise Disconnected
        if final:
            # Complete before the client can see the last byte and hang up.
            self._record.completed_at = time.monotonic()
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._record.mark_disconnected()
            raise Disconnected from exc


class FakeProvider:
    """Base of the fake providers: the HTTP machinery, the script and the records.

    Subclasses implement :meth:`handle`. Use it as ``async with FakeX(...) as fake`` and
    give the SDK ``fake.url``.
    """

    base_path = ""
    """Appended to ``http://host:port`` to make :attr:`url` (the SDK's ``base_url``)."""

    def __init__(self, script: Script | None = None, *, threaded: bool = False) -> None:
        self.script = script or Script()
        self.requests: list[RecordedRequest] = []
        self.threaded = threaded
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._failures_served = 0
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.errors: list[Exception] = []
        """Exceptions the fake's own code raised (a test may assert there are none)."""

    # -- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}{self.base_path}"

    async def __aenter__(self) -> Self:
        if self.threaded:
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            caller = asyncio.get_running_loop()
            self._thread = threading.Thread(
                target=self._run_thread, args=(caller, ready), daemon=True
            )
            self._thread.start()
            await ready
        else:
            self._loop = asyncio.get_running_loop()
            await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.threaded:
            assert self._loop is not None
            assert self._thread is not None
            done = asyncio.run_coroutine_threadsafe(self._stop(), self._loop)
            await asyncio.wrap_future(done)
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 5)
        else:
            await self._stop()

    def _run_thread(self, caller: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start())
        except BaseException as exc:  # report the failure to the waiting caller
            caller.call_soon_threadsafe(ready.set_exception, exc)
            loop.close()
            return
        caller.call_soon_threadsafe(ready.set_result, None)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        # Aborting the sockets ends every connection task (a read fails, a sleeping
        # stream sees the client gone); cancelling is only the last resort.
        for writer in list(self._writers):
            writer.transport.abort()
        if self._connections:
            _, pending = await asyncio.wait(list(self._connections), timeout=1.0)
            for task in pending:
                task.cancel()
        await self._server.wait_closed()

    # -- for tests -------------------------------------------------------------------

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    async def wait_disconnect(self, index: int = -1, timeout: float = 1.0) -> float:
        """Wait (at most ``timeout`` s) until the client hangs up on request ``index``;
        return the monotonic time it did. Raises ``TimeoutError`` if it does not."""
        record = self.requests[index]
        if not await asyncio.to_thread(record._disconnected.wait, timeout):
            raise TimeoutError(f"the client did not disconnect within {timeout} s")
        assert record.disconnected_at is not None
        return record.disconnected_at

    def take_failure(self) -> int | None:
        """The status to fail the current request with, if the script says so."""
        script = self.script
        if script.fail_status is not None and self._failures_served < script.fail_times:
            self._failures_served += 1
            return script.fail_status
        return None

    def reset(self, script: Script | None = None) -> None:
        """Forget the requests and failures served; optionally install a new script."""
        self.requests.clear()
        self._failures_served = 0
        if script is not None:
            self.script = script

    # -- subclass hooks --------------------------------------------------------------

    def matches(self, request: RecordedRequest) -> bool:
        """Whether the request is for the streaming endpoint this fake serves."""
        raise NotImplementedError

    def api_key(self, request: RecordedRequest) -> str | None:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        """The provider's JSON error body for an HTTP status."""
        raise NotImplementedError

    def check(self, request: RecordedRequest) -> tuple[int, str] | None:
        """A provider-specific refusal (status, message), or None."""
        return None

    def opening(self, request: RecordedRequest) -> list[bytes]:
        """Events before the first token."""
        return []

    def token(self, request: RecordedRequest, index: int, text: str) -> bytes:
        raise NotImplementedError

    def closing(self, request: RecordedRequest, sent: int) -> list[bytes]:
        """Events after the last token (finish reason, usage, end marker)."""
        raise NotImplementedError

    def error_event(self) -> bytes:
        """The provider's in-stream error event."""
        raise NotImplementedError

    # -- the request flow ------------------------------------------------------------

    async def handle(self, request: RecordedRequest, response: ResponseWriter) -> None:
        if not self.matches(request):
            await response.json(404, self.error_body(404, f"no route for {request.path}"))
            return
        refusal = self.check(request)
        expected = self.script.expect_key
        if refusal is None and expected is not None and self.api_key(request) != expected:
            refusal = (401, "invalid api key")
        if refusal is not None:
            await response.json(refusal[0], self.error_body(*refusal))
            return
        status = self.take_failure()
        if status is not None:
            headers = []
            if self.script.retry_after is not None:
                headers.append(("retry-after", f"{self.script.retry_after:g}"))
            await response.json(status, self.error_body(status, "scripted failure"), headers)
            return
        await self._stream(request, response)

    async def _stream(self, request: RecordedRequest, response: ResponseWriter) -> None:
        script = self.script
        await response.start_stream()
        await response.sleep(script.first_delay)
        for frame in self.opening(request):
            await response.event(frame)
        for index, text in enumerate(script.tokens):
            if script.fail_after is not None and index >= script.fail_after:
                break
            await response.sleep(script.delay)
            await response.event(self.token(request, index, text))
            request.tokens_sent += 1
        if script.fail_after is not None:
            if script.fail_mode == "drop":
                response.drop()
                return
            await response.event(self.error_event())
            await response.end_stream()
            return
        for frame in self.closing(request, request.tokens_sent):
            await response.event(frame)
        await response.end_stream()

    # -- the connection loop ---------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(writer)
        try:
            await self._connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # A fake ends a broken or cancelled connection quietly: asyncio's
            # start_server would log a task that ends with an exception.
            pass
        except Exception as exc:  # a bug of the fake: kept for the test to see
            self.errors.append(exc)
        finally:
            self._connections.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        prefix = b""
        while True:
            record = await self._read_request(reader, prefix)
            if record is None:
                return
            record.peer = writer.get_extra_info("peername")[:2]
            self.requests.append(record)
            gone = asyncio.Event()

            async def watch(record: RecordedRequest = record, gone: asyncio.Event = gone) -> bytes:
                try:
                    data = await reader.read(1)
                except ConnectionError:
                    data = b""
                if not data:
                    record.mark_disconnected()
                    gone.set()
                return data

            watcher = asyncio.create_task(watch())
            response = ResponseWriter(writer, record, gone)
            try:
                await self.handle(record, response)
            except Disconnected:
                pass
            finally:
                if not watcher.done():
                    watcher.cancel()
                # A pending read(1) gives back nothing when cancelled: no byte is lost.
                prefix = b""
                with contextlib.suppress(asyncio.CancelledError):
                    prefix = await watcher
            if writer.transport.is_closing() or gone.is_set() or record.completed_at is None:
                return
            if watcher.cancelled():
                continue
            if not prefix:
                return

    async def _read_request(
        self, reader: asyncio.StreamReader, prefix: bytes
    ) -> RecordedRequest | None:
        try:
            head = prefix + await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        if len(head) > _MAX_HEADER_BYTES:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            raw = await self._read_chunked(reader)
        else:
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        parts = urlsplit(target)
        return RecordedRequest(
            method=method,
            path=parts.path,
            query=dict(parse_qsl(parts.query)),
            headers=headers,
            body=body,
            received_at=time.monotonic(),
        )

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event with a JSON (or ``[DONE]``-style string) payload."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()


def bearer_or_header(headers: dict[str, str], header: str) -> str | None:
    """The API key a request carries: ``Authorization: Bearer <key>`` or ``header``."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get(header)

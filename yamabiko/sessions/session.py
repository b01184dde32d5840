"""One session per connection.

Theory of operation
-------------------
The server's read loop hands each incoming message to :meth:`Session.receive`, one at a
time. The session decodes it with its :class:`~yamabiko.protocol.peer.Peer` and acts:

- a request is checked in this order: known method (-32601), session state (-32002
  before ``initialize``), scope (-32003), params (-32602), rate limit (-32029), running
  requests (-32029 past ``max_running_requests``); then its handler runs, inline for the
  handlers registered ``inline`` and as its own task otherwise, so a slow handler never
  holds up the next message. A task is kept by request id so that
  ``notifications/cancelled`` can cancel it;
- a notification is checked for state and scope, charged to the same rate budget as
  requests (at its method's ``cost``, a fraction for keystrokes and cancels) and its
  params decoded; over the budget it is dropped, counted, and its method's
  ``refused`` hook tells the client what was lost. Then its handler runs inline; it
  never gets a response, so its errors are only logged;
- a response is matched to one of our own requests (:meth:`Session.request`) through
  the peer's one table of them; when the connection is gone every request still
  waiting ends with :class:`~yamabiko.protocol.errors.ConnectionClosed`;
- a batch runs its elements concurrently and answers with one array.

The session's state (NEW, READY, CLOSING, CLOSED) changes only through
:meth:`Session._transition`, which looks the move up in the table of
:mod:`yamabiko.sessions.state` and raises at once on a move the table does not allow.

This module is the single place where exceptions become wire errors: a
:class:`YamabikoError` keeps its code and message; anything else becomes -32603 with a
fresh ``errorId`` that is also on the log line carrying the traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, TypeVar

import msgspec

from yamabiko.protocol import errors
from yamabiko.protocol.messages import (
    Batch,
    Dropped,
    Invalid,
    Notification,
    Request,
    Response,
    encode_batch,
    encode_error,
    encode_notification,
    encode_result,
)
from yamabiko.protocol.peer import Peer
from yamabiko.protocol.strings import nul_path
from yamabiko.schema.base import RequestMeta
from yamabiko.schema.session import PROGRESS, ProgressParams
from yamabiko.sessions.identity import Identity
from yamabiko.sessions.methods import MethodEntry
from yamabiko.sessions.outbound import Binary, Mergeable, Outbound
from yamabiko.sessions.state import Event, State, next_state
from yamabiko.sessions.stats import CANCELLED, ERROR, OK, Stats
from yamabiko.sessions.subscriptions import Subscriptions
from yamabiko.sessions.transport import Transport

log = logging.getLogger("yamabiko.session")

T = TypeVar("T")

PRE_INIT_METHODS: Final = frozenset({"initialize", "ping"})
"""Served before ``initialize``; everything else is -32002 until then."""

TokenVerifier = Callable[[str], Awaitable[Identity]]
RateLimiter = Callable[[Identity, str], Awaitable[int]]
"""Returns 0 to admit a request or notification of the method named, else how many ms
to wait before retrying. What the method costs is the limiter's to look up."""
RATE_EXEMPT: Final = frozenset({"ping", "notifications/initialized"})
"""Never charged: a liveness check must work best when everything else is refused, and
``initialized`` comes once, right after the ``initialize`` that paid (a repeat changes
nothing, and costs what a malformed message costs)."""


class SessionConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Per-session limits and identity of the server; one value shared by all sessions."""

    max_message_bytes: int = 1 << 20
    max_running_requests: int = 8
    max_subscriptions: int = 32
    max_audio_streams: int = 4
    max_documents: int = 16
    max_batch: int = 100
    outbound_queue_bytes: int = 4 << 20
    ping_interval_s: float = 20.0
    requests_per_second: float = 100.0
    request_burst: int = 200
    slow_consumer_s: float = 30.0
    client_request_timeout_s: float = 30.0
    expiry_warning_s: float = 60.0
    server_name: str = "yamabiko"
    server_version: str = "0.1.0"
    instructions: str | None = None


class Context:
    """What a handler gets besides its params: who is calling and how to talk back."""

    __slots__ = ("meta", "request_id", "session")

    def __init__(
        self, session: Session, request_id: int | str | None, meta: RequestMeta | None
    ) -> None:
        self.session = session
        self.request_id = request_id
        self.meta = meta

    @property
    def identity(self) -> Identity:
        return self.session.identity

    @property
    def services(self) -> object:
        """The node's services, opaque here: handlers read them, typed, through
        :func:`yamabiko.services.container.services`."""
        return self.session.services

    def progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Report progress if the request asked for it (``_meta.progressToken``)."""
        meta = self.meta
        if meta is None or meta.progress_token is None:
            return
        self.session.notify(
            PROGRESS,
            ProgressParams(
                progress_token=meta.progress_token, progress=progress, total=total, message=message
            ),
        )

    @property
    def traceparent(self) -> str | None:
        return self.meta.traceparent if self.meta is not None else None


class Session:
    """One connection's protocol state. Never shared between connections."""

    __slots__ = (
        "__weakref__", "_batches", "_cancelled", "_close_code", "_dropped", "_local", "_methods",
        "_on_close",
        "_peer", "_state", "_subscriptions", "_transport", "capabilities", "client_info",
        "client_ready", "config", "expiry_warned", "id", "identity", "outbound", "protocol_version",
        "rate_limiter", "running", "services", "stats", "subprotocol",
        "verify_token",
    )  # fmt: skip

    def __init__(
        self,
        transport: Transport,
        methods: Mapping[str, MethodEntry],
        *,
        identity: Identity,
        config: SessionConfig,
        stats: Stats | None = None,
        verify_token: TokenVerifier | None = None,
        rate_limiter: RateLimiter | None = None,
        subprotocol: str | None = None,
        session_id: str | None = None,
        services: object = None,
    ) -> None:
        self.id = session_id or uuid.uuid4().hex
        self.identity = identity
        self.config = config
        self.subprotocol = subprotocol
        self._state = State.NEW
        self.client_ready = False
        self.protocol_version: str | None = None
        self.client_info: Any = None
        self.capabilities: Any = None
        self.outbound = Outbound(transport, max_bytes=config.outbound_queue_bytes)
        self.stats = stats if stats is not None else Stats()
        self.verify_token = verify_token
        self.rate_limiter = rate_limiter
        # What handlers need (store, engines...): opaque here, typed in ``services``.
        self.services = services
        self.running: dict[int | str, asyncio.Task[Any]] = {}
        self.expiry_warned = False
        self._transport = transport
        self._methods = methods
        self._peer = Peer(max_batch=config.max_batch)
        # Made on first use: two empty sets cost ~430 bytes on every idle connection.
        self._cancelled: set[int | str] | None = None
        self._batches: set[asyncio.Task[None]] | None = None
        self._on_close: list[Callable[[], None]] = []
        self._close_code: int | None = None
        self._subscriptions: Subscriptions | None = None
        self._local: dict[str, Any] | None = None
        self._dropped = 0

    # Incoming

    async def receive(self, data: bytes | str) -> None:
        """Act on one WebSocket message. Never raises for anything the peer sent."""
        self.stats.messages_in += 1
        event = self._peer.receive(data)
        kind = type(event)
        if kind is Request:
            assert isinstance(event, Request)
            await self._on_request(event)
        elif kind is Notification:
            assert isinstance(event, Notification)
            await self._on_notification(event)
        elif kind is Response:
            assert isinstance(event, Response)
            self._on_response(event)
        elif kind is Invalid:
            assert isinstance(event, Invalid)
            self.stats.invalid_messages += 1
            log.info(
                "invalid message",
                extra={"session": self.id, "code": event.code, "reason": event.message},
            )
            await self.outbound.send(encode_error(event.id, event.code, event.message))
        elif kind is Batch:
            assert isinstance(event, Batch)
            # Its own task: a slow element must not stop the read loop (pings, cancels).
            task = asyncio.get_running_loop().create_task(self._on_batch(event))
            if self._batches is None:
                self._batches = set()
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
        else:
            assert isinstance(event, Dropped)
            log.info("dropped a message", extra={"session": self.id, "reason": event.reason})

    async def _on_request(self, req: Request) -> None:
        entry = self._methods.get(req.method)
        if entry is not None and entry.inline and req.id is not None:
            await self.outbound.send(await self._call(req, entry))
            return
        response = self._admit(req, entry)
        if response is not None:
            await self.outbound.send(response)
            return
        assert entry is not None
        self._start(req, self._run(req, entry))

    def _admit(self, req: Request, entry: MethodEntry | None) -> bytes | None:
        """An error response if a task-run request cannot start now."""
        if entry is None:
            return self._reject(req, errors.MethodNotFound(f"method not found: {req.method}"))
        if req.id is None:
            return self._reject(
                req,
                errors.InvalidRequest(
                    "invalid request: id null is reserved for unreadable requests"
                ),
            )
        if req.id in self.running:
            return self._reject(
                req,
                errors.InvalidRequest(
                    f"invalid request: id {req.id!r} is already in use by a running request"
                ),
            )
        if len(self.running) >= self.config.max_running_requests:
            limit = self.config.max_running_requests
            return self._reject(
                req,
                errors.RateLimited(
                    100, f"too many running requests (limit {limit})", limit="maxRunningRequests"
                ),
            )
        return None

    def _reject(self, req: Request, exc: errors.YamabikoError) -> bytes:
        method = req.method if req.method in self._methods else "(unknown)"
        self.stats.record(method, ERROR, 0.0)
        return self._error(req.id, method, exc)

    def _error(self, request_id: Any, method: str, exc: errors.YamabikoError) -> bytes:
        """An error response, and its INFO line (code and reason; never params)."""
        code = errors.wire_code(exc)
        log.info(
            "request failed",
            extra={"session": self.id, "method": method, "code": code, "reason": exc.message},
        )
        return encode_error(request_id, code, exc.message, exc.data)

    async def _run(self, req: Request, entry: MethodEntry) -> None:
        response = await self._call(req, entry)
        # Answered: a cancel arriving while the response is written must find nothing.
        self.running.pop(req.id, None)  # type: ignore[arg-type]
        with contextlib.suppress(ConnectionError):
            await self.outbound.send(response)

    def _start(
        self, req: Request, coro: Coroutine[Any, Any, T], *, answer_cancel: bool = True
    ) -> asyncio.Task[T]:
        """Run a request as a task, kept by id so that it can be cancelled.

        ``answer_cancel``: send -32800 when cancelled (a batch answers in its array).
        """
        task = asyncio.get_running_loop().create_task(coro)
        request_id: int | str = req.id  # type: ignore[assignment]
        self.running[request_id] = task
        task.add_done_callback(partial(self._finished, request_id, answer_cancel))
        return task

    def _finished(
        self, request_id: int | str, answer_cancel: bool, task: asyncio.Task[Any]
    ) -> None:
        # A done callback rather than a finally: a task cancelled before its first step
        # never enters its own try blocks.
        self.running.pop(request_id, None)
        cancelled = self._cancelled
        if cancelled is not None and request_id in cancelled:
            cancelled.discard(request_id)
            if answer_cancel and task.cancelled() and self._state is not State.CLOSED:
                self.outbound.push(_cancelled_response(request_id))

    async def _call(self, req: Request, entry: MethodEntry) -> bytes:
        """Run one request to its response bytes. The exception boundary.

        Unknown methods never get here: ``_admit`` answers them.
        """
        started = time.perf_counter()
        method = req.method
        outcome = OK
        try:
            if self._state is State.NEW and method not in PRE_INIT_METHODS:
                raise errors.NotInitialized()
            scope = entry.scope
            if scope is not None and scope not in self.identity.scopes:
                raise errors.Forbidden(f"forbidden: method {method} needs scope {scope!r}")
            params = _decode_params(entry, req.params)
            if self.rate_limiter is not None and method not in RATE_EXEMPT:
                retry_after = await self.rate_limiter(self.identity, method)
                if retry_after:
                    self.stats.rate_limited += 1
                    raise errors.RateLimited(retry_after)
            result = await entry.handler(Context(self, req.id, params.meta), params)
            return encode_result(req.id, result)
        except errors.YamabikoError as exc:
            outcome = ERROR
            return self._error(req.id, method, exc)
        except asyncio.CancelledError:
            outcome = CANCELLED
            raise
        except Exception:
            outcome = ERROR
            error_id = uuid.uuid4().hex
            log.exception(
                "internal error",
                extra={"session": self.id, "method": method, "errorId": error_id},
            )
            return encode_error(
                req.id, errors.INTERNAL_ERROR, "internal error", {"errorId": error_id}
            )
        finally:
            elapsed = time.perf_counter() - started
            self.stats.record(method, outcome, elapsed)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "request",
                    extra={
                        "session": self.id,
                        "method": method,
                        "latencyMs": round(elapsed * 1000, 3),
                        "outcome": ("ok", "error", "cancelled")[outcome],
                        "traceparent": _traceparent(req),
                    },
                )

    async def _on_notification(self, note: Notification) -> None:
        entry = self._methods.get(note.method)
        if entry is None or not entry.schema.is_notification:
            log.debug(
                "unknown notification dropped", extra={"session": self.id, "method": note.method}
            )
            return
        if self._state is State.NEW and note.method != "notifications/initialized":
            log.debug(
                "notification before initialize dropped",
                extra={"session": self.id, "method": note.method},
            )
            return
        scope = entry.scope
        if scope is not None and scope not in self.identity.scopes:
            log.info(
                "notification refused: missing scope",
                extra={"session": self.id, "method": note.method, "reason": scope},
            )
            return
        try:
            # Charged before its params are read: a flood of bad ones costs its sender.
            within = await self._within_budget(note.method)
            params = _decode_params(entry, note.params)
            ctx = Context(self, None, params.meta)
            if not within:
                if entry.refused is not None:
                    entry.refused(ctx, params, "rate limited: too many messages")
                return
            await entry.handler(ctx, params)
        except errors.YamabikoError as exc:
            log.info(
                "notification refused",
                extra={"session": self.id, "method": note.method, "reason": exc.message},
            )
        except Exception:
            log.exception(
                "internal error in a notification handler",
                extra={"session": self.id, "method": note.method, "errorId": uuid.uuid4().hex},
            )

    async def _within_budget(self, method: str) -> bool:
        """Charge a notification to the rate budget; False (dropped, counted) if over.

        A limiter that cannot decide drops it too: the limits hold (fail closed), as
        for requests, which get -32603 then.
        """
        if self.rate_limiter is None or method in RATE_EXEMPT:
            return True
        try:
            if not await self.rate_limiter(self.identity, method):
                return True
        except errors.YamabikoError:
            log.warning(
                "rate limiter unavailable: notification dropped",
                extra={"session": self.id, "method": method},
            )
        self._dropped += 1
        self.stats.notifications_dropped += 1
        # Every power of two: a flood is visible in the log without writing a line per
        # message it sends.
        if self._dropped & (self._dropped - 1) == 0:
            log.info(
                "notification dropped: over the rate budget",
                extra={"session": self.id, "method": method, "count": self._dropped},
            )
        return False

    def _on_response(self, response: Response) -> None:
        # The peer has handed it to its waiter already: one table of our requests.
        log.debug("response to our request", extra={"session": self.id, "method": response.method})

    async def _on_batch(self, batch: Batch) -> None:
        """Answer a batch with one array: each element on its own, concurrently."""
        calls: list[tuple[int | str | None, Awaitable[bytes]]] = []
        parts: list[bytes] = []
        for item in batch.items:
            kind = type(item)
            if kind is Request:
                assert isinstance(item, Request)
                entry = self._methods.get(item.method)
                if entry is not None and entry.inline and item.id is not None:
                    calls.append((item.id, self._call(item, entry)))
                    continue
                rejected = self._admit(item, entry)
                if rejected is not None:
                    parts.append(rejected)
                else:
                    assert entry is not None
                    task = self._start(item, self._call(item, entry), answer_cancel=False)
                    calls.append((item.id, task))
            elif kind is Notification:
                assert isinstance(item, Notification)
                await self._on_notification(item)
            elif kind is Invalid:
                assert isinstance(item, Invalid)
                self.stats.invalid_messages += 1
                parts.append(encode_error(item.id, item.code, item.message))
            elif kind is Response:
                assert isinstance(item, Response)
                self._on_response(item)
        if calls:
            results = await asyncio.gather(*(c for _, c in calls), return_exceptions=True)
            for (request_id, _), result in zip(calls, results, strict=True):
                if isinstance(result, bytes):
                    parts.append(result)
                elif isinstance(result, asyncio.CancelledError):
                    parts.append(_cancelled_response(request_id))
                else:  # pragma: no cover - _call turns every exception into bytes
                    raise result
        if parts:
            with contextlib.suppress(ConnectionError):
                await self.outbound.send(encode_batch(parts))

    # Cancellation

    def cancel_request(self, request_id: int | str) -> bool:
        """Cancel a running request of the client; its response becomes -32800."""
        task = self.running.get(request_id)
        if task is None or task.done():
            return False
        if self._cancelled is None:
            self._cancelled = set()
        self._cancelled.add(request_id)
        task.cancel()
        return True

    # Outgoing

    def notify(self, method: str, params: Any) -> None:
        """Send a notification (queued, never dropped, never blocks)."""
        self.stats.notifications_sent += 1
        self.outbound.push(encode_notification(method, params))

    def notify_encoded(self, data: bytes) -> None:
        """Send a notification already encoded (one stream item shared by every
        subscriber is encoded once, by its producer)."""
        self.stats.notifications_sent += 1
        self.outbound.push(data)

    def notify_latest(self, key: Any, method: str, params: Any) -> None:
        """Send a notification that replaces a queued one with the same key."""
        self.stats.notifications_sent += 1
        self.outbound.replace(key, encode_notification(method, params))

    def notify_merged(self, key: Any, item: Mergeable) -> None:
        """Queue an item that merges into a queued one with the same key."""
        self.stats.notifications_sent += 1
        self.outbound.merge(key, item)

    async def send_binary(self, data: bytes) -> None:
        """Queue a binary frame; waits while the client is slow (never dropped)."""
        await self.outbound.push_wait(Binary(data))

    async def request(
        self, method: str, params: Any, result_type: type[T], *, timeout: float | None = None
    ) -> T:
        """Send a request to the client and wait for its result.

        Raises :class:`~yamabiko.protocol.errors.RemoteError` for an error response,
        :class:`~yamabiko.protocol.errors.RequestTimeout` when the client does not answer
        within ``timeout`` (default ``client_request_timeout_s``), and
        :class:`~yamabiko.protocol.errors.ConnectionClosed` when the connection is gone
        before the answer (or already was).
        """
        if self._state is State.CLOSED:
            raise errors.ConnectionClosed(self._close_code, local=self._close_code is not None)
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        request_id, data = self._peer.request(method, params, waiter)
        try:
            self.outbound.push(data)
            limit = self.config.client_request_timeout_s if timeout is None else timeout
            async with asyncio.timeout(limit):
                response = await waiter
        except TimeoutError:
            raise errors.RequestTimeout(f"the client did not answer {method} in time") from None
        finally:
            self._peer.forget(request_id)
        if response.error is not None:
            err = response.error
            raise errors.RemoteError(err.code, err.message, err.data)
        try:
            return msgspec.json.decode(response.result or b"null", type=result_type)
        except msgspec.ValidationError as exc:
            raise errors.InvalidParams(
                f"invalid result from the client for {method}: {exc}".replace("`", "")
            ) from None

    # Lifecycle

    @property
    def state(self) -> State:
        """Where the session is in its lifecycle; changed by :meth:`_transition` only."""
        return self._state

    def _transition(self, event: Event) -> State:
        """Move to the state the table allows for ``event``; raises
        :class:`~yamabiko.sessions.state.IllegalTransition` at once otherwise."""
        new = next_state(self._state, event)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "session state",
                extra={"session": self.id, "from": self._state.value, "to": new.value},
            )
        self._state = new
        return new

    def initialized(
        self, protocol_version: str | None, client_info: Any = None, capabilities: Any = None
    ) -> None:
        """The session is initialized (``initialize`` answered, or a face that
        negotiated it itself adopts it): NEW -> READY."""
        self._transition(Event.INITIALIZE)
        self.protocol_version = protocol_version
        self.client_info = client_info
        self.capabilities = capabilities

    def local(self, key: str, factory: Callable[[], T]) -> T:
        """State a handler namespace keeps per session (ghost documents...), made by
        ``factory`` on first use and closed with the session (its ``close()``, if it
        has one, is called once)."""
        state = self._local
        if state is None:
            state = self._local = {}
        value = state.get(key)
        if value is None:
            value = state[key] = factory()
        return value

    @property
    def subscriptions(self) -> Subscriptions:
        """The streams this session reads (made on first use: most sessions read none)."""
        subs = self._subscriptions
        if subs is None:
            subs = self._subscriptions = Subscriptions(self.config.max_subscriptions)
        return subs

    @property
    def closing(self) -> bool:
        """True once a close has been asked for."""
        return self._close_code is not None

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once when the session closes (release subscriptions...)."""
        self._on_close.append(callback)

    async def close(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` (the read loop then ends)."""
        if self._close_code is None:
            self._close_code = code
            self.stats.closed(code)
            if self._state is not State.CLOSED:
                self._transition(Event.CLOSE)
        with contextlib.suppress(ConnectionError):
            await self._transport.close(code, reason)

    def shutdown(self) -> None:
        """Stop everything the session runs; called once by the server when the
        connection is gone."""
        if self._state is State.CLOSED:
            return
        self._transition(Event.GONE)
        # Whoever waits on the client learns why: the typed outcome, not a cancel.
        waited = self._peer.fail_pending(
            errors.ConnectionClosed(self._close_code, local=self._close_code is not None)
        )
        self.outbound.close()
        if self._subscriptions is not None:
            self._subscriptions.close()
        for value in (self._local or {}).values():
            close = getattr(value, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("error closing session state", extra={"session": self.id})
        for task in [*self.running.values(), *(self._batches or ())]:
            if waited:
                # One step later: a task woken by that outcome sees it before the
                # cancel (which then stops whatever it awaits next).
                task.get_loop().call_soon(task.cancel)
            else:
                task.cancel()
        for callback in self._on_close:
            try:
                callback()
            except Exception:
                log.exception("error in a session close callback", extra={"session": self.id})

    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.identity.exp, UTC)


def _decode_params(entry: MethodEntry, params: bytes) -> Any:
    """The method's params, or -32602 naming the field: a wrong type, or a string
    holding U+0000 (no store keeps it alike, see :mod:`yamabiko.protocol.strings`)."""
    try:
        decoded = entry.decode(params)
    except msgspec.ValidationError as exc:
        raise errors.InvalidParams(str(exc).replace("`", "")) from None
    path = nul_path(params)
    if path is not None:
        raise errors.InvalidParams(f"a string cannot contain the NUL character - at {path}")
    return decoded


def _cancelled_response(request_id: int | str | None) -> bytes:
    return encode_error(request_id, errors.REQUEST_CANCELLED, "request cancelled")


def _traceparent(req: Request) -> str | None:
    # Only looked at when DEBUG logging is on: the params are not decoded twice otherwise.
    if b"traceparent" not in req.params:
        return None
    try:
        meta = msgspec.json.decode(req.params, type=_MetaOnly).meta
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return meta.traceparent if meta is not None else None


class _MetaOnly(msgspec.Struct):
    meta: RequestMeta | None = msgspec.field(default=None, name="_meta")

"""Streams and the brokers that carry them (docs/streams.md).

A stream is an ordered sequence of items numbered ``seq`` = 1, 2, 3... under a stream id.
Each item is an opaque ``payload`` with a ``kind`` (``delta``, ``error``, ``end``,
``frame``...): the broker never looks inside. One producer (the node running the
generation) creates the stream, publishes into it and ends it; any number of
subscribers, on any node, read it from any point still in its history.

Theory of operation. A broker keeps, per stream, its history (the newest items, at most
``max_items``), its status (``live`` until the producer calls :meth:`Broker.end`, then
``ended``) and ``last_seq``. A subscription is a *cursor* into that history, not a copy
of it: it remembers the last seq it handed out and reads the next one from the history
when asked, waiting only when it has caught up with the producer. So

- the producer never waits for a subscriber, and a subscriber that stops reading costs
  nothing but its cursor: there is no per-subscription queue to fill up;
- replay and live delivery are the same read ("the item after my cursor"), so there is
  no hand-over between them where an item could be lost or repeated;
- a subscriber falls out of its stream only when the history has been trimmed under its
  cursor: it fell ``max_items`` behind. Its iteration then raises :class:`Lagged`.

The consumer (the session) applies its own flow control on top (merging text deltas for
a slow client, docs/protocol.md, Flow control); it reads its subscriptions promptly into its own
bounded queue, so lagging out of a 10,000-item history means its task was stalled.

Errors, drawn once::

    StreamNotFound (-32004)     unknown stream, past its retention, or abandoned
    StreamExists (-32009)       create() with an id already in use
    StreamEnded (-32009)        publish() or end() after end()
    SeqOutOfRange (-32602)      afterSeq < 0, or beyond the stream's lastSeq
    StreamGap (-32602)          afterSeq older than the history kept (data.firstSeq)
    └── Lagged                  raised by a subscription that fell behind the history
    BrokerUnavailable (-32603)  the broker is closed, or its backend (Redis) failed

:class:`MemoryBroker` (here) serves one node; :class:`~yamabiko.store.redis_broker.RedisBroker`
serves many, through Redis Streams.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Literal, Protocol

import msgspec

from yamabiko.protocol.errors import Conflict, InternalError, InvalidParams, NotFound

DEFAULT_RETENTION_S = 600.0
"""How long an ended stream's history is kept (docs/streams.md, Streams: 10 minutes)."""
DEFAULT_MAX_ITEMS = 10_000
"""Items kept per stream; older ones are trimmed (docs/streams.md)."""
DEFAULT_IDLE_TIMEOUT_S = 600.0
"""A live stream with no item for this long is abandoned (its producer died) and dropped."""

StreamStatus = Literal["live", "ended"]


class StreamItem(msgspec.Struct, frozen=True, gc=False):
    """One item of a stream. ``payload`` is whatever the producer published."""

    seq: int
    kind: str
    payload: bytes


class StreamInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A stream's state. ``first_seq`` is the oldest seq still in history
    (``last_seq + 1`` when none is); the owner is who may read it."""

    stream_id: str
    status: StreamStatus
    first_seq: int
    last_seq: int
    owner_tenant: str
    owner_user: str
    producer_lost: bool = False
    """Live, but the node producing it stopped renewing its lease (it died): the stream
    will never end by itself. Whoever sees this ends it as failed (see
    :meth:`Broker.claim`). Always False on one node, where producer and broker die
    together."""


LostHandler = Callable[[str], Awaitable[None]]
"""Called with the id of a stream whose producer was lost (see :meth:`Broker.on_lost`)."""


# -- errors ---------------------------------------------------------------------------


class StreamNotFound(NotFound):
    default_message = "stream not found (unknown, or past its retention window)"


class StreamExists(Conflict):
    default_message = "a stream with this id already exists"


class StreamEnded(Conflict):
    default_message = "the stream has ended"


class SeqOutOfRange(InvalidParams):
    default_message = "afterSeq is out of range"


class StreamGap(InvalidParams):
    """Items the caller asked for are no longer kept: everything before ``first_seq`` has
    been trimmed. Nothing is ever skipped silently: the caller decides (tell the client,
    or resubscribe with ``after_seq = first_seq - 1`` accepting the gap)."""

    def __init__(self, *, after_seq: int, first_seq: int, message: str | None = None) -> None:
        super().__init__(
            message
            or f"stream history starts at seq {first_seq}: items {after_seq + 1}.."
            f"{first_seq - 1} are no longer kept",
            {"afterSeq": after_seq, "firstSeq": first_seq},
        )
        self.after_seq = after_seq
        self.first_seq = first_seq


class Lagged(StreamGap):
    """Raised by a subscription's iteration when its reader fell so far behind that the
    history was trimmed under its cursor (``after_seq`` is the last item it handed out).
    Items up to ``after_seq`` were delivered exactly once; the ones before ``first_seq``
    are gone."""


class BrokerUnavailable(InternalError):
    default_message = "the stream broker is unavailable"


# -- the interfaces -------------------------------------------------------------------


class Subscription(Protocol):
    """One reader's cursor on one stream: an async iterator of :class:`StreamItem`.

    Guarantees: it yields every item with ``seq > after_seq`` exactly once, in seq order,
    with no gap (replayed from history, then live, without a seam). Iteration stops
    (``StopAsyncIteration``) after the item that ended the stream, or once :meth:`close`
    has been called (also from another task: a pending ``__anext__`` returns at once).
    It raises :class:`Lagged` if the history was trimmed under the cursor,
    :class:`StreamNotFound` if the stream was abandoned (its producer vanished without
    ending it) and :class:`BrokerUnavailable` if the broker closed or its backend
    failed; in every case :attr:`last_seq` is where to resume. Always close it (or use
    ``async with``): on Redis an open subscription keeps its stream's reader running.
    """

    @property
    def info(self) -> StreamInfo:
        """The stream as it was when subscribed (what ``stream/subscribe`` answers)."""
        ...

    @property
    def last_seq(self) -> int:
        """The seq of the last item handed out (``after_seq`` before the first)."""
        ...

    def __aiter__(self) -> Subscription: ...

    async def __anext__(self) -> StreamItem: ...

    async def close(self) -> None:
        """Stop reading; idempotent."""
        ...

    async def __aenter__(self) -> Subscription: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Broker(Protocol):
    """Carries streams from their producer to their subscribers.

    Delivery guarantees:

    - **Order and numbering**: ``publish`` assigns seq ``last_seq + 1`` and returns it;
      seqs are contiguous from 1. One producer per stream: only the node running the
      generation publishes (a second one would interleave, never corrupt).
    - **Exactly once per subscription**: a subscription with ``after_seq = k`` yields
      ``k+1, k+2, ...`` each once, in order, from history then live, with no gap and no
      duplicate, even while items are being published, and on any node (Redis).
    - **History**: each stream keeps its newest ``max_items`` items (10,000; on Redis
      ``MAXLEN ~``, so a little more); the whole stream is dropped ``retention_s``
      (10 min) after it ends, or after ``idle_timeout_s`` without an item while live
      (its producer died). Asking for trimmed items raises :class:`StreamGap`; a
      subscriber that falls behind the trimming gets :class:`Lagged`: never a silent
      gap.
    - **Slow subscribers**: the producer never waits for a subscriber, and one
      subscriber never waits for another. A subscription holds no queue of its own
      (see the module docstring): its reader may pause for as long as its next item is
      in history, then carries on where it stopped.
    - ``info`` and ``subscribe`` see every item whose ``publish`` has returned.
    """

    async def create(self, stream_id: str, *, owner_tenant: str, owner_user: str) -> None:
        """Start a live, empty stream. Raises :class:`StreamExists` if the id is taken."""
        ...

    async def publish(self, stream_id: str, kind: str, payload: bytes) -> int:
        """Append an item; returns its seq. Raises :class:`StreamNotFound`,
        :class:`StreamEnded`."""
        ...

    async def end(self, stream_id: str, kind: str = "end", payload: bytes = b"") -> int:
        """Append the final item and mark the stream ended, atomically; returns the final
        item's seq. Subscriptions stop after it; the retention timer starts."""
        ...

    async def info(self, stream_id: str) -> StreamInfo | None:
        """The stream's state, or None if unknown or expired (handlers authorize
        subscribers against its owner)."""
        ...

    async def subscribe(self, stream_id: str, after_seq: int = 0) -> Subscription:
        """Start reading after ``after_seq``. Raises :class:`StreamNotFound`,
        :class:`SeqOutOfRange` (negative, or beyond ``last_seq``: the caller cannot have
        seen it) or :class:`StreamGap` (history before ``after_seq + 1`` is gone)."""
        ...

    async def ping(self) -> None:
        """Returns when the broker can serve (``/health/ready``); raises otherwise."""
        ...

    async def claim(self, stream_id: str) -> bool:
        """Become the producer of a live stream whose producer was lost
        (``info.producer_lost``), to end it; True for exactly one caller across nodes,
        who then publishes and ends it like its own, within one lease (the claim is
        not renewed: a claimant that fails loses it to the next). False if the stream
        is gone, ended, or still has its producer."""
        ...

    def on_lost(self, handler: LostHandler) -> None:
        """Have ``handler`` called (in a task of its own) when this node's reader of a
        live stream finds its producer's lease lapsed; without one, its subscriptions
        raise :class:`StreamNotFound` as for an abandoned stream."""
        ...

    async def close(self) -> None:
        """Stop: later calls raise :class:`BrokerUnavailable`, and so do subscriptions
        waiting for items that will now never come. Idempotent."""
        ...


# -- building blocks shared by the implementations ------------------------------------


def check_after_seq(info: StreamInfo, after_seq: int) -> None:
    """Raise if a subscription after ``after_seq`` cannot be served exactly."""
    if after_seq < 0:
        raise SeqOutOfRange("afterSeq must be 0 or more", {"afterSeq": after_seq})
    if after_seq > info.last_seq:
        raise SeqOutOfRange(
            f"afterSeq {after_seq} is beyond the stream's lastSeq {info.last_seq}",
            {"afterSeq": after_seq, "lastSeq": info.last_seq},
        )
    if after_seq < info.first_seq - 1:
        raise StreamGap(after_seq=after_seq, first_seq=info.first_seq)


ErrorFactory = Callable[[], Exception]


class Tail:
    """The newest items of one stream on this node, contiguous in seq, and the readers
    waiting for more. The memory broker's history is a tail; on Redis, each node keeps a
    short tail per stream it reads, filled by one reader task.

    ``error`` (a factory: each reader raises its own instance) is raised to readers that
    have read everything before it.
    """

    __slots__ = ("_loop", "_waiters", "end_seq", "error", "items", "last_seq")

    def __init__(self, max_items: int, last_seq: int = 0) -> None:
        self.items: deque[StreamItem] = deque(maxlen=max_items)
        self.last_seq = last_seq
        self.end_seq: int | None = None
        self.error: ErrorFactory | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def first_seq(self) -> int:
        return self.last_seq - len(self.items) + 1

    def append(self, item: StreamItem) -> None:
        """Add the next item (``item.seq == last_seq + 1``); call :meth:`wake` after a batch."""
        self.items.append(item)
        self.last_seq = item.seq

    def restart(self, last_seq: int) -> None:
        """Forget the items held: the next one will be ``last_seq + 1`` (items in between
        were trimmed upstream before this tail saw them)."""
        self.items.clear()
        self.last_seq = last_seq

    def fail(self, error: ErrorFactory) -> None:
        if self.error is None and self.end_seq is None:
            self.error = error
        self.wake()

    def wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        _wake(waiters, 0)

    def waiter(self) -> asyncio.Future[None]:
        loop = self._loop
        if loop is None:
            # Cached: get_running_loop() costs a getpid() system call each time.
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.append(future)
        return future


_WAKE_AT_ONCE = 128
"""Readers of one stream woken in one turn of the event loop. A thousand subscribers
of a stream would otherwise all run, and each write to its socket, before any other
session is served: another tenant's ``ping`` waited over a second behind 2,000 of them
on two loaded cores. In turns of 128 the other sessions' messages are read and answered
between turns, and the subscribers still get each item within milliseconds."""


def _wake(waiters: list[asyncio.Future[None]], start: int) -> None:
    end = start + _WAKE_AT_ONCE
    for waiter in waiters[start:end]:
        if not waiter.done():
            waiter.set_result(None)
    if end < len(waiters):
        asyncio.get_running_loop().call_soon(_wake, waiters, end)


class TailSubscription:
    """A :class:`Subscription` reading a :class:`Tail`, with items older than the tail
    fetched by :meth:`_fetch` (which implementations override; by default the items are
    gone and the subscription has lagged).

    ``tail`` may be None for a stream that had already ended when subscribed: then
    everything comes from :meth:`_fetch`, up to ``info.last_seq``.
    """

    def __init__(self, info: StreamInfo, after_seq: int, tail: Tail | None) -> None:
        self._info = info
        self._last = after_seq
        self._tail = tail
        self._end_seq: int | None = info.last_seq if info.status == "ended" else None
        self._page: deque[StreamItem] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def info(self) -> StreamInfo:
        return self._info

    @property
    def last_seq(self) -> int:
        return self._last

    def __aiter__(self) -> TailSubscription:
        return self

    async def __anext__(self) -> StreamItem:
        while True:
            if self._closed:
                raise StopAsyncIteration
            seq = self._last + 1
            tail = self._tail
            end_seq = self._end_seq
            if end_seq is None and tail is not None:
                end_seq = tail.end_seq
            if end_seq is not None and seq > end_seq:
                self._finish()
                raise StopAsyncIteration
            if self._page:
                item = self._page.popleft()
                self._last = item.seq
                return item
            if tail is not None and seq >= tail.first_seq:
                if seq <= tail.last_seq:
                    item = tail.items[seq - tail.first_seq]
                    self._last = seq
                    return item
                if tail.error is not None:
                    self._finish()
                    raise tail.error()
                await self._wait(tail)
                continue
            # Older than the tail: from history, up to where the tail starts.
            upper = tail.first_seq - 1 if tail is not None else end_seq
            assert upper is not None
            assert upper >= seq
            try:
                self._page.extend(await self._fetch(seq, upper))
            except Exception:
                self._finish()
                raise

    async def _wait(self, tail: Tail) -> None:
        waiter = self._waiter = tail.waiter()
        try:
            await waiter
        finally:
            self._waiter = None

    async def _fetch(self, first: int, last: int) -> list[StreamItem]:
        """Items ``first..last`` (at least ``first``), or raise :class:`Lagged`."""
        tail = self._tail
        raise Lagged(after_seq=first - 1, first_seq=tail.first_seq if tail else last + 1)

    def _finish(self) -> None:
        """Stop reading: called once iteration is over, and by :meth:`close`."""
        self._closed = True
        self._page.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def close(self) -> None:
        self._finish()

    async def __aenter__(self) -> TailSubscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# -- in process -----------------------------------------------------------------------


class _MemoryStream:
    __slots__ = ("deadline", "owner_tenant", "owner_user", "stream_id", "tail")

    def __init__(self, stream_id: str, owner_tenant: str, owner_user: str, tail: Tail) -> None:
        self.stream_id = stream_id
        self.owner_tenant = owner_tenant
        self.owner_user = owner_user
        self.tail = tail
        self.deadline = 0.0

    def info(self) -> StreamInfo:
        tail = self.tail
        return StreamInfo(
            stream_id=self.stream_id,
            status="live" if tail.end_seq is None else "ended",
            first_seq=tail.first_seq,
            last_seq=tail.last_seq,
            owner_tenant=self.owner_tenant,
            owner_user=self.owner_user,
        )


def _closed_error() -> Exception:
    return BrokerUnavailable("the stream broker is closed")


def _abandoned_error() -> Exception:
    return StreamNotFound("the stream was abandoned: its producer stopped without ending it")


class MemoryBroker:
    """The in-process broker: the default for one node. Each stream's history is a
    :class:`Tail` of ``max_items``; subscriptions are cursors into it. Everything runs
    on the event loop, so no locks. Expired streams are dropped when touched and by a
    sweep at most once per ``prune_interval_s`` of ``clock`` during other calls (an idle
    broker holds what it held, and gains nothing).
    """

    def __init__(
        self,
        *,
        retention_s: float = DEFAULT_RETENTION_S,
        max_items: int = DEFAULT_MAX_ITEMS,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        prune_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.retention_s = retention_s
        self.max_items = max_items
        self.idle_timeout_s = idle_timeout_s
        self._prune_interval_s = prune_interval_s
        self._clock = clock
        self._streams: dict[str, _MemoryStream] = {}
        self._next_prune = 0.0
        self._closed = False

    async def create(self, stream_id: str, *, owner_tenant: str, owner_user: str) -> None:
        now = self._now()
        if self._get(stream_id, now) is not None:
            raise StreamExists()
        stream = _MemoryStream(stream_id, owner_tenant, owner_user, Tail(self.max_items))
        stream.deadline = now + self.idle_timeout_s
        self._streams[stream_id] = stream

    async def publish(self, stream_id: str, kind: str, payload: bytes) -> int:
        return self._append(stream_id, kind, payload, final=False)

    async def end(self, stream_id: str, kind: str = "end", payload: bytes = b"") -> int:
        return self._append(stream_id, kind, payload, final=True)

    def _append(self, stream_id: str, kind: str, payload: bytes, *, final: bool) -> int:
        now = self._now()
        stream = self._get(stream_id, now)
        if stream is None:
            raise StreamNotFound()
        tail = stream.tail
        if tail.end_seq is not None:
            raise StreamEnded()
        seq = tail.last_seq + 1
        tail.append(StreamItem(seq, kind, payload))
        if final:
            tail.end_seq = seq
            stream.deadline = now + self.retention_s
        else:
            stream.deadline = now + self.idle_timeout_s
        tail.wake()
        return seq

    async def info(self, stream_id: str) -> StreamInfo | None:
        stream = self._get(stream_id, self._now())
        return None if stream is None else stream.info()

    async def subscribe(self, stream_id: str, after_seq: int = 0) -> Subscription:
        stream = self._get(stream_id, self._now())
        if stream is None:
            raise StreamNotFound()
        info = stream.info()
        check_after_seq(info, after_seq)
        return TailSubscription(info, after_seq, stream.tail)

    async def ping(self) -> None:
        if self._closed:
            raise _closed_error()

    async def claim(self, stream_id: str) -> bool:
        # One process produces and brokers: a producer is never lost without its broker.
        return False

    def on_lost(self, handler: LostHandler) -> None:
        pass

    async def close(self) -> None:
        self._closed = True
        for stream in self._streams.values():
            stream.tail.fail(_closed_error)
        self._streams.clear()

    def _now(self) -> float:
        if self._closed:
            raise _closed_error()
        now = self._clock()
        if now >= self._next_prune:
            self._next_prune = now + self._prune_interval_s
            for stream in [s for s in self._streams.values() if now >= s.deadline]:
                self._drop(stream)
        return now

    def _get(self, stream_id: str, now: float) -> _MemoryStream | None:
        stream = self._streams.get(stream_id)
        if stream is not None and now >= stream.deadline:
            self._drop(stream)
            return None
        return stream

    def _drop(self, stream: _MemoryStream) -> None:
        del self._streams[stream.stream_id]
        # Readers of an ended stream finish reading what they hold; a live one's wait.
        stream.tail.fail(_abandoned_error)

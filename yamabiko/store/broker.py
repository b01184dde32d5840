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

Memory. History costs memory for as long as it is kept, so a node bounds it three ways
(docs/streams.md, "Retention"): per stream (``max_items``), in time (``retention_s`` after
the end; ``audio_retention_s`` for audio streams, whose frames weigh far more than text
deltas) and node-wide (``history_bytes``: past it, the streams that ended first are
evicted first; live streams are never evicted, since their producer still writes). An
ended stream's items are packed into one ``bytes`` (payloads back to back), one offset
array and one kind code per item: a few objects per stream, none per item, none of them
walked by the garbage collector. Live items are :class:`StreamItem` structs, which the
collector does not track either. A stream whose history is gone (evicted, or past its
retention) leaves a small record behind for another ``retention_s`` so that a resume
answers :class:`StreamExpired` with the last seq there was, rather than "unknown".

Errors, drawn once::

    StreamNotFound (-32004)     unknown stream, past its retention, or abandoned
    └── StreamExpired           its history was evicted or expired (data.reason, lastSeq)
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
from array import array
from collections import OrderedDict, deque
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
DEFAULT_AUDIO_RETENTION_S = 120.0
"""How long an ended audio stream's frames are kept: long enough for a client to
reconnect and resume (docs/streams.md, "Retention")."""
DEFAULT_HISTORY_BYTES = 32 << 20
"""The node-wide budget of retained history (memory broker), in bytes."""
MAX_EXPIRED_RECORDS = 100_000
"""Streams remembered as expired at once (about 150 bytes each); the oldest go first."""
ITEM_OVERHEAD_BYTES = 120
"""What a live item costs beyond its payload: the struct, its seq and its bytes header."""
PACKED_OVERHEAD_BYTES = 5
"""What a packed item costs beyond its payload: its end offset and its kind code."""

StreamStatus = Literal["live", "ended"]
StreamKind = Literal["text", "audio"]
"""What a stream carries, which decides its retention: text deltas or audio frames."""


class StreamItem(msgspec.Struct, frozen=True, gc=False):
    """One item of a stream. ``payload`` is whatever the producer published."""

    seq: int
    kind: str
    payload: bytes


class ExpiredStream(msgspec.Struct, frozen=True, gc=False):
    """What is remembered of a stream whose history is gone: enough to authorize the
    asker (the owner) and to tell it where the stream had got to."""

    stream_id: str
    last_seq: int
    owner_tenant: str
    owner_user: str
    until: float = 0.0
    """When this record itself is forgotten (the broker's clock)."""


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


class StreamExpired(StreamNotFound):
    """The stream existed, but its history is no longer kept: evicted for the node's
    byte budget, or past its retention. ``data: {reason: "expired", lastSeq}``; nothing
    can be resumed (docs/streams.md, "Retention")."""

    def __init__(self, stream_id: str, last_seq: int) -> None:
        super().__init__(
            f"stream {stream_id} has expired: its history is no longer kept",
            {"reason": "expired", "lastSeq": last_seq},
        )
        self.last_seq = last_seq


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

    async def create(
        self, stream_id: str, *, owner_tenant: str, owner_user: str, kind: StreamKind = "text"
    ) -> None:
        """Start a live, empty stream. Raises :class:`StreamExists` if the id is taken.
        ``kind`` picks its retention once ended (``audio``: ``audio_retention_s``)."""
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

    async def expired(self, stream_id: str) -> ExpiredStream | None:
        """What is left of a stream whose history is gone (evicted or past its
        retention), for a while (see :class:`StreamExpired`); None otherwise."""
        ...

    async def subscribe(self, stream_id: str, after_seq: int = 0) -> Subscription:
        """Start reading after ``after_seq``. Raises :class:`StreamNotFound`
        (:class:`StreamExpired` when its history is gone), :class:`SeqOutOfRange`
        (negative, or beyond ``last_seq``: the caller cannot have seen it) or
        :class:`StreamGap` (history before ``after_seq + 1`` is gone)."""
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


_KINDS: list[str] = []
_KIND_CODES: dict[str, int] = {}


def _kind_code(kind: str) -> int:
    """A kind's one-byte code in packed history (kinds are the server's own few names)."""
    code = _KIND_CODES.get(kind)
    if code is None:
        if len(_KINDS) >= 256:
            raise ValueError("more than 256 stream item kinds")
        code = _KIND_CODES[kind] = len(_KINDS)
        _KINDS.append(kind)
    return code


class PackedItems:
    """Items ``first_seq..`` of an ended stream in three flat objects: the payloads back
    to back, where each ends, and each one's kind code. Nothing per item is kept as an
    object; :meth:`get` makes the :class:`StreamItem` a reader asks for."""

    __slots__ = ("blob", "ends", "first_seq", "kinds")

    def __init__(self, items: deque[StreamItem]) -> None:
        self.first_seq = items[0].seq if items else 0
        self.blob = b"".join([item.payload for item in items])
        ends = array("I")
        offset = 0
        for item in items:
            offset += len(item.payload)
            ends.append(offset)
        self.ends = ends
        self.kinds = bytes([_kind_code(item.kind) for item in items])

    def __len__(self) -> int:
        return len(self.kinds)

    @property
    def nbytes(self) -> int:
        return len(self.blob) + len(self.kinds) * PACKED_OVERHEAD_BYTES

    def get(self, index: int) -> StreamItem:
        ends = self.ends
        start = ends[index - 1] if index else 0
        return StreamItem(
            self.first_seq + index, _KINDS[self.kinds[index]], self.blob[start : ends[index]]
        )


class Tail:
    """The newest items of one stream on this node, contiguous in seq, and the readers
    waiting for more. The memory broker's history is a tail; on Redis, each node keeps a
    short tail per stream it reads, filled by one reader task.

    ``error`` (a factory: each reader raises its own instance) is raised to readers that
    have read everything before it. Once the stream has ended, :meth:`seal` packs the
    items (:class:`PackedItems`); read them with :meth:`get` either way.
    """

    __slots__ = ("_loop", "_waiters", "end_seq", "error", "items", "last_seq", "nbytes", "packed")

    def __init__(self, max_items: int, last_seq: int = 0) -> None:
        self.items: deque[StreamItem] = deque(maxlen=max_items)
        self.packed: PackedItems | None = None
        self.last_seq = last_seq
        self.nbytes = 0
        """What the items held cost, roughly (payloads plus per-item overhead)."""
        self.end_seq: int | None = None
        self.error: ErrorFactory | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def first_seq(self) -> int:
        held = len(self.items) if self.packed is None else len(self.packed)
        return self.last_seq - held + 1

    def get(self, seq: int) -> StreamItem:
        """The item ``seq``, which must be held (``first_seq <= seq <= last_seq``)."""
        index = seq - self.first_seq
        packed = self.packed
        return self.items[index] if packed is None else packed.get(index)

    def append(self, item: StreamItem) -> None:
        """Add the next item (``item.seq == last_seq + 1``); call :meth:`wake` after a batch."""
        items = self.items
        if len(items) == items.maxlen:
            self.nbytes -= len(items[0].payload) + ITEM_OVERHEAD_BYTES
        items.append(item)
        self.nbytes += len(item.payload) + ITEM_OVERHEAD_BYTES
        self.last_seq = item.seq

    def seal(self) -> None:
        """Pack the items: the stream has ended, nothing will be appended."""
        if self.packed is None:
            self.packed = PackedItems(self.items)
            self.items.clear()
            self.nbytes = self.packed.nbytes

    def restart(self, last_seq: int) -> None:
        """Forget the items held: the next one will be ``last_seq + 1`` (items in between
        were trimmed upstream before this tail saw them)."""
        self.items.clear()
        self.nbytes = 0
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
                    item = tail.get(seq)
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
    __slots__ = ("deadline", "kind", "owner_tenant", "owner_user", "stream_id", "tail")

    def __init__(
        self, stream_id: str, owner_tenant: str, owner_user: str, kind: StreamKind, tail: Tail
    ) -> None:
        self.stream_id = stream_id
        self.owner_tenant = owner_tenant
        self.owner_user = owner_user
        self.kind = kind
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
    :class:`Tail` of ``max_items``, packed when the stream ends; subscriptions are
    cursors into it. Everything runs on the event loop, so no locks.

    Memory is bounded (see the module docstring): past ``history_bytes`` of history in
    all, the ended streams are evicted in the order they ended; ended streams are
    dropped ``retention_s`` after their end (``audio_retention_s`` for audio), live
    ones after ``idle_timeout_s`` without an item. Expired streams are dropped when
    touched and by a sweep at most once per ``prune_interval_s`` of ``clock`` during
    other calls (an idle broker holds what it held, and gains nothing).
    """

    def __init__(
        self,
        *,
        retention_s: float = DEFAULT_RETENTION_S,
        audio_retention_s: float = DEFAULT_AUDIO_RETENTION_S,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
        max_items: int = DEFAULT_MAX_ITEMS,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        prune_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.retention_s = retention_s
        self.audio_retention_s = audio_retention_s
        self.history_bytes = history_bytes
        self.max_items = max_items
        self.idle_timeout_s = idle_timeout_s
        self._prune_interval_s = prune_interval_s
        self._clock = clock
        self._streams: dict[str, _MemoryStream] = {}
        # Ended streams in the order they ended: the first is evicted first. Ordered
        # dicts (their first entry is one link away), because a plain dict emptied from
        # the front makes each look at its first entry skip every slot deleted before.
        self._ended: OrderedDict[str, _MemoryStream] = OrderedDict()
        self._expired: OrderedDict[str, ExpiredStream] = OrderedDict()
        self._bytes = 0
        self._next_prune = 0.0
        self._closed = False
        self.evicted = 0
        """Streams evicted for the byte budget so far."""

    @property
    def retained_bytes(self) -> int:
        """What the history of every stream held costs now, roughly."""
        return self._bytes

    @property
    def streams(self) -> int:
        """Streams held (live and ended)."""
        return len(self._streams)

    async def create(
        self, stream_id: str, *, owner_tenant: str, owner_user: str, kind: StreamKind = "text"
    ) -> None:
        now = self._now()
        if self._get(stream_id, now) is not None:
            raise StreamExists()
        self._expired.pop(stream_id, None)
        stream = _MemoryStream(stream_id, owner_tenant, owner_user, kind, Tail(self.max_items))
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
        before = tail.nbytes
        tail.append(StreamItem(seq, kind, payload))
        if final:
            tail.end_seq = seq
            tail.seal()
            retention = self.audio_retention_s if stream.kind == "audio" else self.retention_s
            stream.deadline = now + retention
            self._ended[stream_id] = stream
        else:
            stream.deadline = now + self.idle_timeout_s
        self._bytes += tail.nbytes - before
        tail.wake()
        if self._bytes > self.history_bytes:
            self._evict(now)
        return seq

    async def info(self, stream_id: str) -> StreamInfo | None:
        stream = self._get(stream_id, self._now())
        return None if stream is None else stream.info()

    async def expired(self, stream_id: str) -> ExpiredStream | None:
        now = self._now()
        record = self._expired.get(stream_id)
        return None if record is None or now >= record.until else record

    async def subscribe(self, stream_id: str, after_seq: int = 0) -> Subscription:
        now = self._now()
        stream = self._get(stream_id, now)
        if stream is None:
            record = self._expired.get(stream_id)
            if record is not None and now < record.until:
                raise StreamExpired(stream_id, record.last_seq)
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
        self._ended.clear()
        self._expired.clear()
        self._bytes = 0

    def _now(self) -> float:
        if self._closed:
            raise _closed_error()
        now = self._clock()
        if now >= self._next_prune:
            self._next_prune = now + self._prune_interval_s
            for stream in [s for s in self._streams.values() if now >= s.deadline]:
                self._drop(stream, now)
            expired = self._expired
            while expired:
                record = next(iter(expired.values()))
                if now < record.until:
                    break
                del expired[record.stream_id]
        return now

    def _get(self, stream_id: str, now: float) -> _MemoryStream | None:
        stream = self._streams.get(stream_id)
        if stream is not None and now >= stream.deadline:
            self._drop(stream, now)
            return None
        return stream

    def _evict(self, now: float) -> None:
        """Drop ended streams, the first ended first, until the history fits the budget
        (live streams stay: their producer is still writing)."""
        ended = self._ended
        while self._bytes > self.history_bytes and ended:
            self._drop(next(iter(ended.values())), now)
            self.evicted += 1

    def _drop(self, stream: _MemoryStream, now: float) -> None:
        del self._streams[stream.stream_id]
        self._bytes -= stream.tail.nbytes
        if self._ended.pop(stream.stream_id, None) is not None:
            # Remembered, so that a resume hears "expired" rather than "unknown".
            expired = self._expired
            while len(expired) >= MAX_EXPIRED_RECORDS:
                expired.popitem(last=False)
            expired[stream.stream_id] = ExpiredStream(
                stream.stream_id,
                stream.tail.last_seq,
                stream.owner_tenant,
                stream.owner_user,
                until=now + self.retention_s,
            )
        # Readers of an ended stream finish reading what they hold; a live one's wait.
        stream.tail.fail(_abandoned_error)

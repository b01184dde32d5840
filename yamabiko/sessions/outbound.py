"""The bounded outbound queue of one session and its flow-control policies.

Theory of operation
-------------------
Everything a session sends passes through one :class:`Outbound`, in order. When the
queue is empty and nothing is being written, :meth:`Outbound.send` writes straight to
the transport (the common case costs no task switch); otherwise messages wait in a
deque drained by a writer task that exists only while there is a backlog.

The queue is bounded in bytes, and each kind of message has a policy
(docs/protocol.md, Flow control) for when the client reads slowly:

=============  =============================  ========================================
policy         used for                       when the client is slow
=============  =============================  ========================================
``send``       responses                      the caller waits for room (the session
                                              stops reading requests: backpressure)
``push``       notifications, requests        queued; never dropped
``replace``    ghost suggestions (per doc)    a queued older item with the same key
                                              is replaced by the newest
``merge``      text deltas (per stream)       merged into the queued item with the
                                              same key (``Mergeable.merge``); not
                                              while the client keeps up
``push_wait``  audio frames                   the producer waits until the queue is
                                              below half its bound; never dropped
=============  =============================  ========================================

A write that has not completed for ``slow_consumer_s`` means the client reads nothing;
:meth:`Outbound.stalled_for` lets the session's sweeper close it with 4008.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Hashable
from typing import Protocol

from yamabiko.sessions.transport import Transport


class Mergeable(Protocol):
    """A queued item that a newer one can be folded into (a text delta)."""

    def merge(self, newer: Mergeable) -> Mergeable:
        """One item equivalent to self followed by ``newer``."""
        ...

    def encode(self) -> bytes: ...

    @property
    def size(self) -> int: ...


class _Keyed:
    """A queue slot that later items with the same key may replace or merge into."""

    __slots__ = ("item", "key", "size")

    def __init__(self, key: Hashable, item: Mergeable | bytes | None) -> None:
        self.key = key
        self.item = item
        self.size = 0 if item is None else len(item) if isinstance(item, bytes) else item.size


MERGE_ABOVE_BYTES = 64 * 1024
"""A backlog this large merges deltas even before the socket pushes back (a replay of
a long stream, read from history in one go)."""

_EMPTY: deque[bytes | _Keyed] = deque(maxlen=0)
"""The shared empty queue of every idle session; never appended to (``_queue``)."""


class Binary(bytes):
    """A payload to send as a binary frame."""

    __slots__ = ()


class Outbound:
    """One session's ordered, bounded, policy-aware outbound queue."""

    __slots__ = (
        "__weakref__", "_busy", "_busy_since", "_closed", "_entries", "_keyed", "_loop", "_room",
        "_size", "_transport", "_writer", "max_bytes", "merged", "replaced", "sent",
    )  # fmt: skip

    def __init__(self, transport: Transport, *, max_bytes: int) -> None:
        self._transport = transport
        self.max_bytes = max_bytes
        # An empty deque is 760 bytes: shared until the first message must wait, so an
        # idle connection carries none (most never queue anything).
        self._entries: deque[bytes | _Keyed] = _EMPTY
        self._keyed: dict[Hashable, _Keyed] = {}
        self._size = 0
        self._busy = False
        self._busy_since = 0.0
        self._writer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room: asyncio.Event | None = None
        self._closed = False
        self.sent = 0
        self.merged = 0
        self.replaced = 0

    @property
    def keeping_up(self) -> bool:
        """No write waits on the client and the backlog is small: :meth:`merge` would
        queue an item on its own, so a caller may :meth:`push_unmerged` its bytes
        instead (and skip making a mergeable item)."""
        return not self._busy and self._size < MERGE_ABOVE_BYTES

    @property
    def queued_bytes(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    async def send(self, data: bytes) -> None:
        """Send a response: straight through when idle, else queued with backpressure."""
        if self._closed:
            raise ConnectionError("session closed")
        if not self._busy and not self._entries:
            self._busy = True
            self._busy_since = time.monotonic()
            try:
                await self._write(data)
            finally:
                self._busy = False
                if self._entries:
                    self._start_writer()
            return
        await self._wait_for_room(self.max_bytes)
        if self._closed:
            raise ConnectionError("session closed")
        self._append(data, len(data))

    def push(self, data: bytes) -> None:
        """Queue a message that must not be dropped; never blocks. Handed to the socket
        at once when nothing waits before it and the socket takes it."""
        if self._closed:
            return
        if not self._busy and not self._entries and self._transport.try_send_text(data):
            self.sent += 1
            return
        self._append(data, len(data))

    def push_unmerged(self, key: Hashable, data: bytes) -> None:
        """Queue ``data`` (an item of the ``key`` stream, already encoded) on its own;
        later items with ``key`` merge after it, never into one queued before it, so
        the order of the stream holds."""
        if self._closed:
            return
        self._keyed.pop(key, None)
        self.push(data)

    def replace(self, key: Hashable, data: bytes) -> None:
        """Queue ``data``, replacing a queued item with the same key (newest wins)."""
        if self._closed:
            return
        slot = self._keyed.get(key)
        if slot is not None:
            self._size += len(data) - slot.size
            slot.item = data
            slot.size = len(data)
            self.replaced += 1
            return
        if not self._busy and not self._entries and self._transport.try_send_text(data):
            self.sent += 1
            return
        self._append_keyed(_Keyed(key, data))

    def merge(self, key: Hashable, item: Mergeable) -> None:
        """Queue ``item``, merging it into a queued item with the same key while the
        client is slow (a write is waiting on it) or a backlog of ``MERGE_ABOVE_BYTES``
        waits (a replay burst). A client that keeps up gets each item on its own, even
        when a few are queued within one event-loop iteration."""
        if self._closed:
            return
        slot = self._keyed.get(key)
        if (
            slot is not None
            and (self._busy or self._size >= MERGE_ABOVE_BYTES)
            and slot.item is not None
            and not isinstance(slot.item, bytes)
        ):
            merged = slot.item.merge(item)
            self._size += merged.size - slot.size
            slot.item = merged
            slot.size = merged.size
            self.merged += 1
            return
        self._append_keyed(_Keyed(key, item))

    def discard(self, key: Hashable) -> bool:
        """Drop the queued item with ``key``, if one waits (a ghost suggestion whose
        document has moved on); returns whether one did."""
        slot = self._keyed.pop(key, None)
        if slot is None:
            return False
        self._size -= slot.size
        slot.item = None
        slot.size = 0
        return True

    async def push_wait(self, data: bytes) -> None:
        """Queue ``data`` once the queue is below half its bound (the pause policy)."""
        await self._wait_for_room(self.max_bytes // 2)
        if not self._closed:
            self._append(data, len(data))

    def stalled_for(self, now: float) -> float:
        """Seconds the current write has been waiting on the client (0 when none)."""
        return now - self._busy_since if self._busy else 0.0

    def close(self) -> None:
        """Drop the backlog and wake every waiter; later sends fail or are ignored."""
        self._closed = True
        self._entries = _EMPTY
        self._keyed.clear()
        self._size = 0
        if self._room is not None:
            self._room.set()
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()

    async def drain(self) -> None:
        """Wait until everything queued so far is written (for shutdown and tests)."""
        while (self._entries or self._busy) and not self._closed:
            writer = self._writer
            if writer is not None and not writer.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(writer)
            else:
                await asyncio.sleep(0)

    # Internals

    def _queue(self) -> deque[bytes | _Keyed]:
        if self._entries is _EMPTY:
            self._entries = deque()
        return self._entries

    def _append(self, data: bytes, size: int) -> None:
        self._queue().append(data)
        self._size += size
        if not self._busy:
            self._start_writer()

    def _append_keyed(self, slot: _Keyed) -> None:
        self._keyed[slot.key] = slot
        self._queue().append(slot)
        self._size += slot.size
        if not self._busy:
            self._start_writer()

    def _start_writer(self) -> None:
        if self._writer is None or self._writer.done():
            loop = self._loop
            if loop is None:
                # Cached: get_running_loop() costs a getpid() system call each time.
                loop = self._loop = asyncio.get_running_loop()
            self._writer = loop.create_task(self._drain_loop())

    async def _drain_loop(self) -> None:
        while self._entries and not self._busy:
            entry = self._entries.popleft()
            if isinstance(entry, _Keyed):
                if self._keyed.get(entry.key) is entry:
                    del self._keyed[entry.key]
                size = entry.size
                item = entry.item
                if item is None:  # discarded while it waited
                    continue
                data = item if isinstance(item, bytes) else item.encode()
            else:
                size = len(entry)
                data = entry
            self._size -= size
            self._busy = True
            self._busy_since = time.monotonic()
            try:
                await self._write(data)
            except ConnectionError:
                self.close()
                return
            finally:
                self._busy = False
            room = self._room
            if room is not None and self._size <= self.max_bytes // 2:
                room.set()

    async def _write(self, data: bytes) -> None:
        if type(data) is Binary:
            await self._transport.send_binary(data)
        else:
            await self._transport.send_text(data)
        self.sent += 1

    async def _wait_for_room(self, limit: int) -> None:
        while self._size > limit and not self._closed:
            if self._room is None or self._room.is_set():
                self._room = asyncio.Event()
            self._start_writer()
            await self._room.wait()

"""The Redis broker: streams shared by every node (docs/streams.md, Many nodes).

Layout, per stream (one hash tag, so both keys share a cluster slot)::

    {prefix}stream:{<id>}:meta   hash: status (live|ended), last, tenant, user,
                                 leased (the stream has a producer's lease),
                                 kind (text|audio: which retention applies)
    {prefix}stream:{<id>}:items  Redis stream; entry id 0-<seq>, fields k (kind),
                                 p (payload), e (present on the final item)
    {prefix}stream:{<id>}:lease  the producing node's id, expiring after ``lease_s``
    {prefix}stream:{<id>}:gone   hash: last, tenant, user; written at the end, it
                                 outlives the other keys by ``retention_s`` so that a
                                 resume after them answers "expired" (StreamExpired)

Producing. One Lua script per item checks the stream is live, increments ``last`` and
``XADD``s the item with the explicit id ``0-<seq>``, trimming with ``MAXLEN ~``; the
final item also sets ``status`` to ended and writes the ``gone`` record. It then sets
both keys' expiry: the retention window after the end (``audio_retention_s`` for an
audio stream), the idle timeout while live (so a stream whose producer died vanishes
too). The seq is thus assigned by Redis, contiguous, and the entry id *is* the seq:
"the items after seq k" is ``XREAD``/``XRANGE`` from ``0-k``. Memory in Redis is
bounded per stream by ``MAXLEN`` and in time by the expiry; in all, by Redis's own
``maxmemory`` (docs/streams.md, "Retention").

Consuming: one reader per node per stream. The first local subscription to a live stream
starts a *feed*: a task looping on ``XREAD BLOCK`` from the last id it saw, appending to
a short local :class:`~yamabiko.store.broker.Tail` (``window`` items) and waking the
node's subscriptions of that stream. A thousand subscribers of one stream on a node cost
one blocked Redis connection and one ``XREAD`` per batch, not a thousand. A subscription
is a cursor: within the tail it reads locally; behind it (a replay from ``after_seq``,
or a reader that paused) it pages the history with ``XRANGE`` (``page_size`` a call)
until it reaches the tail. Continuing from a known seq, there is no seam where an item
could be lost or repeated; a jump in seqs means the history was trimmed under the
cursor, and the subscription raises :class:`~yamabiko.store.broker.Lagged`. A stream
that had already ended when subscribed needs no feed: it is all ``XRANGE``.

Why a reader per stream rather than one ``XREAD`` over all of a node's streams: that
call would carry every key each time it is made, and it is made once per published
batch, so its cost grows with the number of streams times the item rate. The price is
one connection per actively read stream per node, from a pool of the broker's own
(``max_feeds``, 10,000 by default); size Redis's ``maxclients`` for it. When a stream's
last local subscription closes, its feed is flagged and cancelled at once (redis-py then
drops the blocked connection rather than return it to the pool mid-reply), so nothing is
left blocked; the flag ends the loop after one ``BLOCK`` should a cancellation ever be
lost. ``block_s`` otherwise only bounds how long a feed goes without checking that its
stream still exists (a live stream whose producer died expires with its keys).

Producer leases. The node that creates a stream holds its lease key until it ends the
stream; one pipelined ``PEXPIRE`` of all of a node's leases renews them every tenth of
``lease_s`` (5 s by default), one round trip however many streams it produces. A node
that dies stops renewing, and within ``lease_s`` the lease is gone while the stream is
still live: :meth:`RedisBroker.info` reports ``producer_lost``, and every feed of the
stream, which checks the lease each time its ``XREAD`` comes back empty (at most every
``lease_s / 2``), calls the handler given to :meth:`RedisBroker.on_lost`. The handler
claims the stream with :meth:`~RedisBroker.claim` (one atomic ``SET NX`` of the lease: one
winner across all nodes), then ends it like any producer would (docs/streams.md,
"When a node dies").
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from yamabiko.store.broker import (
    DEFAULT_AUDIO_RETENTION_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_ITEMS,
    DEFAULT_RETENTION_S,
    BrokerUnavailable,
    ExpiredStream,
    Lagged,
    LostHandler,
    StreamEnded,
    StreamExists,
    StreamExpired,
    StreamInfo,
    StreamItem,
    StreamKind,
    StreamNotFound,
    Subscription,
    Tail,
    TailSubscription,
    check_after_seq,
)
from yamabiko.store.redis_clients import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_POOL_TIMEOUT_S,
    ThrottledWarning,
    pooled_client,
)

log = logging.getLogger(__name__)

READ_GRACE_S = 5.0
"""How much longer than its ``BLOCK`` a feed waits for Redis to answer before giving up."""
DEFAULT_LEASE_S = 5.0
"""A producer's lease on its live streams (renewed every tenth of it)."""
_RENEW_BATCH = 1000
"""Leases renewed by one pipeline."""

# ARGV: tenant, user, idle ms, node id, lease ms, kind
_CREATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[4])
redis.call('HSET', KEYS[1], 'status', 'live', 'last', 0, 'tenant', ARGV[1], 'user', ARGV[2],
           'leased', 1, 'kind', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
return 1
"""

# ARGV: node id, lease ms
_CLAIM_LUA = """
if redis.call('HGET', KEYS[1], 'status') ~= 'live' then return 0 end
if not redis.call('HGET', KEYS[1], 'leased') then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# KEYS: meta, items, lease, gone
# ARGV: kind, payload, final (0|1), maxlen, idle ms, retention ms, audio retention ms
_PUBLISH_LUA = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return redis.error_reply('YAMABIKO_NOSTREAM') end
if status ~= 'live' then return redis.error_reply('YAMABIKO_ENDED') end
local seq = redis.call('HINCRBY', KEYS[1], 'last', 1)
local ttl = ARGV[5]
if ARGV[3] == '1' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '0-' .. seq,
             'k', ARGV[1], 'p', ARGV[2], 'e', '1')
  redis.call('HSET', KEYS[1], 'status', 'ended')
  redis.call('DEL', KEYS[3])
  ttl = ARGV[6]
  if redis.call('HGET', KEYS[1], 'kind') == 'audio' then ttl = ARGV[7] end
  local owner = redis.call('HMGET', KEYS[1], 'tenant', 'user')
  redis.call('HSET', KEYS[4], 'last', seq, 'tenant', owner[1], 'user', owner[2])
  redis.call('PEXPIRE', KEYS[4], ttl + ARGV[6])
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '0-' .. seq, 'k', ARGV[1], 'p', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return seq
"""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _seq(entry_id: bytes | str) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.partition("-")[2])


def _entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> tuple[StreamItem, bool]:
    """A stream entry as an item, and whether it is the final one."""
    kind = fields.get(b"k", b"").decode()
    return StreamItem(_seq(entry_id), kind, fields.get(b"p", b"")), b"e" in fields


def _xread_entries(response: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of a one-key ``XREAD`` reply, as RESP2 or RESP3 parses it."""
    if not response:
        return []
    if isinstance(response, dict):  # RESP3: {key: [[entries]]}
        (value,) = response.values()
        return list(value[0]) if value else []
    return list(response[0][1])  # RESP2: [[key, [entries]]]


class _Feed:
    """This node's reader of one live stream (see the module docstring)."""

    __slots__ = ("stopped", "stream_id", "subs", "tail", "task")

    def __init__(self, stream_id: str, tail: Tail) -> None:
        self.stream_id = stream_id
        self.tail = tail
        self.stopped = False
        self.subs: set[_RedisSubscription] = set()
        self.task: asyncio.Task[None] | None = None


class _RedisSubscription(TailSubscription):
    def __init__(
        self,
        broker: RedisBroker,
        info: StreamInfo,
        after_seq: int,
        feed: _Feed | None,
    ) -> None:
        super().__init__(info, after_seq, feed.tail if feed is not None else None)
        self._broker = broker
        self._feed = feed

    async def _fetch(self, first: int, last: int) -> list[StreamItem]:
        broker = self._broker
        if broker.closed:
            raise BrokerUnavailable("the stream broker is closed")
        count = min(last - first + 1, broker.page_size)
        raw = await broker.page(self._info.stream_id, first, count)
        page: list[StreamItem] = []
        for entry_id, fields in raw:
            item, final = _entry(entry_id, fields)
            if item.seq != first + len(page):
                break
            page.append(item)
            if final:
                self._end_seq = item.seq
        if page:
            return page
        # Trimmed under us (or the whole stream expired).
        info = await broker.info(self._info.stream_id)
        if info is None:
            record = await broker.expired(self._info.stream_id)
            if record is not None:
                raise StreamExpired(record.stream_id, record.last_seq)
            raise StreamNotFound()
        raise Lagged(after_seq=first - 1, first_seq=info.first_seq)

    def _finish(self) -> None:
        super()._finish()
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.subs.discard(self)
            if not feed.subs:
                self._broker.stop_feed(feed)

    async def close(self) -> None:
        feed = self._feed
        self._finish()
        if feed is not None and not feed.subs and feed.task is not None:
            # The feed is cancelled: wait until its connection is dropped.
            await asyncio.wait({feed.task})


class RedisBroker:
    """Streams in Redis, readable and resumable from every node (see the module
    docstring for the layout and the fan-out). Build it with :meth:`from_url`.

    ``client`` runs the commands and may be shared with the rest of the node; ``reader``
    only runs the feeds' blocking ``XREAD``s, so its pool must allow ``max_feeds``
    connections and it must have no socket timeout (the feeds bound their own reads:
    redis-py's default 5 s timeout would cut ``BLOCK`` short, and on Python 3.11 its
    ``wait_for`` can swallow the cancellation that stops a feed). Both must return
    bytes (``decode_responses=False``, redis-py's default). :meth:`close` closes them
    only if :meth:`from_url` made them.
    """

    def __init__(
        self,
        client: Redis,
        reader: Redis,
        *,
        prefix: str = "yamabiko:",
        retention_s: float = DEFAULT_RETENTION_S,
        audio_retention_s: float = DEFAULT_AUDIO_RETENTION_S,
        max_items: int = DEFAULT_MAX_ITEMS,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        window: int = 1024,
        page_size: int = 512,
        block_s: float = 5.0,
        max_feeds: int = 10_000,
        lease_s: float = DEFAULT_LEASE_S,
        owns_clients: bool = False,
    ) -> None:
        for redis in (client, reader):
            if redis.connection_pool.connection_kwargs.get("decode_responses"):
                raise ValueError("RedisBroker needs Redis clients with decode_responses=False")
        if min(max_items, window, page_size, max_feeds) < 1:
            raise ValueError("max_items, window, page_size and max_feeds must be at least 1")
        self.client = client
        self.prefix = prefix
        self.retention_s = retention_s
        self.audio_retention_s = audio_retention_s
        self.max_items = max_items
        self.idle_timeout_s = idle_timeout_s
        self.window = window
        self.page_size = page_size
        self._reader = reader
        # A feed checks its producer's lease each time a read comes back empty.
        block_s = min(block_s, lease_s / 2)
        self._block_ms = _ms(block_s)
        self._read_timeout_s = block_s + READ_GRACE_S
        self.lease_s = lease_s
        self.node_id = secrets.token_hex(8)
        self._produced: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._lost_handler: LostHandler | None = None
        self._settling: dict[str, asyncio.Task[None]] = {}
        self._pages: dict[tuple[str, int, int], asyncio.Task[Any]] = {}
        self._info_waiting: dict[str, asyncio.Future[StreamInfo | None]] = {}
        self._info_readers: dict[str, asyncio.Task[None]] = {}
        self._warn = ThrottledWarning(log)
        self._max_feeds = max_feeds
        self._owns_clients = owns_clients
        self._create = client.register_script(_CREATE_LUA)
        self._claim = client.register_script(_CLAIM_LUA)
        self._publish = client.register_script(_PUBLISH_LUA)
        self._feeds: dict[str, _Feed] = {}
        self.closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "yamabiko:",
        max_feeds: int = 10_000,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        pool_timeout_s: float = DEFAULT_POOL_TIMEOUT_S,
        **options: Any,
    ) -> RedisBroker:
        """A broker with clients of its own for ``url``: one for commands, whose pool
        of ``max_connections`` makes callers wait (up to ``pool_timeout_s``) when all
        are busy, and one whose pool holds the feeds' blocked connections (named
        ``<prefix>broker-reader`` in ``CLIENT LIST``)."""
        client = pooled_client(url, max_connections=max_connections, pool_timeout_s=pool_timeout_s)
        reader = Redis.from_url(
            url,
            socket_timeout=None,
            max_connections=max_feeds,
            client_name=f"{prefix}broker-reader",
        )
        return cls(client, reader, prefix=prefix, max_feeds=max_feeds, owns_clients=True, **options)

    def keys(self, stream_id: str) -> tuple[str, str]:
        """The meta and items keys of a stream."""
        base = f"{self.prefix}stream:{{{stream_id}}}"
        return f"{base}:meta", f"{base}:items"

    def lease_key(self, stream_id: str) -> str:
        """The key naming the node that produces a live stream, while it lives."""
        return f"{self.prefix}stream:{{{stream_id}}}:lease"

    def gone_key(self, stream_id: str) -> str:
        """The key remembering an ended stream for ``retention_s`` after its history."""
        return f"{self.prefix}stream:{{{stream_id}}}:gone"

    @property
    def produced(self) -> int:
        """How many live streams this node produces (holds the lease of)."""
        return len(self._produced)

    @property
    def feeds(self) -> int:
        """How many streams this node is reading (one blocked connection each)."""
        return len(self._feeds)

    async def create(
        self, stream_id: str, *, owner_tenant: str, owner_user: str, kind: StreamKind = "text"
    ) -> None:
        self._check_open()
        try:
            created = await self._create(
                keys=[*self.keys(stream_id), self.lease_key(stream_id), self.gone_key(stream_id)],
                args=[
                    owner_tenant,
                    owner_user,
                    _ms(self.idle_timeout_s),
                    self.node_id,
                    _ms(self.lease_s),
                    kind,
                ],
            )
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        if not created:
            raise StreamExists()
        self._hold(stream_id)

    async def claim(self, stream_id: str) -> bool:
        self._check_open()
        meta_key, _ = self.keys(stream_id)
        try:
            claimed = await self._claim(
                keys=[meta_key, self.lease_key(stream_id)],
                args=[self.node_id, _ms(self.lease_s)],
            )
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        # Not renewed: ending the stream takes milliseconds, and should this node fail
        # meanwhile, the claim lapses like any lease and another node ends it.
        return bool(claimed)

    def on_lost(self, handler: LostHandler) -> None:
        self._lost_handler = handler

    def _hold(self, stream_id: str) -> None:
        """Keep renewing the lease of a stream this node now produces."""
        self._produced.add(stream_id)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew(), name="broker-leases")

    async def _renew(self) -> None:
        """Renew every lease this node holds, a tenth of ``lease_s`` apart, in one
        pipeline per thousand streams, until it holds none."""
        interval = self.lease_s / 10
        while self._produced:
            await asyncio.sleep(interval)
            ids = list(self._produced)
            lease_ms = _ms(self.lease_s)
            for start in range(0, len(ids), _RENEW_BATCH):
                chunk = ids[start : start + _RENEW_BATCH]
                try:
                    async with self.client.pipeline(transaction=False) as pipe:
                        for stream_id in chunk:
                            pipe.pexpire(self.lease_key(stream_id), lease_ms)
                        renewed = await pipe.execute()
                except (RedisError, OSError) as exc:
                    self._warn("stream leases: Redis did not renew them", exc)
                    continue
                for stream_id, alive in zip(chunk, renewed, strict=True):
                    if not alive:
                        # Ended meanwhile, or lapsed (this node stalled) and ended by
                        # another: its next publish says so.
                        self._produced.discard(stream_id)

    async def page(self, stream_id: str, first: int, count: int) -> Any:
        """The raw ``XRANGE`` of ``count`` items from seq ``first``. Subscribers that
        ask for the same page at once (a crowd resuming from the same ``afterSeq``)
        share one read: history, once written, never changes."""
        key = (stream_id, first, count)
        task = self._pages.get(key)
        if task is None:
            _, items_key = self.keys(stream_id)
            task = asyncio.create_task(self._xrange(items_key, first, count))
            self._pages[key] = task
            task.add_done_callback(lambda done: self._page_done(key, done))
        try:
            return await asyncio.shield(task)
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    async def _xrange(self, items_key: str, first: int, count: int) -> Any:
        return await self.client.xrange(
            items_key, f"0-{first}", f"0-{first + count - 1}", count=count
        )

    def _page_done(self, key: tuple[str, int, int], task: asyncio.Task[Any]) -> None:
        if self._pages.get(key) is task:
            del self._pages[key]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone

    def _unavailable(self, exc: BaseException) -> BrokerUnavailable:
        self._warn("stream broker: Redis failed", exc)
        return BrokerUnavailable()

    async def publish(self, stream_id: str, kind: str, payload: bytes) -> int:
        return await self._append(stream_id, kind, payload, final=False)

    async def end(self, stream_id: str, kind: str = "end", payload: bytes = b"") -> int:
        return await self._append(stream_id, kind, payload, final=True)

    async def _append(self, stream_id: str, kind: str, payload: bytes, *, final: bool) -> int:
        self._check_open()
        args: list[Any] = [
            kind,
            payload,
            1 if final else 0,
            self.max_items,
            _ms(self.idle_timeout_s),
            _ms(self.retention_s),
            _ms(self.audio_retention_s),
        ]
        keys = [*self.keys(stream_id), self.lease_key(stream_id), self.gone_key(stream_id)]
        try:
            seq = int(await self._publish(keys=keys, args=args))
        except ResponseError as exc:
            if str(exc).startswith(("YAMABIKO_NOSTREAM", "YAMABIKO_ENDED")):
                self._produced.discard(stream_id)
                if str(exc).startswith("YAMABIKO_NOSTREAM"):
                    raise StreamNotFound() from None
                raise StreamEnded() from None
            raise self._unavailable(exc) from exc
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        if final:
            self._produced.discard(stream_id)
        return seq

    async def info(self, stream_id: str) -> StreamInfo | None:
        """The stream's state (see :meth:`Broker.info`). Callers asking about the same
        stream at once share one read: while one read of it is with Redis, the callers
        that arrive meanwhile wait for the next one (a read that starts after they
        asked, so each sees every item published before its call), so a thousand
        subscribes to one stream cost a few round trips, not a thousand."""
        self._check_open()
        waiting = self._info_waiting.get(stream_id)
        if waiting is None:
            waiting = asyncio.get_running_loop().create_future()
            waiting.add_done_callback(_retrieve)
            self._info_waiting[stream_id] = waiting
            if stream_id not in self._info_readers:
                self._info_readers[stream_id] = asyncio.create_task(
                    self._read_infos(stream_id), name="broker-info"
                )
        return await asyncio.shield(waiting)

    async def _read_infos(self, stream_id: str) -> None:
        """Answer the callers waiting for a stream's info, a batch at a time."""
        try:
            while (waiting := self._info_waiting.pop(stream_id, None)) is not None:
                try:
                    waiting.set_result(await self._read_info(stream_id))
                except Exception as exc:
                    waiting.set_exception(exc)
        finally:
            del self._info_readers[stream_id]
            # Cancelled (by close) with callers still waiting: they must not hang.
            left = self._info_waiting.pop(stream_id, None)
            if left is not None and not left.done():
                left.set_exception(_closed_error())

    async def _read_info(self, stream_id: str) -> StreamInfo | None:
        meta_key, items_key = self.keys(stream_id)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hmget(meta_key, ["status", "last", "tenant", "user", "leased"])
                pipe.xrange(items_key, "-", "+", count=1)
                pipe.exists(self.lease_key(stream_id))
                (status, last, tenant, user, leased), first, lease = await pipe.execute()
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        if status is None or last is None:
            return None
        last_seq = int(last)
        return StreamInfo(
            producer_lost=status == b"live" and leased is not None and not lease,
            stream_id=stream_id,
            status="ended" if status == b"ended" else "live",
            first_seq=_seq(first[0][0]) if first else last_seq + 1,
            last_seq=last_seq,
            owner_tenant=(tenant or b"").decode(),
            owner_user=(user or b"").decode(),
        )

    async def expired(self, stream_id: str) -> ExpiredStream | None:
        self._check_open()
        meta_key, _ = self.keys(stream_id)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.exists(meta_key)
                pipe.hmget(self.gone_key(stream_id), ["last", "tenant", "user"])
                exists, (last, tenant, user) = await pipe.execute()
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        if exists or last is None:
            return None
        return ExpiredStream(stream_id, int(last), (tenant or b"").decode(), (user or b"").decode())

    async def subscribe(self, stream_id: str, after_seq: int = 0) -> Subscription:
        info = await self.info(stream_id)
        if info is None:
            record = await self.expired(stream_id)
            if record is not None:
                raise StreamExpired(stream_id, record.last_seq)
            raise StreamNotFound()
        check_after_seq(info, after_seq)
        if info.status == "ended":
            return _RedisSubscription(self, info, after_seq, None)
        # From here to the return, nothing awaits: the feed cannot stop in between.
        feed = self._feeds.get(stream_id)
        if feed is None:
            if len(self._feeds) >= self._max_feeds:
                raise BrokerUnavailable("this node reads too many streams at once")
            feed = self._feeds[stream_id] = _Feed(stream_id, Tail(self.window, info.last_seq))
            feed.task = asyncio.create_task(self._run(feed), name=f"broker-feed-{stream_id}")
        subscription = _RedisSubscription(self, info, after_seq, feed)
        feed.subs.add(subscription)
        return subscription

    async def ping(self) -> None:
        self._check_open()
        await self.client.ping()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        feeds = list(self._feeds.values())
        for feed in feeds:
            self.stop_feed(feed)
            feed.tail.fail(_closed_error)
        tasks = {feed.task for feed in feeds if feed.task is not None}
        tasks.update(self._settling.values())
        tasks.update(self._info_readers.values())
        if self._renewer is not None:
            tasks.add(self._renewer)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._owns_clients:
            await self._reader.aclose()
            await self.client.aclose()

    def stop_feed(self, feed: _Feed) -> None:
        """Stop reading a stream on this node (its last local subscription closed).
        The cancelled read drops its connection; the flag stops the loop even if a
        cancellation were lost, after at most one ``BLOCK``."""
        if self._feeds.get(feed.stream_id) is feed:
            del self._feeds[feed.stream_id]
        feed.stopped = True
        if feed.task is not None and not feed.task.done():
            feed.task.cancel()

    def _check_open(self) -> None:
        if self.closed:
            raise _closed_error()

    async def _run(self, feed: _Feed) -> None:
        tail = feed.tail
        meta_key, items_key = self.keys(feed.stream_id)
        try:
            while True:
                async with asyncio.timeout(self._read_timeout_s):
                    response = await self._reader.xread(
                        {items_key: f"0-{tail.last_seq}"},
                        count=self.page_size,
                        block=self._block_ms,
                    )
                if feed.stopped:
                    return
                entries = _xread_entries(response)
                if not entries:
                    if not await self._producing(feed, meta_key):
                        tail.fail(_abandoned_error)
                        return
                    continue
                for entry_id, fields in entries:
                    item, final = _entry(entry_id, fields)
                    if item.seq != tail.last_seq + 1:
                        # Trimmed before this node read them: subscriptions that need
                        # them find out when they page the history.
                        tail.restart(item.seq - 1)
                    tail.append(item)
                    if final:
                        tail.end_seq = item.seq
                        break
                tail.wake()
                if tail.end_seq is not None:
                    return
        except (RedisError, TimeoutError) as exc:
            self._warn("stream reader failed; its subscribers must resubscribe", exc)
            tail.fail(_unavailable_error)
        finally:
            if self._feeds.get(feed.stream_id) is feed:
                del self._feeds[feed.stream_id]
            tail.wake()

    async def _producing(self, feed: _Feed, meta_key: str) -> bool:
        """Whether a stream that sent nothing for a while may still send: False if it
        is gone. If its producer's lease lapsed, the lost-producer handler is started
        (once per stream on this node) to end it, and the feed reads that end."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(meta_key, ["status", "leased"])
            pipe.exists(self.lease_key(feed.stream_id))
            (status, leased), lease = await pipe.execute()
        if status is None:
            return False
        if status != b"live" or leased is None or lease:
            return True
        handler = self._lost_handler
        if handler is None:
            return False
        if feed.stream_id not in self._settling:
            task = asyncio.create_task(_run(handler, feed.stream_id), name="broker-producer-lost")
            self._settling[feed.stream_id] = task
            task.add_done_callback(lambda done: self._settled(feed.stream_id, done))
        return True

    def _settled(self, stream_id: str, task: asyncio.Task[None]) -> None:
        if self._settling.get(stream_id) is task:
            del self._settling[stream_id]
        if not task.cancelled() and task.exception() is not None:
            self._warn("could not end a stream whose producer was lost", task.exception())


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a shared future's exception as seen: all its waiters may have gone."""
    if not future.cancelled():
        future.exception()


async def _run(handler: LostHandler, stream_id: str) -> None:
    await handler(stream_id)


def _closed_error() -> Exception:
    return BrokerUnavailable("the stream broker is closed")


def _unavailable_error() -> Exception:
    return BrokerUnavailable("the stream broker lost its connection to Redis")


def _abandoned_error() -> Exception:
    return StreamNotFound("the stream was abandoned: its producer stopped without ending it")

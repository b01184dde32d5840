"""Signals: small control messages sent to every node (``stream/cancel`` of a
generation that runs on another node).

Delivery is at most once, to the nodes listening when it is sent, in no guaranteed
order: a signal is a request to act now, never state to keep (the stream's own status
is the state). :class:`MemorySignals` serves one node; :class:`RedisSignals` carries
them through a Redis pub/sub channel, read by one task per node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from yamabiko.store.broker import BrokerUnavailable

log = logging.getLogger(__name__)

SignalHandler = Callable[[str], None]


class Signals(Protocol):
    def listen(self, handler: SignalHandler) -> None:
        """Call ``handler(message)`` for each signal from now on (any node's, this
        one's included). Handlers run on the event loop and must not block."""
        ...

    async def send(self, message: str) -> None:
        """Send ``message`` to every listening node. Raises
        :class:`~yamabiko.store.broker.BrokerUnavailable` if it cannot be sent."""
        ...

    async def close(self) -> None: ...


class MemorySignals:
    def __init__(self) -> None:
        self._handlers: list[SignalHandler] = []

    def listen(self, handler: SignalHandler) -> None:
        self._handlers.append(handler)

    async def send(self, message: str) -> None:
        for handler in self._handlers:
            handler(message)

    async def close(self) -> None:
        self._handlers.clear()


class RedisSignals:
    """Signals on the Redis channel ``<prefix>signals``. Build it with :meth:`open`,
    which returns once this node is subscribed (so a signal sent after it is seen)."""

    def __init__(self, client: Redis, *, prefix: str = "yamabiko:") -> None:
        self._client = client
        self._channel = f"{prefix}signals"
        self._handlers: list[SignalHandler] = []
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, *, prefix: str = "yamabiko:") -> RedisSignals:
        signals = cls(Redis.from_url(url, socket_timeout=None), prefix=prefix)
        await signals._pubsub.subscribe(signals._channel)
        signals._task = asyncio.create_task(signals._read(), name="redis-signals")
        return signals

    def listen(self, handler: SignalHandler) -> None:
        self._handlers.append(handler)

    async def send(self, message: str) -> None:
        try:
            await self._client.publish(self._channel, message)
        except RedisError as exc:
            raise BrokerUnavailable("could not reach Redis to send a signal") from exc

    async def _read(self) -> None:
        while True:
            try:
                async for event in self._pubsub.listen():
                    if event.get("type") != "message":
                        continue
                    data = event["data"]
                    message = data.decode() if isinstance(data, bytes) else str(data)
                    for handler in self._handlers:
                        try:
                            handler(message)
                        except Exception:
                            log.exception("a signal handler failed")
            except RedisError:
                # redis-py resubscribes on reconnect; signals sent meanwhile are lost,
                # which at-most-once allows.
                log.warning("signal channel lost its connection; retrying", exc_info=True)
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._client.aclose()

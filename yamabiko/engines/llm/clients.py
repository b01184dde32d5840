"""A small pool of SDK clients, one per API key, shared by the streams that use it.

Why: building an SDK client loads a TLS trust store (~16 ms of blocking CPU, ~32 ms for
google-genai), and a client keeps its connections alive between requests, which saves a
TLS handshake per generation. So an engine keeps one client per key (the server's and
each agent's), builds them with one shared SSL context, and closes them at shutdown.

The pool is bounded: past ``max_size`` keys the least recently used client is evicted,
and closed as soon as no stream holds it (a lease).
"""

from __future__ import annotations

import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Generic, TypeVar

import httpx2

C = TypeVar("C")


@cache
def shared_ssl_context() -> ssl.SSLContext:
    """The default trust (``SSL_CERT_FILE`` and the like honoured), built once."""
    return httpx2.create_ssl_context()


@dataclass
class _Entry(Generic[C]):
    client: C
    leases: int = 0
    evicted: bool = False


class ClientPool(Generic[C]):
    """Clients by key: ``async with pool.lease(key) as client``."""

    def __init__(
        self,
        factory: Callable[[str], C],
        close: Callable[[C], Awaitable[None]],
        *,
        max_size: int = 32,
    ) -> None:
        self._factory = factory
        self._close = close
        self._max_size = max_size
        self._entries: OrderedDict[str, _Entry[C]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def lease(self, key: str) -> AsyncIterator[C]:
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(self._factory(key))
            self._entries[key] = entry
            await self._evict()
        else:
            self._entries.move_to_end(key)
        entry.leases += 1
        try:
            yield entry.client
        finally:
            entry.leases -= 1
            if entry.evicted and entry.leases == 0:
                await self._close(entry.client)

    async def _evict(self) -> None:
        while len(self._entries) > self._max_size:
            _, oldest = self._entries.popitem(last=False)
            oldest.evicted = True
            if oldest.leases == 0:
                await self._close(oldest.client)

    async def aclose(self) -> None:
        """Close every client not leased now; leased ones close when released."""
        entries = list(self._entries.values())
        self._entries.clear()
        for entry in entries:
            entry.evicted = True
            if entry.leases == 0:
                await self._close(entry.client)

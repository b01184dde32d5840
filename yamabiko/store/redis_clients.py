"""Redis clients of a node: bounded pools whose callers wait for a connection, a
startup check that names the setting, and warnings about a failing Redis that do not
flood the log.

Why a blocking pool: redis-py's default pool raises ``MaxConnectionsError`` the moment
its ``max_connections`` are all in use, so a burst of requests (a fleet of clients
reconnecting at once) turns into errors although Redis itself is fine. A
:class:`~redis.asyncio.BlockingConnectionPool` makes the extra callers wait for a
connection instead, up to ``pool_timeout_s``; only then do they fail. See
docs/deployment.md, "Shared services under load".
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

DEFAULT_MAX_CONNECTIONS = 64
"""Connections of one pool (each node has a few pools: commands, locks, the limiter)."""
DEFAULT_POOL_TIMEOUT_S = 5.0
"""How long a caller waits for a free connection before its request fails."""


def pooled_client(
    url: str,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_timeout_s: float = DEFAULT_POOL_TIMEOUT_S,
    socket_timeout_s: float | None = None,
    client_name: str | None = None,
) -> Redis:
    """A client for ``url`` whose pool holds at most ``max_connections``; a caller that
    finds them all busy waits up to ``pool_timeout_s`` for one (then redis-py raises a
    ``ConnectionError``). ``socket_timeout_s`` bounds connects and replies (None: no
    bound, for blocking reads). Close it with ``aclose()``, which closes the pool."""
    if max_connections < 1:
        raise ValueError("max_connections must be at least 1")
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s if socket_timeout_s is not None else 5.0,
        client_name=client_name,
    )
    return Redis.from_pool(pool)


def describe(url: str) -> str:
    """Where ``url`` points, without its credentials: ``host:port`` or the socket path."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path or "?"
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 6379}"


class RedisUnreachable(Exception):
    """Redis did not answer at startup. The message names the setting and where it
    points, never the credentials."""


async def check_reachable(url: str, *, setting: str, timeout_s: float = 3.0) -> None:
    """Raise :class:`RedisUnreachable` unless a Redis at ``url`` answers ``PING``
    within ``timeout_s``."""
    client = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        # redis-py's messages name the host and port, never the password.
        reason = str(exc).strip() or exc.__class__.__name__
        raise RedisUnreachable(
            f"{setting}: no Redis answers at {describe(url)} ({reason})"
        ) from None
    finally:
        await client.aclose()


class ThrottledWarning:
    """Logs a failing shared service at WARNING at most once per ``every_s``, with how
    many failures were not logged since: a Redis outage under load fails thousands of
    requests a second, and the operator needs to see it without the log drowning."""

    def __init__(self, logger: logging.Logger, every_s: float = 10.0) -> None:
        self._log = logger
        self._every_s = every_s
        self._next = 0.0
        self._suppressed = 0

    def __call__(self, message: str, exc: BaseException | None = None) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        self._next = now + self._every_s
        suppressed, self._suppressed = self._suppressed, 0
        cause = f"{type(exc).__name__}: {exc}" if exc is not None else ""
        self._log.warning(
            "%s (%s; %d more like it not logged in the last %.0f s)",
            message,
            cause or "no detail",
            suppressed,
            self._every_s,
        )

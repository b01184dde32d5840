"""Shared test set-up: uvloop for every async test, and the rules for external services.

PostgreSQL and Redis tests use the machine's servers. With ``CI=true`` an unreachable
server fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import pytest
import uvloop

POSTGRES_URL = os.environ.get(
    "YAMABIKO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("YAMABIKO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"uvloop": uvloop.new_event_loop}


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> str:
    """Return ``url`` if the service answers; fail under CI, skip elsewhere."""
    if _reachable(url, default_port):
        return url
    message = f"{name} is not reachable at {url}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: this test must run)")
    pytest.skip(f"{message}; set YAMABIKO_TEST_{name.upper()}_URL or start it")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return require_service("postgres", POSTGRES_URL, 5432)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_service("redis", REDIS_URL, 6379)

"""The store contract suite runs every test on each backend: SQLite (a file in the
test's tmp_path) and PostgreSQL (the machine's server, in a schema of its own per test,
dropped afterwards, so parallel runs sharing the server never see each other)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support import postgres_schema
from yamabiko.schema.objects import TenantId, UserId
from yamabiko.store import Store, open_store
from yamabiko.store.crypto import generate_key

KEY = generate_key()
ACME = TenantId("acme")
GLOBEX = TenantId("globex")
ALICE = UserId("alice")
BOB = UserId("bob")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """An empty database of each kind."""
    if request.param == "sqlite":
        # tmp_path is absolute, so this is sqlite:////tmp/...: an absolute path.
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'yamabiko.db'}"
        return
    async with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated store over an empty database."""
    opened = await open_store(database_url, encryption_keys=[KEY])
    try:
        yield opened
    finally:
        await opened.close()

"""Revoked token ids in the store: the RevokedTokens protocol in SQL."""

from __future__ import annotations

import time

from tests.store.conftest import ACME, GLOBEX, KEY
from yamabiko.store import Store, open_store


async def test_revoke_is_idempotent_and_per_tenant(store: Store) -> None:
    later = time.time() + 3600
    assert await store.revocations.is_revoked(ACME, "jti-1") is False
    await store.revocations.revoke(ACME, "jti-1", later)
    await store.revocations.revoke(ACME, "jti-1", later - 60)
    assert await store.revocations.is_revoked(ACME, "jti-1") is True
    assert await store.revocations.is_revoked(GLOBEX, "jti-1") is False
    assert await store.revocations.is_revoked(ACME, "jti-2") is False


async def test_expired_entries_are_pruned_on_revoke(store: Store) -> None:
    await store.revocations.revoke(ACME, "old", time.time() - 10)
    assert await store.revocations.is_revoked(ACME, "old") is True  # not yet pruned
    await store.revocations.revoke(ACME, "new", time.time() + 3600)
    assert await store.revocations.is_revoked(ACME, "old") is False
    assert await store.revocations.is_revoked(ACME, "new") is True


async def test_a_revocation_is_seen_by_another_node(database_url: str) -> None:
    first = await open_store(database_url, encryption_keys=[KEY])
    second = await open_store(database_url, encryption_keys=[KEY])
    try:
        await first.revocations.revoke(ACME, "shared", time.time() + 3600)
        assert await second.revocations.is_revoked(ACME, "shared") is True
    finally:
        await first.close()
        await second.close()

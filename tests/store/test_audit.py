"""The audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.store.conftest import ACME, ALICE, GLOBEX
from yamabiko.server.retention import AuditRetention
from yamabiko.store import Store


async def test_record_and_list_newest_first(store: Store) -> None:
    first = await store.audit.record(
        ACME, subject=ALICE, action="secret.set", outcome="ok", target="agent-1/KEY"
    )
    second = await store.audit.record(
        ACME,
        subject=ALICE,
        action="tenant.update",
        outcome="refused",
        detail={"reason": "missing scope", "scope": "admin"},
    )
    assert (first.tenant_id, first.subject, first.action, first.target, first.outcome) == (
        ACME,
        ALICE,
        "secret.set",
        "agent-1/KEY",
        "ok",
    )
    assert first.detail == {}
    assert second.detail == {"reason": "missing scope", "scope": "admin"}
    assert abs(second.at - datetime.now(UTC)) < timedelta(minutes=1)
    page = await store.audit.list(ACME)
    assert page.items == [second, first]
    assert page.next_cursor is None


async def test_filter_by_action_and_paginate(store: Store) -> None:
    recorded = [
        await store.audit.record(ACME, subject=ALICE, action=action, outcome="ok")
        for action in ["a", "b", "a", "a"]
    ]
    only_a = [e for e in reversed(recorded) if e.action == "a"]
    page = await store.audit.list(ACME, action="a", limit=2)
    assert page.items == only_a[:2]
    rest = await store.audit.list(ACME, action="a", limit=2, cursor=page.next_cursor)
    assert (rest.items, rest.next_cursor) == (only_a[2:], None)
    assert (await store.audit.list(ACME, action="c")).items == []


async def test_events_without_a_tenant_are_listed_apart(store: Store) -> None:
    refused = await store.audit.record(
        None, subject=None, action="token.refused", outcome="refused", detail={"reason": "exp"}
    )
    await store.audit.record(ACME, subject=ALICE, action="token.refused", outcome="refused")
    assert refused.tenant_id is None
    assert refused.subject is None
    assert (await store.audit.list(None)).items == [refused]
    assert len((await store.audit.list(ACME)).items) == 1
    assert (await store.audit.list(GLOBEX)).items == []


async def test_delete_before_removes_only_older_events_in_bounded_batches(store: Store) -> None:
    old = [
        await store.audit.record(ACME, subject=ALICE, action="a", outcome="ok") for _ in range(3)
    ]
    unattributed = await store.audit.record(None, subject=None, action="b", outcome="refused")
    cutoff = datetime.now(UTC)
    kept = await store.audit.record(GLOBEX, subject=ALICE, action="c", outcome="ok")
    assert all(e.at < cutoff for e in [*old, unattributed])
    assert await store.audit.delete_before(cutoff, limit=2) == 2
    assert await store.audit.delete_before(cutoff, limit=2) == 2
    assert await store.audit.delete_before(cutoff, limit=2) == 0
    assert (await store.audit.list(ACME)).items == []
    assert (await store.audit.list(None)).items == []
    assert (await store.audit.list(GLOBEX)).items == [kept]


async def test_retention_purges_events_older_than_its_days(store: Store) -> None:
    for _ in range(5):
        await store.audit.record(ACME, subject=ALICE, action="a", outcome="ok")
    keep_forever = AuditRetention(store.audit, days=0)
    assert await keep_forever.purge(now=datetime.now(UTC) + timedelta(days=365)) == 0
    retention = AuditRetention(store.audit, days=30)
    assert await retention.purge() == 0  # nothing is 30 days old yet
    assert len((await store.audit.list(ACME)).items) == 5
    assert await retention.purge(now=datetime.now(UTC) + timedelta(days=31)) == 5
    assert (await store.audit.list(ACME)).items == []

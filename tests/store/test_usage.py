"""Usage events and reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.store.conftest import ACME, ALICE, BOB, GLOBEX
from yamabiko.schema.objects import UsageRow
from yamabiko.store import Store

DAY1 = datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 3, tzinfo=UTC)


async def _seed(store: Store) -> None:
    await store.usage.record(
        ACME, ALICE, "openai/gpt-4.1", input_tokens=100, output_tokens=10, cost_usd=0.25, at=DAY1
    )
    await store.usage.record(
        ACME, BOB, "openai/gpt-4.1", input_tokens=50, output_tokens=5, cost_usd=0.125, at=DAY2
    )
    await store.usage.record(
        ACME, ALICE, "local/default", input_tokens=7, output_tokens=3, cost_usd=0.0, at=DAY2
    )
    # Outside the range (end is exclusive), and another tenant: never counted.
    await store.usage.record(
        ACME, ALICE, "local/default", input_tokens=1, output_tokens=1, cost_usd=9.0, at=END
    )
    await store.usage.record(
        GLOBEX, ALICE, "openai/gpt-4.1", input_tokens=1, output_tokens=1, cost_usd=9.0, at=DAY2
    )


async def test_record_returns_the_event(store: Store) -> None:
    event = await store.usage.record(
        ACME, ALICE, "local/default", input_tokens=3, output_tokens=4, cost_usd=0.5
    )
    assert (event.tenant_id, event.user, event.model) == (ACME, ALICE, "local/default")
    assert (event.input_tokens, event.output_tokens, event.cost_usd) == (3, 4, 0.5)
    assert abs(event.at - datetime.now(UTC)) < timedelta(minutes=1)
    explicit = await store.usage.record(
        ACME, ALICE, "m", input_tokens=0, output_tokens=0, cost_usd=0.0, at=DAY1
    )
    assert explicit.at == DAY1


async def test_report_by_day(store: Store) -> None:
    await _seed(store)
    rows = await store.usage.report(ACME, start=START, end=END, group_by="day")
    assert rows == [
        UsageRow(key="2026-03-01", input_tokens=100, output_tokens=10, cost_usd=0.25, requests=1),
        UsageRow(key="2026-03-02", input_tokens=57, output_tokens=8, cost_usd=0.125, requests=2),
    ]


async def test_report_by_model(store: Store) -> None:
    await _seed(store)
    rows = await store.usage.report(ACME, start=START, end=END, group_by="model")
    assert [(r.key, r.input_tokens, r.requests) for r in rows] == [
        ("local/default", 7, 1),
        ("openai/gpt-4.1", 150, 2),
    ]
    assert rows[1].cost_usd == pytest.approx(0.375)


async def test_report_by_user(store: Store) -> None:
    await _seed(store)
    rows = await store.usage.report(ACME, start=START, end=END, group_by="user")
    assert [(r.key, r.input_tokens, r.output_tokens, r.requests) for r in rows] == [
        ("alice", 107, 13, 2),
        ("bob", 50, 5, 1),
    ]


async def test_report_of_an_empty_range(store: Store) -> None:
    await _seed(store)
    assert await store.usage.report(ACME, start=END, end=END, group_by="day") == []


async def test_total_cost(store: Store) -> None:
    assert await store.usage.total_cost(ACME, start=START, end=END) == 0.0
    await _seed(store)
    assert await store.usage.total_cost(ACME, start=START, end=END) == pytest.approx(0.375)
    assert await store.usage.total_cost(GLOBEX, start=START, end=END) == pytest.approx(9.0)
    assert await store.usage.total_cost(ACME, start=DAY2, end=END) == pytest.approx(0.125)

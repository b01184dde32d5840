"""The monthly budget check, on each store backend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.store.conftest import ACME, ALICE, GLOBEX
from yamabiko.protocol.errors import BudgetExceeded
from yamabiko.store import Store
from yamabiko.store.budget import Budget, month_bounds


async def test_a_spent_month_is_refused_until_the_next(store: Store) -> None:
    now = datetime.now(UTC)
    clock = [now]
    budget = Budget(store, clock=lambda: clock[0])
    await budget.check(GLOBEX)  # no tenant row: unlimited
    await store.tenants.create(tenant_id=ACME, name="Acme", monthly_budget_usd=1.0)
    await store.usage.record(
        ACME, ALICE, "openai/a", input_tokens=1, output_tokens=1, cost_usd=0.99
    )
    await budget.check(ACME)
    await budget.record(ACME, ALICE, "openai/a", input_tokens=1, output_tokens=1, cost_usd=0.02)
    with pytest.raises(BudgetExceeded) as info:
        await budget.check(ACME)  # at once, without waiting for the cache
    assert info.value.code == -32011
    assert info.value.data["budgetUsd"] == 1.0
    assert info.value.data["spentUsd"] == pytest.approx(1.01)
    _, next_month = month_bounds(now)
    assert info.value.data["resetsAt"] == next_month.isoformat().replace("+00:00", "Z")
    clock[0] = next_month
    await budget.check(ACME)  # a new month


async def test_no_budget_is_unlimited(store: Store) -> None:
    await store.tenants.create(tenant_id=ACME, name="Acme")
    await store.usage.record(ACME, ALICE, "openai/a", input_tokens=1, output_tokens=1, cost_usd=1e6)
    await Budget(store).check(ACME)


def test_month_bounds_cross_the_year() -> None:
    start, end = month_bounds(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))

"""Cursor pagination: the edges, on every backend, and the cursor codec itself."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.store.conftest import ACME, ALICE, GLOBEX
from yamabiko.schema.objects import AgentId
from yamabiko.store import Store
from yamabiko.store.errors import InvalidCursor, InvalidLimit
from yamabiko.store.pagination import MAX_LIMIT, check_limit, decode_cursor, encode_cursor


async def _agents(store: Store, n: int) -> list[AgentId]:
    return [(await store.agents.create(ACME, ALICE, name=f"a{i}")).id for i in range(n)]


async def _walk(store: Store, limit: int) -> list[list[AgentId]]:
    pages, cursor = [], None
    while True:
        page = await store.agents.list(ACME, owner=None, limit=limit, cursor=cursor)
        pages.append([a.id for a in page.items])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


async def test_empty_list(store: Store) -> None:
    page = await store.agents.list(ACME, owner=None)
    assert page.items == []
    assert page.next_cursor is None


async def test_limit_one_walks_every_item_once(store: Store) -> None:
    ids = await _agents(store, 3)
    assert await _walk(store, 1) == [[ids[0]], [ids[1]], [ids[2]]]


async def test_exact_multiple_of_the_limit_has_no_empty_last_page(store: Store) -> None:
    ids = await _agents(store, 6)
    assert await _walk(store, 3) == [ids[:3], ids[3:]]


async def test_remainder_on_the_last_page(store: Store) -> None:
    ids = await _agents(store, 5)
    assert await _walk(store, 2) == [ids[:2], ids[2:4], ids[4:]]


async def test_max_limit_in_one_page(store: Store) -> None:
    ids = await _agents(store, 3)
    page = await store.agents.list(ACME, owner=None, limit=MAX_LIMIT)
    assert [a.id for a in page.items] == ids
    assert page.next_cursor is None


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, 1000])
async def test_a_limit_outside_1_to_100_is_refused(store: Store, limit: int) -> None:
    with pytest.raises(InvalidLimit, match="between 1 and 100"):
        await store.agents.list(ACME, owner=None, limit=limit)


@pytest.mark.parametrize("cursor", ["", "garbage", "W10", "eyJhIjoxfQ", "é"])
async def test_a_cursor_we_did_not_make_is_refused(store: Store, cursor: str) -> None:
    with pytest.raises(InvalidCursor) as caught:
        await store.agents.list(ACME, owner=None, cursor=cursor)
    assert caught.value.code == -32602


async def test_stable_under_inserts_oldest_first(store: Store) -> None:
    ids = await _agents(store, 4)
    first = await store.agents.list(ACME, owner=None, limit=2)
    newer = await _agents(store, 1)
    rest = await store.agents.list(ACME, owner=None, limit=10, cursor=first.next_cursor)
    assert [a.id for a in rest.items] == ids[2:] + newer


async def test_stable_under_inserts_newest_first(store: Store) -> None:
    ids = [(await store.conversations.create(ACME, ALICE)).id for _ in range(4)]
    first = await store.conversations.list(ACME, owner=None, limit=2)
    assert [c.id for c in first.items] == ids[:1:-1]
    await store.conversations.create(ACME, ALICE)  # newer: on no later page
    rest = await store.conversations.list(ACME, owner=None, limit=10, cursor=first.next_cursor)
    assert [c.id for c in rest.items] == ids[1::-1]


async def test_a_cursor_does_not_cross_tenants(store: Store) -> None:
    await _agents(store, 2)
    theirs = await store.agents.create(GLOBEX, ALICE, name="g")
    page = await store.agents.list(ACME, owner=None, limit=1)
    other = await store.agents.list(GLOBEX, owner=None, limit=10, cursor=page.next_cursor)
    assert [a.id for a in other.items] == [theirs.id]


def test_cursor_round_trip() -> None:
    at = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
    cursor = encode_cursor(at, "some-id")
    assert "=" not in cursor
    assert decode_cursor(cursor) == (at, "some-id")


def test_check_limit_bounds() -> None:
    assert check_limit(1) == 1
    assert check_limit(MAX_LIMIT) == MAX_LIMIT
    with pytest.raises(InvalidLimit):
        check_limit(0)

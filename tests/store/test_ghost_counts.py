"""Personal ghost-text counts: added up per user and engine, scoped by tenant."""

from __future__ import annotations

from tests.store.conftest import ACME, ALICE, BOB, GLOBEX
from yamabiko.store import Store


async def test_counts_add_up_per_user_and_engine(store: Store) -> None:
    await store.ghost_counts.add(ACME, ALICE, "ngram", [("kick", "drum", 1), ("snare", "roll", 2)])
    await store.ghost_counts.add(ACME, ALICE, "ngram", [("kick", "drum", 3)])
    await store.ghost_counts.add(ACME, ALICE, "onnx", [("kick", "drum", 5)])
    await store.ghost_counts.add(ACME, BOB, "ngram", [("kick", "bass", 1)])
    await store.ghost_counts.add(GLOBEX, ALICE, "ngram", [("kick", "clap", 1)])
    await store.ghost_counts.add(ACME, ALICE, "ngram", [])
    assert sorted(await store.ghost_counts.load(ACME, ALICE, "ngram")) == [
        ("kick", "drum", 4),
        ("snare", "roll", 2),
    ]
    assert await store.ghost_counts.load(ACME, BOB, "ngram") == [("kick", "bass", 1)]
    assert await store.ghost_counts.load(GLOBEX, ALICE, "ngram") == [("kick", "clap", 1)]
    assert await store.ghost_counts.load(GLOBEX, BOB, "ngram") == []


async def test_load_is_bounded_newest_first(store: Store) -> None:
    for i in range(5):
        await store.ghost_counts.add(ACME, ALICE, "ngram", [(f"c{i}", "t", 1)])
    assert [row[0] for row in await store.ghost_counts.load(ACME, ALICE, "ngram", limit=2)] == [
        "c4",
        "c3",
    ]

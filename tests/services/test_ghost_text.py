"""ChunkedText against a plain str: the same text after any edits, and a chunk list that
stays short however the text is edited."""

from __future__ import annotations

import random
import time

import pytest

from yamabiko.services.ghost_text import CHUNK, ChunkedText


@pytest.mark.parametrize("seed", range(8))
def test_random_edits_give_the_same_text_as_a_str(seed: int) -> None:
    rng = random.Random(seed)
    reference = "".join(rng.choice("ab \u3042") for _ in range(rng.choice([0, 7, 5000, 70_000])))
    text = ChunkedText(reference)
    for _ in range(200):
        start = rng.randint(0, len(reference))
        end = rng.randint(start, min(len(reference), start + rng.choice([0, 1, 9, 40_000])))
        new = "x" * rng.choice([0, 1, 3, 100, 50_000])
        reference = reference[:start] + new + reference[end:]
        text.replace(start, end, new)
        assert text.length == len(reference)
        if rng.random() < 0.2:
            at = rng.randint(0, len(reference))
            assert text.before(at, 100) == reference[max(0, at - 100) : at]
        if rng.random() < 0.05:
            assert text.text() == reference
    assert text.text() == reference
    assert text.chunk_count <= 2 * len(reference) / CHUNK + 2


def test_deleting_everything_and_typing_again() -> None:
    text = ChunkedText("y" * (5 * CHUNK))
    text.replace(0, text.length, "")
    assert text.text() == ""
    assert text.length == 0
    for i, char in enumerate("hello"):
        text.replace(i, i, char)
    assert text.text() == "hello"


def test_a_thousand_keystrokes_in_a_big_document_do_not_copy_it() -> None:
    text = ChunkedText("a" * 900_000)
    started = time.perf_counter()
    for i in range(1000):
        text.replace(450_000 + i, 450_000 + i, "z")
    elapsed = time.perf_counter() - started
    # Copying the document per keystroke takes ~0.1 s here; a chunk per keystroke, ~1 ms.
    assert elapsed < 0.05
    assert text.before(451_000, 1000) == "z" * 1000

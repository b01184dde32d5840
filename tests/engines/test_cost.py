from __future__ import annotations

import pytest

from yamabiko.engines.llm import cost_usd


def test_cost_is_per_million_tokens() -> None:
    assert cost_usd(1_000_000, 0, 3.0, 15.0) == 3.0
    assert cost_usd(0, 1_000_000, 3.0, 15.0) == 15.0
    assert cost_usd(1200, 350, 3.0, 15.0) == pytest.approx(0.0036 + 0.00525)
    assert cost_usd(0, 0, 3.0, 15.0) == 0.0


def test_cost_is_rounded_to_a_millionth_of_a_cent() -> None:
    assert cost_usd(1, 1, 0.1, 0.4) == 5e-7
    assert cost_usd(1, 0, 0.000001, 0) == 0.0


def test_negative_counts_are_a_bug() -> None:
    with pytest.raises(ValueError, match="negative"):
        cost_usd(-1, 0, 1, 1)

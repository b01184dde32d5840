"""What a generation costs. Prices are per million tokens (the catalogue's unit,
``ModelEntry.input_price_per_mtok``)."""

from __future__ import annotations


def cost_usd(
    input_tokens: int,
    output_tokens: int,
    input_price_per_mtok: float,
    output_price_per_mtok: float,
) -> float:
    """The cost in US dollars, rounded to a millionth of a cent (1e-8 USD) so that sums
    of many small costs do not drift with float noise."""
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError("token counts cannot be negative")
    cost = (input_tokens * input_price_per_mtok + output_tokens * output_price_per_mtok) / 1e6
    return round(cost, 8)

"""A measured figure for Yamabiko and its baseline, how they compare, the goal, the table."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

GoalOn = Literal["ratio", "added", "value"]

NO_BASELINE = math.nan
"""The baseline of a figure that has none (``goal_on="value"``)."""


@dataclass(frozen=True)
class Figure:
    """One quantity measured on Yamabiko and on a baseline (``against`` names it).

    ``ratio`` is always yamabiko / baseline and ``added`` always yamabiko - baseline (in
    ``unit``). ``higher_is_better`` says which way is good. ``goal`` (if any) bounds
    ``goal_on``: by default the ratio (at least ``goal`` when higher is better, at most
    ``goal`` when lower is better); with ``goal_on="added"`` the absolute difference,
    for goals such as "at most 1 ms added to the time to first token"; with
    ``goal_on="value"`` Yamabiko's figure itself, for figures with no baseline (give
    ``baseline=NO_BASELINE``: the table shows "-" for it and for the comparison).
    """

    name: str
    unit: str
    yamabiko: float
    baseline: float
    higher_is_better: bool
    goal: float | None = None
    decimals: int = 0
    against: str = "echo"
    """The baseline's name in the table."""
    goal_on: GoalOn = "ratio"

    @property
    def ratio(self) -> float:
        return self.yamabiko / self.baseline if self.baseline else float("nan")

    @property
    def added(self) -> float:
        return self.yamabiko - self.baseline

    @property
    def has_baseline(self) -> bool:
        return not math.isnan(self.baseline)

    @property
    def compared(self) -> float:
        """What the goal bounds: the ratio, the difference, or the value itself."""
        if self.goal_on == "value":
            return self.yamabiko
        return self.added if self.goal_on == "added" else self.ratio

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        value = self.compared
        if math.isnan(value):
            return "MISS"
        met = value >= self.goal if self.higher_is_better else value <= self.goal
        return "PASS" if met else "MISS"

    @property
    def compared_text(self) -> str:
        if not self.has_baseline:
            return "-"
        if self.goal_on == "added":
            return f"{self.added:+,.{max(self.decimals, 2)}f} {self.unit}"
        return f"{self.ratio:.2f}x"

    @property
    def goal_text(self) -> str:
        if self.goal is None:
            return "-"
        sign = ">=" if self.higher_is_better else "<="
        if self.goal_on == "added":
            return f"{sign} {self.goal:+.2f} {self.unit}"
        if self.goal_on == "value":
            return f"{sign} {self.goal:,.{self.decimals}f} {self.unit}"
        return f"{sign} {self.goal:.2f}x"

    def to_json(self) -> dict[str, Any]:
        document = {
            **asdict(self),
            "ratio": self.ratio,
            "added": self.added,
            "verdict": self.verdict or None,
        }
        # NaN is not JSON: a figure without a baseline has none of these.
        return {
            k: None if isinstance(v, float) and math.isnan(v) else v for k, v in document.items()
        }


def render_table(figures: list[Figure]) -> str:
    """The figures as a fixed-width text table."""
    header = ("figure", "unit", "yamabiko", "baseline", "against", "vs baseline", "better", "goal")
    rows = [(*header, "")]
    for fig in figures:
        rows.append(
            (
                fig.name,
                fig.unit,
                f"{fig.yamabiko:,.{fig.decimals}f}",
                f"{fig.baseline:,.{fig.decimals}f}" if fig.has_baseline else "-",
                fig.against,
                fig.compared_text,
                "higher" if fig.higher_is_better else "lower",
                fig.goal_text,
                fig.verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = {2, 3, 5}
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths).rstrip())
    return "\n".join(lines)

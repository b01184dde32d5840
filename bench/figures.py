"""A measured figure for Yamabiko and its baseline, the ratio, the goal, and the table."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One quantity measured on both servers.

    ``ratio`` is always yamabiko / baseline. ``higher_is_better`` says which way is good;
    ``goal`` (if any) is the bound on the ratio: at least ``goal`` when higher is better,
    at most ``goal`` when lower is better.
    """

    name: str
    unit: str
    yamabiko: float
    baseline: float
    higher_is_better: bool
    goal: float | None = None
    decimals: int = 0

    @property
    def ratio(self) -> float:
        return self.yamabiko / self.baseline if self.baseline else float("nan")

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        met = self.ratio >= self.goal if self.higher_is_better else self.ratio <= self.goal
        return "PASS" if met else "MISS"

    @property
    def goal_text(self) -> str:
        if self.goal is None:
            return "-"
        return f"{'>=' if self.higher_is_better else '<='} {self.goal:.2f}x"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "verdict": self.verdict or None}


def render_table(figures: list[Figure], baseline_name: str = "echo") -> str:
    """The figures as a fixed-width text table."""
    header = (
        "figure",
        "unit",
        "yamabiko",
        baseline_name,
        f"yamabiko/{baseline_name}",
        "better",
        "goal",
        "",
    )
    rows = [header]
    for fig in figures:
        rows.append(
            (
                fig.name,
                fig.unit,
                f"{fig.yamabiko:,.{fig.decimals}f}",
                f"{fig.baseline:,.{fig.decimals}f}",
                f"{fig.ratio:.2f}x",
                "higher" if fig.higher_is_better else "lower",
                fig.goal_text,
                fig.verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    numeric = {2, 3, 4}
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

"""Counters kept on the hot path as plain integers, folded into Prometheus at scrape time.

One ``prometheus_client`` counter plus histogram update costs ~2.3 µs, nearly the whole
per-request budget (docs/operations.md, Metrics); a dict lookup and two list increments
cost a tenth of that.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

LATENCY_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
OUTCOMES: Final = ("ok", "error", "cancelled")
OK: Final = 0
ERROR: Final = 1
CANCELLED: Final = 2


class MethodStats:
    """Counts and a latency histogram of one method."""

    __slots__ = ("buckets", "outcomes", "sum")

    def __init__(self) -> None:
        self.outcomes = [0, 0, 0]
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0


class Histogram:
    """A latency histogram over :data:`LATENCY_BUCKETS`."""

    __slots__ = ("buckets", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sum += seconds


class Stats:
    """Server-wide counters, shared by every session of the process."""

    def __init__(self) -> None:
        self.methods: dict[str, MethodStats] = {}
        self.connections_total = 0
        self.handshakes_rejected: dict[str, int] = {}
        self.mcp_requests = 0
        """Requests admitted on the MCP Streamable HTTP face."""
        self.closed_by_code: dict[int, int] = {}
        self.rate_limited = 0
        self.notifications_dropped = 0
        """Client notifications dropped over the rate budget."""
        self.messages_in = 0
        self.invalid_messages = 0
        self.notifications_sent = 0
        self.stream_items_sent = 0
        """Stream items (deltas, errors, ends) handed to subscribed sessions."""
        self.generations_running = 0
        self.generations: dict[str, int] = {}
        """Ended generations by finish reason."""
        self.first_token: dict[str, Histogram] = {}
        """Seconds from the start of a generation to its first token, by engine."""
        self.ghost_shown: dict[str, int] = {}
        """Ghost suggestions sent, by engine."""
        self.ghost_feedback: dict[tuple[str, str], int] = {}
        """Feedback by (engine, action: accepted, partial, rejected)."""
        self.ghost_latency: dict[str, Histogram] = {}
        """Seconds from a keystroke's arrival to its suggestions being queued, by engine."""
        self.ghost_stale = 0
        """Suggestions computed for a version overtaken meanwhile, and dropped."""
        self.ghost_resyncs = 0
        self.ghost_count_writes = 0
        """Transactions writing personal ghost counts (one per user and engine a flush)."""

    def record(self, method: str, outcome: int, seconds: float) -> None:
        stats = self.methods.get(method)
        if stats is None:
            stats = self.methods.setdefault(method, MethodStats())
        stats.outcomes[outcome] += 1
        stats.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        stats.sum += seconds

    def generation_ended(self, reason: str) -> None:
        self.generations[reason] = self.generations.get(reason, 0) + 1

    def first_token_after(self, engine: str, seconds: float) -> None:
        _observe(self.first_token, engine, seconds)

    def ghost_suggested(self, engine: str, items: int, seconds: float) -> None:
        self.ghost_shown[engine] = self.ghost_shown.get(engine, 0) + items
        _observe(self.ghost_latency, engine, seconds)

    def rejected(self, reason: str) -> None:
        self.handshakes_rejected[reason] = self.handshakes_rejected.get(reason, 0) + 1

    def closed(self, code: int) -> None:
        self.closed_by_code[code] = self.closed_by_code.get(code, 0) + 1


def _observe(histograms: dict[str, Histogram], key: str, seconds: float) -> None:
    histogram = histograms.get(key)
    if histogram is None:
        histogram = histograms[key] = Histogram()
    histogram.observe(seconds)

"""Prometheus exposition, folded from the plain counters at scrape time.

The hot path only bumps integers in :class:`~yamabiko.sessions.stats.Stats`; this
module turns them into metric families when ``/metrics`` is scraped
(docs/operations.md, Metrics).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, PROCESS_COLLECTOR, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from yamabiko.server.admission import Admission
from yamabiko.sessions.registry import SessionRegistry
from yamabiko.sessions.stats import LATENCY_BUCKETS, OUTCOMES, Stats


class StatsCollector:
    """A collector over one process's :class:`Stats`."""

    def __init__(
        self, stats: Stats, registry: SessionRegistry, admission: Admission | None = None
    ) -> None:
        self.stats = stats
        self.registry = registry
        self.admission = admission

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        yield GaugeMetricFamily(
            "yamabiko_connections", "Open WebSocket sessions.", value=len(self.registry)
        )
        yield CounterMetricFamily(
            "yamabiko_connections", "WebSocket sessions opened.", value=stats.connections_total
        )
        admission = self.admission
        if admission is not None:
            held = GaugeMetricFamily(
                "yamabiko_admitted",
                "Places held by admitted handshakes (in flight and established), by kind.",
                labels=["kind"],
            )
            held.add_metric(["socket"], admission.held("socket"))
            held.add_metric(["mcp_session"], admission.held("mcp_session"))
            yield held
        yield CounterMetricFamily(
            "yamabiko_mcp_requests",
            "Requests to the MCP Streamable HTTP face that were admitted.",
            value=stats.mcp_requests,
        )
        rejected = CounterMetricFamily(
            "yamabiko_handshakes_rejected", "Refused handshakes by reason.", labels=["reason"]
        )
        for reason, count in sorted(stats.handshakes_rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        closed = CounterMetricFamily(
            "yamabiko_sessions_closed_by_server",
            "Sessions the server closed, by close code.",
            labels=["code"],
        )
        for code, count in sorted(stats.closed_by_code.items()):
            closed.add_metric([str(code)], count)
        yield closed
        yield CounterMetricFamily(
            "yamabiko_messages_received", "WebSocket messages received.", value=stats.messages_in
        )
        yield CounterMetricFamily(
            "yamabiko_invalid_messages",
            "Messages answered with -32700 or -32600.",
            value=stats.invalid_messages,
        )
        yield CounterMetricFamily(
            "yamabiko_rate_limited", "Requests refused with -32029.", value=stats.rate_limited
        )
        yield CounterMetricFamily(
            "yamabiko_notifications_dropped",
            "Client notifications dropped over the rate budget.",
            value=stats.notifications_dropped,
        )
        yield CounterMetricFamily(
            "yamabiko_notifications_sent",
            "Notifications queued to clients.",
            value=stats.notifications_sent,
        )
        yield CounterMetricFamily(
            "yamabiko_stream_items_sent",
            "Stream items handed to subscribed sessions.",
            value=stats.stream_items_sent,
        )
        yield GaugeMetricFamily(
            "yamabiko_generations_running",
            "LLM generations running on this node.",
            value=stats.generations_running,
        )
        generations = CounterMetricFamily(
            "yamabiko_generations", "Ended generations by finish reason.", labels=["reason"]
        )
        for reason, count in sorted(stats.generations.items()):
            generations.add_metric([reason], count)
        yield generations
        first_token = HistogramMetricFamily(
            "yamabiko_engine_first_token_seconds",
            "Time from the start of a generation to its first token, by engine.",
            labels=["engine"],
        )
        for engine, histogram in sorted(stats.first_token.items()):
            first_token.add_metric([engine], _buckets(histogram.buckets), histogram.sum)
        yield first_token
        yield from _ghost(stats)
        requests = CounterMetricFamily(
            "yamabiko_requests", "Requests by method and outcome.", labels=["method", "outcome"]
        )
        latency = HistogramMetricFamily(
            "yamabiko_request_seconds", "Request latency by method.", labels=["method"]
        )
        for method, ms in sorted(stats.methods.items()):
            for outcome, count in zip(OUTCOMES, ms.outcomes, strict=True):
                if count:
                    requests.add_metric([method, outcome], count)
            latency.add_metric([method], _buckets(ms.buckets), ms.sum)
        yield requests
        yield latency


def _ghost(stats: Stats) -> Iterator[Metric]:
    shown = CounterMetricFamily(
        "yamabiko_ghost_suggestions", "Ghost suggestions sent, by engine.", labels=["engine"]
    )
    for engine, count in sorted(stats.ghost_shown.items()):
        shown.add_metric([engine], count)
    yield shown
    feedback = CounterMetricFamily(
        "yamabiko_ghost_feedback",
        "Ghost suggestions accepted, partially accepted or rejected, by engine.",
        labels=["engine", "action"],
    )
    for (engine, action), count in sorted(stats.ghost_feedback.items()):
        feedback.add_metric([engine, action], count)
    yield feedback
    latency = HistogramMetricFamily(
        "yamabiko_ghost_latency_seconds",
        "From a keystroke's arrival to its suggestions being queued, by engine.",
        labels=["engine"],
    )
    for engine, histogram in sorted(stats.ghost_latency.items()):
        latency.add_metric([engine], _buckets(histogram.buckets), histogram.sum)
    yield latency
    yield CounterMetricFamily(
        "yamabiko_ghost_stale",
        "Suggestions dropped because their version was overtaken.",
        value=stats.ghost_stale,
    )
    yield CounterMetricFamily(
        "yamabiko_ghost_resyncs", "ghost/resync notifications sent.", value=stats.ghost_resyncs
    )
    yield CounterMetricFamily(
        "yamabiko_ghost_count_writes",
        "Store transactions writing personal ghost counts (coalesced feedback).",
        value=stats.ghost_count_writes,
    )


def _buckets(counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts as Prometheus's cumulative ``(le, count)`` pairs."""
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    return buckets


class _Both:
    def __init__(self, ours: StatsCollector) -> None:
        self.ours = ours

    def collect(self) -> Iterator[Metric]:
        yield from self.ours.collect()
        yield from PROCESS_COLLECTOR.collect()


def render_metrics(
    stats: Stats, registry: SessionRegistry, admission: Admission | None = None
) -> tuple[bytes, str]:
    """The ``/metrics`` body and its content type."""
    collector = StatsCollector(stats, registry, admission)
    return generate_latest(_Both(collector)), CONTENT_TYPE_LATEST

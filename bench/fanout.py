"""Fan-out: one token stream read by 100 and by 1,000 subscribers, against a bare
``websockets`` server sending the same bytes to as many connections.

- **yamabiko**: a sender connection (in the bench process) sends ``chat/send`` with
  model ``openai/gpt-bench``; the fake OpenAI server waits ``first_delay`` and then
  streams its tokens as fast as it can. The sender unsubscribes at once (it reads
  nothing), and N other connections, in a worker process (:mod:`bench.subscribers`),
  send ``stream/subscribe {streamId, afterSeq: 0}`` during the delay, then read every
  ``stream/delta`` until ``stream/end``.
- **broadcast**: the same client code, the same requests to the ``broadcast`` server of
  :mod:`bench.serve`: ``chat/send`` starts a stream after the same delay, and each
  subscriber gets the same notifications, byte for byte in size, sent with one
  ``await ws.send(data, text=True)`` per connection per item, item by item.

A reader that falls behind may get several deltas merged into one (Yamabiko only; the
baseline has no such thing): the figure counts *items* (a merged delta counts its seq
range), so both servers deliver the same number, N x tokens; the frames are reported
beside it. The rate is the items received by all subscribers over the time from the
first delta to the last ``stream/end`` (the worker's clock; the same monotonic clock
as the bench's). Tokens per stream are sized so that N x tokens is about the same for
every N. Rounds alternate between the servers; each server's best round is reported.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from bench import wsclient
from bench.figures import Figure
from bench.harness import Harness
from bench.proc import end_process, read_line
from bench.servers import BROADCAST, ROOT, YAMABIKO, ServerProcess, Target, hello_frames

KINDS = (YAMABIKO, BROADCAST)
GOAL = 0.8
AGAINST = "ws broadcast"
MODEL = "openai/gpt-bench"
MESSAGE = "Stream a long reply."


@dataclass(frozen=True)
class Round:
    items: int
    frames: int
    merged: int
    seconds: float
    """From the source's first token (the fake provider's, or the baseline's producer
    starting) to the last stream/end received."""
    first_delta_s: float
    """From the source's first token to the first delta any subscriber received."""
    last_first_delta_s: float
    """... to the first delta of the subscriber that got its first one last."""
    server_cpu_s: float
    """The server's CPU time from all subscribed to all ended."""
    client_cpu_s: float
    subscribe_s: float
    late_subscribers: bool
    """Some subscribe answer came after the first delta (first_delay was too short)."""
    gc_s: float
    """Seconds the server spent in its cyclic garbage collector over the same window."""
    full_gcs: int
    tracked: int
    """Objects the server's garbage collector tracked after the stream."""

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("nan")

    @property
    def rate_after_first_delta(self) -> float:
        """Items over the time from the first delta received to the last end."""
        window = self.seconds - self.first_delta_s
        return self.items / window if window > 0 else float("nan")

    @property
    def frame_rate(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    @property
    def server_us_per_item(self) -> float:
        return self.server_cpu_s / self.items * 1e6 if self.items else float("nan")


def run(harness: Harness) -> list[Figure]:
    options = harness.options
    yamabiko, fake = harness.yamabiko_with_openai()
    servers = {YAMABIKO: yamabiko, BROADCAST: harness.server(BROADCAST)}
    # Where each stream's tokens come from.
    sources = {YAMABIKO: fake, BROADCAST: servers[BROADCAST]}
    figures: list[Figure] = []
    for count in options.fanout_subscribers:
        tokens = max(1, min(options.fanout_max_tokens, options.fanout_deliveries // count))
        # Long enough for every subscriber to be in before the first token.
        script = {"tokens": tokens, "first_delay": 0.3 + 0.001 * count}
        fake.command("script", script)
        servers[BROADCAST].command("script", script)
        rounds: dict[str, list[Round]] = {kind: [] for kind in KINDS}
        with contextlib.ExitStack() as stack:
            readers = {
                kind: stack.enter_context(Readers(servers[kind].target, count, options.workers))
                for kind in KINDS
            }
            for number, kind in _rounds(options.fanout_rounds):
                found = _round(servers[kind], sources[kind], readers[kind], tokens)
                rounds[kind].append(found)
                harness.progress(
                    f"fan-out {count}, round {number}, {kind}: {found.rate:,.0f} deltas/s, "
                    f"{found.frame_rate:,.0f} frames/s, server "
                    f"{found.server_us_per_item:.2f} us CPU per delta"
                )
        best = {kind: max(rounds[kind], key=lambda r: r.rate) for kind in KINDS}
        for kind in KINDS:
            b = best[kind]
            listed = ", ".join(f"{r.rate:,.0f}" for r in rounds[kind])
            harness.note(
                f"fan-out {count} x {tokens} tokens, {kind}: rounds {listed} deltas/s; in the "
                f"best one {b.merged:,} merged frames ({b.frames:,} frames for {b.items:,} "
                f"deltas), the server used {b.server_cpu_s / b.seconds:.0%} of a core, the "
                f"subscribers {b.client_cpu_s / b.seconds:.0%}; subscribing took "
                f"{b.subscribe_s * 1000:.0f} ms; the first delta reached a subscriber "
                f"{b.first_delta_s * 1000:.0f} ms after the first token, the last subscriber "
                f"{b.last_first_delta_s * 1000:.0f} ms after ({b.rate_after_first_delta:,.0f} "
                f"deltas/s counted from the first delta received); the server's garbage "
                f"collector took "
                f"{b.gc_s / b.server_cpu_s if b.server_cpu_s else 0:.0%} of its CPU time "
                f"({b.full_gcs} full collections, {b.tracked:,} objects tracked)"
            )
            if any(r.late_subscribers for r in rounds[kind]):
                harness.note(
                    f"fan-out {count}, {kind}: some subscribers came in after the first "
                    f"delta (replayed): raise first_delay"
                )
        y, b = best[YAMABIKO], best[BROADCAST]
        figures += [
            Figure(f"fan-out to {count:,} subscribers", "deltas/s", y.rate, b.rate, True,
                   GOAL, against=AGAINST),
            Figure("  frames received", "frames/s", y.frame_rate, b.frame_rate, True,
                   against=AGAINST),
            Figure("  server CPU per delta", "us", y.server_us_per_item,
                   b.server_us_per_item, False, decimals=2, against=AGAINST),
        ]  # fmt: skip
    return figures


def _rounds(count: int) -> Iterator[tuple[int, str]]:
    for number in range(1, count + 1):
        kinds = KINDS if number % 2 else tuple(reversed(KINDS))
        for kind in kinds:
            yield number, kind


def _round(server: ServerProcess, source: ServerProcess, readers: Readers, tokens: int) -> Round:
    """One stream: send, subscribe everyone, read to the end."""
    target = server.target
    assert target is not None
    sender = wsclient.BlockingConnection.open(
        target.host, target.port, target.path, target.headers, reader=wsclient.StreamItemReader()
    )
    try:
        sender.sock.sendall(hello_frames())
        sender.wait_messages(target.hello_replies)
        sender.reader.payloads.clear()
        sent = _result(sender.call(2, "chat/send", {"message": MESSAGE, "model": MODEL}))
        stream_id = str(sent["streamId"])
        _result(sender.call(3, "stream/unsubscribe", {"streamId": stream_id}))
        subscribed = readers.subscribe(stream_id, tokens)
        gc_before = server.command("gc")
        cpu_before = server.cpu_seconds()
        results = readers.results()
        server_cpu = server.cpu_seconds() - cpu_before
        gc_after = server.command("gc")
        sender.call(4, "ping", {})
        reader = sender.reader
        assert isinstance(reader, wsclient.StreamItemReader)
        if reader.frames:
            raise RuntimeError(f"the sender got {reader.frames} deltas after unsubscribing")
    finally:
        sender.close()
    incomplete = sum(r["incomplete"] for r in results)
    others = sum(r["other_messages"] for r in results)
    if incomplete or others:
        raise RuntimeError(
            f"{target.kind}: {incomplete} subscribers missed deltas, {others} other messages"
        )
    started = float(source.command("last")["first_token_at"])
    first = min(r["first_at"] for r in results)
    last = max(r["last_end_at"] for r in results)
    return Round(
        items=sum(r["items"] for r in results),
        frames=sum(r["frames"] for r in results),
        merged=sum(r["merged"] for r in results),
        seconds=last - started,
        first_delta_s=first - started,
        last_first_delta_s=max(r["last_first_at"] for r in results) - started,
        server_cpu_s=server_cpu,
        client_cpu_s=sum(r["cpu_s"] for r in results),
        subscribe_s=max(s["took_s"] for s in subscribed),
        late_subscribers=max(s["subscribed_at"] for s in subscribed) > first,
        gc_s=sum(gc_after["seconds"]) - sum(gc_before["seconds"]),
        full_gcs=gc_after["collections"][2] - gc_before["collections"][2],
        tracked=int(gc_after["tracked"]),
    )


def _result(answer: dict[str, Any]) -> dict[str, Any]:
    result = answer.get("result")
    if not isinstance(result, dict):
        raise RuntimeError(f"request failed: {answer}")
    return result


class Readers:
    """The subscriber worker processes of one server, connected and idle between
    streams; ``count`` connections split over ``workers`` processes."""

    def __init__(self, target: Target | None, count: int, workers: int) -> None:
        assert target is not None
        workers = max(1, min(workers, count))
        self.shares = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]
        self.target = target
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Readers:
        try:
            for share in self.shares:
                config = {"target": self.target.to_json(), "connections": share}
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "bench.subscribers", json.dumps(config)],
                        cwd=ROOT,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                    )
                )
            for proc in self.procs:
                line = self._line(proc, 120.0)
                if line != "ready":
                    raise RuntimeError(f"a subscriber worker said {line!r} instead of 'ready'")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def subscribe(self, stream_id: str, tokens: int) -> list[dict[str, Any]]:
        """Every connection subscribes; returns each worker's ``subscribed`` line."""
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"subscribe {stream_id} {tokens}\n".encode())
            proc.stdin.flush()
        return [json.loads(self._line(proc, 60.0)) for proc in self.procs]

    def results(self) -> list[dict[str, Any]]:
        return [json.loads(self._line(proc, 180.0)) for proc in self.procs]

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.write(b"quit\n")
                proc.stdin.flush()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(3.0)
            end_process(proc)
        self.procs = []

    @staticmethod
    def _line(proc: subprocess.Popen[bytes], timeout_s: float) -> str:
        return read_line(proc, timeout_s=timeout_s, what="a subscriber worker")

"""Socket-level figures: Yamabiko against a bare ``websockets`` echo server and a bare
``picows`` echo server (the fastest Python WebSocket server we know: the ceiling).

- sequential: one connection, one 150-byte request at a time (``ping`` for Yamabiko,
  the same bytes echoed by the baseline); round trips per second, p50 and p99 latency;
- pipelined: 50 connections, each keeping a window of requests in flight; replies per
  second over a fixed duration, driven from separate load-generator processes; and the
  server's CPU time per message over the same window;
- idle memory: the server's RSS growth per idle, initialized connection, measured on a
  fresh server process.

Both servers get the same client code and the same bytes; only the replies differ.
Throughput is measured in rounds that alternate between the servers (the first server
swaps every round), and each server's best round is reported: unrelated load on the
machine only ever slows a round down, so the best one is the closest to what the server
can do (``timeit`` reasons the same way), and a burst of it skews one round, not one
server. The latency percentiles are those of the same best round.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvloop

from bench import wsclient
from bench.figures import Figure
from bench.harness import Harness
from bench.loadgen import FIRST_ID, RING, open_connections
from bench.proc import end_process as _end
from bench.proc import read_line as _read_line
from bench.servers import (
    ECHO,
    PICOWS_ECHO,
    ROOT,
    YAMABIKO,
    ServerProcess,
    Target,
    hello_frames,
)
from bench.servers import request_payload as make_request

KINDS = (YAMABIKO, ECHO, PICOWS_ECHO)
"""The servers compared here."""

# The socket goals (docs/development.md, Benchmarks), as Yamabiko / baseline ratios
# except the idle memory, an amount per connection.
PIPELINED_GOAL = 1.8
PIPELINED_PICOWS_GOAL = 0.75
SEQUENTIAL_GOAL = 1.2
CPU_PER_MESSAGE_GOAL = 0.5
IDLE_MEMORY_GOAL_KIB = 12.0
CONNECT_CPU_GOAL_MS = 0.25


def run(harness: Harness) -> list[Figure]:
    options = harness.options
    seq: dict[str, list[Sequential]] = {kind: [] for kind in KINDS}
    for number, kind in _rounds(options.sequential_rounds):
        seq[kind].append(_sequential(harness, kind, number))
    pipe: dict[str, list[Pipelined]] = {kind: [] for kind in KINDS}
    for number, kind in _rounds(options.rounds):
        pipe[kind].append(_pipelined(harness, kind, number))
    idle = {kind: _idle_memory(harness, kind) for kind in KINDS}
    mem = {kind: idle[kind][0] for kind in KINDS}
    connect_ms = {kind: idle[kind][1] for kind in KINDS}

    fastest = {k: max(seq[k], key=lambda r: r.rate) for k in KINDS}
    rate = {k: fastest[k].rate for k in KINDS}
    p50 = {k: _percentile(fastest[k].latencies_ns, 0.50) / 1000 for k in KINDS}
    p99 = {k: _percentile(fastest[k].latencies_ns, 0.99) / 1000 for k in KINDS}
    best = {k: max(pipe[k], key=lambda r: r.rate) for k in KINDS}
    for kind in KINDS:
        rounds = ", ".join(f"{r.rate:,.0f}" for r in seq[kind])
        harness.note(f"sequential, {kind}: rounds {rounds} rt/s")
    for kind in KINDS:
        rounds = ", ".join(f"{r.rate:,.0f}" for r in pipe[kind])
        b = best[kind]
        harness.note(
            f"pipelined, {kind}: rounds {rounds} msg/s; in the best one the server used "
            f"{b.server_cpu:.0%} of a core, the load generator {b.client_cpu:.0%}"
        )
    y, e, p = YAMABIKO, ECHO, PICOWS_ECHO
    pipelined = f"pipelined ({options.connections} conns x {options.window})"
    cpu = {k: best[k].server_us_per_message for k in KINDS}
    return [
        Figure("sequential round trips", "rt/s", rate[y], rate[e], True, SEQUENTIAL_GOAL),
        Figure("sequential round trips", "rt/s", rate[y], rate[p], True, against=p),
        Figure("sequential latency p50", "us", p50[y], p50[e], False, decimals=1),
        Figure("sequential latency p99", "us", p99[y], p99[e], False, decimals=1),
        Figure(pipelined, "msg/s", best[y].rate, best[e].rate, True, PIPELINED_GOAL),
        Figure(pipelined, "msg/s", best[y].rate, best[p].rate, True, PIPELINED_PICOWS_GOAL,
               against=p),
        Figure("  server CPU per message", "us", cpu[y], cpu[e], False, CPU_PER_MESSAGE_GOAL,
               decimals=2),
        Figure("  server CPU per message", "us", cpu[y], cpu[p], False, decimals=2, against=p),
        Figure(f"memory per idle connection ({options.idle_connections})", "KiB",
               mem[y], mem[e], False, IDLE_MEMORY_GOAL_KIB, decimals=1, goal_on="value"),
        Figure(f"memory per idle connection ({options.idle_connections})", "KiB",
               mem[y], mem[p], False, decimals=1, against=p),
        Figure("server CPU per connect (upgrade, JWT, initialize)", "ms", connect_ms[y],
               connect_ms[e], False, CONNECT_CPU_GOAL_MS, decimals=3, goal_on="value"),
    ]  # fmt: skip


def _rounds(count: int) -> Iterator[tuple[int, str]]:
    """(round number, server kind), alternating which server goes first."""
    for number in range(1, count + 1):
        kinds = KINDS if number % 2 else tuple(reversed(KINDS))
        for kind in kinds:
            yield number, kind


def _percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return float(sorted_values[index])


# Sequential


@dataclass(frozen=True)
class Sequential:
    rate: float
    latencies_ns: list[int]
    """Sorted."""


def _sequential(harness: Harness, kind: str, number: int) -> Sequential:
    """One round: warm up, then ``sequential_count / sequential_rounds`` round trips."""
    options = harness.options
    target = harness.server(kind).target
    assert target is not None
    count = max(1, options.sequential_count // options.sequential_rounds)
    conn = wsclient.BlockingConnection.open(target.host, target.port, target.path, target.headers)
    try:
        conn.sock.sendall(hello_frames())
        conn.wait_messages(target.hello_replies)
        requests = [make_request(FIRST_ID + i) for i in range(RING)]
        frames = [wsclient.frame(payload) for payload in requests]
        _check_reply(conn, target, FIRST_ID, requests[0], frames[0])
        round_trip = conn.round_trip
        for i in range(options.sequential_warmup):
            round_trip(frames[i % RING])
        latencies: list[int] = []
        record = latencies.append
        clock = time.perf_counter_ns
        deadline = clock() + int(options.sequential_max_s * 1e9)
        started = clock()
        for i in range(count):
            sent = clock()
            round_trip(frames[i % RING])
            done = clock()
            record(done - sent)
            if done > deadline:
                break
        elapsed = (clock() - started) / 1e9
    finally:
        conn.close()
    latencies.sort()
    result = Sequential(rate=len(latencies) / elapsed, latencies_ns=latencies)
    harness.progress(
        f"round {number}, {kind}: sequential {result.rate:,.0f} rt/s, "
        f"p50 {_percentile(latencies, 0.5) / 1000:.1f} us ({len(latencies):,} round trips)"
    )
    return result


def _check_reply(
    conn: wsclient.BlockingConnection,
    target: Target,
    request_id: int,
    request: bytes,
    frame: bytes,
) -> None:
    conn.reader.keep = True
    try:
        conn.round_trip(frame)
        reply = conn.reader.payloads[-1]
    finally:
        conn.reader.keep = False
        conn.reader.payloads.clear()
    if not target.is_good_reply(request_id, request, reply):
        raise RuntimeError(f"{target.kind} answered {reply[:200]!r} to {request!r}")


# Pipelined


@dataclass(frozen=True)
class Pipelined:
    rate: float
    server_cpu: float
    """Share of one core the server used during the measured window."""
    client_cpu: float
    """Share of one core the load generators used together."""
    server_us_per_message: float


def _pipelined(harness: Harness, kind: str, number: int) -> Pipelined:
    """One round: load-generator processes pump; count the replies of the window."""
    options = harness.options
    server = harness.server(kind)
    assert server.target is not None
    workers = max(1, min(options.workers, options.connections))
    shares = [options.connections // workers] * workers
    for i in range(options.connections % workers):
        shares[i] += 1
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for share in shares:
            config = {
                "target": server.target.to_json(),
                "connections": share,
                "window": options.window,
                "warmup_s": options.warmup_s,
                "duration_s": options.duration_s,
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.loadgen", json.dumps(config)],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            )
        for proc in procs:
            line = _read_line(proc, timeout_s=60.0)
            if line != "ready":
                raise RuntimeError(f"load generator said {line!r} instead of 'ready'")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        # The server's CPU over (about) the workers' measured window, read from /proc.
        time.sleep(options.warmup_s)
        cpu_before = server.cpu_seconds()
        time.sleep(options.duration_s)
        server_cpu = server.cpu_seconds() - cpu_before
        results = [
            json.loads(_read_line(proc, timeout_s=options.duration_s + 30.0)) for proc in procs
        ]
    finally:
        for proc in procs:
            _end(proc)
    if any(r["error_chunks"] or r["closed"] for r in results):
        raise RuntimeError(f"{kind} answered errors or closed connections: {results}")
    messages = sum(r["messages"] for r in results)
    seconds = max(r["seconds"] for r in results)
    result = Pipelined(
        rate=messages / seconds,
        server_cpu=server_cpu / options.duration_s,
        client_cpu=sum(r["cpu_s"] for r in results) / seconds,
        server_us_per_message=server_cpu / messages * 1e6 if messages else float("nan"),
    )
    harness.progress(
        f"round {number}, {kind}: pipelined {result.rate:,.0f} msg/s, server "
        f"{result.server_us_per_message:.2f} us CPU per message"
    )
    return result


# Idle memory


def _idle_memory(harness: Harness, kind: str) -> tuple[float, float]:
    """(KiB per idle connection, server CPU ms per connect) on a fresh server."""
    options = harness.options
    with harness.fresh_server(kind) as server:
        per_conn, before, after, connect_ms = uvloop.run(
            _idle_memory_async(server, options.idle_connections, options.settle_s)
        )
    harness.progress(
        f"{kind}: {per_conn:.1f} KiB per idle connection "
        f"(RSS {before:,} KiB -> {after:,} KiB with {options.idle_connections:,} connections), "
        f"{connect_ms:.3f} ms server CPU per connect"
    )
    return per_conn, connect_ms


async def _idle_memory_async(
    server: ServerProcess, count: int, settle_s: float
) -> tuple[float, int, int, float]:
    """(KiB per connection, RSS before, RSS after, server CPU ms per connect) for
    ``count`` idle connections. A connect is the upgrade, the token's check and the
    hello (``initialize`` and ``initialized``); the echo server only echoes the hello."""
    target = server.target
    assert target is not None
    # A few connections first, so that lazily built state is in the baseline.
    for conn in await open_connections(target, 16):
        conn.stop()
    await asyncio.sleep(settle_s)
    before = int(server.stats()["rss_kib"])
    cpu_before = server.cpu_seconds()
    conns = await open_connections(target, count)
    connect_ms = (server.cpu_seconds() - cpu_before) / count * 1000
    try:
        await asyncio.sleep(settle_s)
        after = int(server.stats()["rss_kib"])
        closed = sum(1 for c in conns if c.reader.closed)
        if closed:
            raise RuntimeError(f"{target.kind} closed {closed} idle connections")
    finally:
        for conn in conns:
            conn.stop()
    return (after - before) / count, before, after, connect_ms

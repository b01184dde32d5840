"""Every core: ``yamabiko serve --workers 2`` against ``--workers 1``, and what the
shared rate limiter costs per message with two workers.

Each server is the real command (``python -m yamabiko.server.cli serve --workers N``,
no MCP HTTP face), with the bench's limits (``servers.YAMABIKO_ENV``) and a Redis of the
bench's own (``redis-server`` on a free port, nothing saved), so that Redis's CPU and
command counts are this run's alone. The load is the socket scenario's pipelined load
(50 connections x 32 requests in flight, 150-byte ``ping``), from load-generator
processes of their own (``loadgen.py``; ``--workers`` of the bench sets how many);
their CPU is reported beside the servers', which is the supervisor's plus every
worker's (``/proc``).

- **two workers vs one**: replies per second, rounds alternating between the two
  servers, the best round of each;
- **the rate limiter with two workers**: the same load of ``stream/unsubscribe`` (a
  rate-limited request as cheap as ``ping`` to serve; ``ping`` is exempt from rate
  limits), against ``ping`` on the same server: Redis round trips per message (Redis's
  own count of ``EVALSHA`` calls: one per batch and tenant), Redis's CPU per message,
  and the server's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import proc
from bench.figures import NO_BASELINE, Figure
from bench.harness import Harness
from bench.servers import ROOT, YAMABIKO, YAMABIKO_ENV, Target

SCALING_GOAL = 1.3
"""Two workers' replies per second over one worker's, on two cores."""
ROUND_TRIPS_GOAL = 0.1
"""Redis round trips per rate-limited message under pipelined load: at most one per ten."""
LIMITED = ("stream/unsubscribe", {"streamId": "s"})
RUNNING_LIMIT = 8
"""``YAMABIKO_MAX_RUNNING_REQUESTS``'s default."""


def run(harness: Harness) -> list[Figure]:
    if shutil.which("redis-server") is None:
        harness.note("workers: skipped, no redis-server on PATH")
        return []
    options = harness.options
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(harness.workdir))
        one = stack.enter_context(served(harness.workdir, 1, redis_url))
        two = stack.enter_context(served(harness.workdir, 2, redis_url))
        if True:
            rounds: dict[int, list[Round]] = {1: [], 2: []}
            for number in range(1, options.rounds + 1):
                order = (one, two) if number % 2 else (two, one)
                for server in order:
                    result = pipelined(harness, server)
                    rounds[server.workers].append(result)
                    harness.progress(
                        f"round {number}, {server.workers} worker(s): {result.rate:,.0f} msg/s, "
                        f"server {result.server_cpu:.0%}, load {result.client_cpu:.0%} of a core"
                    )
            limited = [
                pipelined(harness, two, redis_url=redis_url, request=LIMITED)
                for _ in range(max(1, options.rounds - 1))
            ]
    best = {n: max(rounds[n], key=lambda r: r.rate) for n in (1, 2)}
    lim = max(limited, key=lambda r: r.rate)
    for n in (1, 2):
        text = ", ".join(f"{r.rate:,.0f}" for r in rounds[n])
        b = best[n]
        harness.note(
            f"workers, {n} worker(s), ping: rounds {text} msg/s; in the best one the "
            f"server processes used {b.server_cpu:.0%} of a core, the load generator "
            f"{b.client_cpu:.0%}"
        )
    harness.note(
        f"workers, 2 workers, {LIMITED[0]} (rate-limited through Redis): "
        f"{lim.rate:,.0f} msg/s, {lim.messages_per_round_trip:,.0f} messages per Redis round "
        f"trip, Redis {lim.redis_us_per_message:.2f} us CPU per message, server "
        f"{lim.server_us_per_message:.2f} us (ping: {best[2].server_us_per_message:.2f} us)"
    )
    pipe = f"({options.connections} conns x {options.window})"
    return [
        Figure(f"two workers vs one, pipelined {pipe}", "msg/s", best[2].rate, best[1].rate,
               True, SCALING_GOAL, against="1 worker"),
        Figure("  load generator CPU (2 workers)", "% core", best[2].client_cpu * 100,
               best[1].client_cpu * 100, False, against="1 worker"),
        Figure("  server CPU per message", "us", best[2].server_us_per_message,
               best[1].server_us_per_message, False, decimals=2, against="1 worker"),
        Figure("rate-limited, 2 workers: Redis round trips per message", "rt",
               lim.round_trips_per_message, NO_BASELINE, False, ROUND_TRIPS_GOAL,
               decimals=4, against="-", goal_on="value"),
        Figure("  server CPU per message, rate-limited vs ping", "us",
               lim.server_us_per_message, best[2].server_us_per_message, False, decimals=2,
               against="ping"),
        Figure("  Redis CPU per rate-limited message", "us", lim.redis_us_per_message,
               NO_BASELINE, False, decimals=2, against="-", goal_on="value"),
    ]  # fmt: skip


@dataclass(frozen=True)
class Round:
    rate: float
    server_cpu: float
    """Share of one core the server's processes used together."""
    client_cpu: float
    server_us_per_message: float
    round_trips_per_message: float = float("nan")
    redis_us_per_message: float = float("nan")

    @property
    def messages_per_round_trip(self) -> float:
        return 1 / self.round_trips_per_message if self.round_trips_per_message else float("inf")


@dataclass
class Served:
    workers: int
    target: Target
    process: subprocess.Popen[bytes]

    def pids(self) -> list[int]:
        """The supervisor (or the single process) and its workers."""
        pids = [self.process.pid]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                pids.append(int(entry))
        return pids

    def cpu_seconds(self, pids: list[int]) -> float:
        return sum(proc.cpu_seconds(pid) for pid in pids)


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A ``redis-server`` of this run on a free port (nothing saved); its URL."""
    from redis import Redis

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        server.terminate()
        server.wait(10)


@contextlib.contextmanager
def served(workdir: Path, workers: int, redis_url: str) -> Iterator[Served]:
    """``yamabiko serve --workers N`` on a free port, until the block ends (SIGTERM)."""
    from yamabiko.server.auth import mint_token
    from yamabiko.server.datadir import read_data_dir

    data_dir = workdir / f"workers{workers}-data"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("YAMABIKO_", "BENCH_")) and not k.endswith(("_API_KEY", "_BASE_URL"))
    }
    env.update(YAMABIKO_ENV)
    env.update({"YAMABIKO_REDIS_URL": redis_url, "YAMABIKO_DATA_DIR": str(data_dir)})
    cmd = [sys.executable, "-m", "yamabiko.server.cli", "serve", "--workers", str(workers),
           "--port", "0", "--no-mcp-http"]  # fmt: skip
    with open(workdir / f"workers{workers}.log", "wb") as log:
        process = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
        )
    try:
        line = proc.read_line(process, timeout_s=120.0, what=f"yamabiko --workers {workers}")
        if not line.startswith("listening on ws://"):
            raise RuntimeError(f"yamabiko --workers {workers} printed {line!r}")
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        token = mint_token(read_data_dir(data_dir).jwt_secret, sub="bench", tenant="bench")
        target = Target(
            YAMABIKO, "127.0.0.1", port, process.pid,
            headers={"Authorization": f"Bearer {token}"}, hello_replies=1,
        )  # fmt: skip
        yield Served(workers, target, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _redis_counts(url: str) -> tuple[int, float]:
    """(EVALSHA calls, Redis CPU seconds) so far."""
    from redis import Redis

    client = Redis.from_url(url)
    try:
        calls = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
        cpu = client.info("cpu")
        return int(calls), float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    finally:
        client.close()


def pipelined(
    harness: Harness,
    server: Served,
    *,
    redis_url: str | None = None,
    request: tuple[str, dict[str, Any]] | None = None,
) -> Round:
    """One round of pipelined load on ``server`` (``request``: method and params instead
    of ``ping``; ``redis_url``: also count Redis's work)."""
    options = harness.options
    count = max(1, min(options.workers, options.connections))
    shares = [options.connections // count] * count
    for i in range(options.connections % count):
        shares[i] += 1
    pids = server.pids()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for share in shares:
            config: dict[str, Any] = {
                "target": server.target.to_json(),
                "connections": share,
                "window": options.window,
                "warmup_s": options.warmup_s,
                "duration_s": options.duration_s,
            }
            if request is not None:
                config["method"], config["params"] = request
                # A request that waits (for the limiter) holds one of the session's
                # running slots: more in flight than YAMABIKO_MAX_RUNNING_REQUESTS (8)
                # would be refused.
                config["window"] = min(options.window, RUNNING_LIMIT)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.loadgen", json.dumps(config)],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            )
        for p in procs:
            line = proc.read_line(p, timeout_s=60.0)
            if line != "ready":
                raise RuntimeError(f"load generator said {line!r} instead of 'ready'")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            p.stdin.flush()
        time.sleep(options.warmup_s)
        cpu_before = server.cpu_seconds(pids)
        redis_before = _redis_counts(redis_url) if redis_url else (0, 0.0)
        time.sleep(options.duration_s)
        server_cpu = server.cpu_seconds(pids) - cpu_before
        redis_after = _redis_counts(redis_url) if redis_url else (0, 0.0)
        results = [
            json.loads(proc.read_line(p, timeout_s=options.duration_s + 30.0)) for p in procs
        ]
    finally:
        for p in procs:
            proc.end_process(p)
    if any(r["error_chunks"] or r["closed"] for r in results):
        raise RuntimeError(f"--workers {server.workers}: errors or closed sockets: {results}")
    messages = sum(r["messages"] for r in results)
    seconds = max(r["seconds"] for r in results)
    # The Redis counts cover the server's window (duration_s), not the load's exactly.
    in_window = messages * options.duration_s / seconds if seconds else 0.0
    nan = float("nan")
    return Round(
        rate=messages / seconds,
        server_cpu=server_cpu / options.duration_s,
        client_cpu=sum(r["cpu_s"] for r in results) / seconds,
        server_us_per_message=server_cpu / messages * 1e6 if messages else nan,
        round_trips_per_message=(redis_after[0] - redis_before[0]) / in_window
        if redis_url and in_window
        else nan,
        redis_us_per_message=(redis_after[1] - redis_before[1]) / in_window * 1e6
        if redis_url and in_window
        else nan,
    )

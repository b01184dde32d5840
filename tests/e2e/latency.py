"""Another tenant's view of an attack: round trips of its pings while the attack runs."""

from __future__ import annotations

import asyncio
import time

from yamabiko.client import Client


class Pinger:
    """Another tenant's client pinging in a loop; its round trips are the figure."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.latencies: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Pinger:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        async with asyncio.timeout(5):
            await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            await self.client.call("ping", timeout=5)
            self.latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)  # a ping every ~5 ms: a steady probe, not a flood

    def report(self, what: str) -> float:
        ordered = sorted(self.latencies)
        p50 = ordered[len(ordered) // 2]
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(
            f"\n{what}: {len(ordered)} pings, p50 {p50 * 1000:.1f} ms,"
            f" p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
        )
        return ordered[-1]

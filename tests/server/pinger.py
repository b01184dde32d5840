"""Another tenant's client, in a process of its own: pings a node back to back until
its stdin closes, then prints the round trips' p99, worst and count as JSON, with when the
slowest (over 200 ms) started, on the machine's monotonic clock.

A process of its own so that what it measures is the node, not the test process that
drives thousands of sockets. Usage: ``python -m tests.server.pinger URL TOKEN``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from yamabiko.client import Client


async def main(url: str, token: str) -> None:
    client = await Client.connect(url, token=token)
    latencies: list[float] = []
    slow: list[tuple[float, float]] = []
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    print("ready", flush=True)
    while not stdin_closed.done():
        started = time.monotonic()
        async with asyncio.timeout(10):
            await client.call("ping")
        latencies.append(time.monotonic() - started)
        if latencies[-1] > 0.2:
            slow.append((round(started, 3), round(latencies[-1], 3)))
    await client.close()
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    summary = {"p99": p99, "worst": ordered[-1], "count": len(ordered), "slow": slow[:20]}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

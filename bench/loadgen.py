"""Load generation: opening many connections, and the pipelined worker process.

The pipelined load runs in worker processes (``python -m bench.loadgen CONFIG_JSON``),
never in the server's: each worker opens its connections, prints ``ready``, waits for
``go`` on stdin (so that several workers start together), pumps for ``warmup_s`` and
then counts the replies that arrive during ``duration_s``. It prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import uvloop

from bench import wsclient
from bench.proc import raise_nofile_limit
from bench.servers import Target, hello_frames, request_payload

RING = 1024
"""Distinct request ids cycled through per connection (more than any window)."""
FIRST_ID = 100_000
"""Ids from here to ``FIRST_ID + RING`` have the same number of digits: equal frames."""


def request_ring(method: str = "ping", params: dict[str, Any] | None = None) -> tuple[bytes, int]:
    """:data:`RING` prebuilt request frames (``ping``, or ``method`` with ``params``),
    twice over, and the size of one frame."""
    frames = [wsclient.frame(request_payload(FIRST_ID + i, method, params)) for i in range(RING)]
    size = len(frames[0])
    assert all(len(f) == size for f in frames), "request frames differ in size"
    return b"".join(frames) * 2, size


async def open_connections(
    target: Target,
    count: int,
    *,
    concurrency: int = 64,
    timeout_s: float = 30.0,
    ring: bytes = b"",
    frame_size: int = 0,
    reader: Callable[[], wsclient.FrameReader] = wsclient.FrameReader,
    hello: bytes | None = None,
) -> list[wsclient.StreamConnection]:
    """``count`` upgraded connections that have said hello (``hello``, default
    :func:`~bench.servers.hello_frames`); all or none (bounded). ``reader`` makes each
    connection's frame reader."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    if hello is None:
        hello = hello_frames()
    opened: list[wsclient.StreamConnection] = []

    async def one() -> None:
        async with gate:
            request, accept = wsclient.handshake_request(
                target.host, target.port, target.path, target.headers
            )
            _, conn = await loop.create_connection(
                lambda: wsclient.StreamConnection(
                    request,
                    accept,
                    hello,
                    target.hello_replies,
                    ring=ring,
                    frame_size=frame_size,
                    ring_count=RING,
                    reader=reader(),
                ),
                target.host,
                target.port,
            )
            opened.append(conn)
            await conn.ready

    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*(one() for _ in range(count)))
    except BaseException:
        for conn in opened:
            conn.stop()
        raise
    return opened


async def _read_line() -> bytes:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return (await reader.readline()).strip()


async def pipelined(config: dict[str, Any]) -> dict[str, Any]:
    """Run one worker's share of the pipelined load; see the module docstring."""
    target = Target.from_json(config["target"])
    window = int(config["window"])
    if not 0 < window <= RING:
        raise ValueError(f"window must be in 1..{RING}")
    ring, size = request_ring(config.get("method", "ping"), config.get("params"))
    conns = await open_connections(target, int(config["connections"]), ring=ring, frame_size=size)
    try:
        print("ready", flush=True)
        if await _read_line() != b"go":
            raise RuntimeError("expected 'go' on stdin")
        for conn in conns:
            conn.pump(window)
        await asyncio.sleep(float(config["warmup_s"]))
        before = sum(c.received for c in conns)
        cpu_before = time.process_time()
        started = time.monotonic()
        await asyncio.sleep(float(config["duration_s"]))
        after = sum(c.received for c in conns)
        seconds = time.monotonic() - started
        cpu = time.process_time() - cpu_before
        return {
            "messages": after - before,
            "seconds": seconds,
            "cpu_s": cpu,
            "error_chunks": sum(c.error_chunks for c in conns),
            "closed": sum(1 for c in conns if c.reader.closed),
        }
    finally:
        for conn in conns:
            conn.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.loadgen CONFIG_JSON", file=sys.stderr)
        return 2
    raise_nofile_limit()
    result = uvloop.run(pipelined(json.loads(argv[0])))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""The readers of a fan-out stream, in a worker process: ``python -m bench.subscribers
CONFIG_JSON`` (``{"target": ..., "connections": N}``).

The worker opens its connections (each says hello), prints ``ready``, then acts on
each line of stdin:

- ``subscribe STREAM_ID TOKENS``: every connection sends ``stream/subscribe {streamId,
  afterSeq: 0}``; once each has its answer the worker prints ``{"subscribed_at": T}``,
  then waits (bounded) until each connection has received ``stream/end`` and prints one
  JSON line: items (deltas, merged ones counted by their seq range) and frames summed
  over the connections, the arrival of the first delta and of the last end
  (``time.monotonic()``, the same clock in every process), and what went wrong;
- ``quit`` (or end of input): closes the connections and exits.

The frames are counted by :class:`bench.wsclient.StreamItemReader`, which decodes only
the merged deltas: the worker must cost far less per delta than the server.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import uvloop

from bench import wsclient
from bench.loadgen import open_connections
from bench.proc import raise_nofile_limit
from bench.servers import Target

SUBSCRIBE_ID = 2


def subscribe_frame(stream_id: str) -> bytes:
    params = {"streamId": stream_id, "afterSeq": 0}
    request = {"jsonrpc": "2.0", "id": SUBSCRIBE_ID, "method": "stream/subscribe", "params": params}
    return wsclient.frame(json.dumps(request, separators=(",", ":")).encode())


def _reader(conn: wsclient.StreamConnection) -> wsclient.StreamItemReader:
    reader = conn.reader
    assert isinstance(reader, wsclient.StreamItemReader)
    return reader


async def _wait(
    conns: list[wsclient.StreamConnection], done: Any, timeout_s: float, what: str
) -> None:
    """Poll until ``done(reader)`` holds for every connection (or raise)."""
    deadline = time.monotonic() + timeout_s
    pending = list(conns)
    while True:
        pending = [c for c in pending if not done(_reader(c))]
        if not pending:
            return
        closed = sum(1 for c in pending if c.reader.closed or c.transport is None)
        if closed or time.monotonic() > deadline:
            raise RuntimeError(
                f"{len(pending)} of {len(conns)} connections never {what} "
                f"({closed} closed by the server)"
            )
        await asyncio.sleep(0.005)


async def _stream(
    conns: list[wsclient.StreamConnection], stream_id: str, tokens: int, timeout_s: float
) -> dict[str, Any]:
    for conn in conns:
        _reader(conn).reset()
    data = subscribe_frame(stream_id)
    started = time.monotonic()
    for conn in conns:
        assert conn.transport is not None
        conn.transport.write(data)
    await _wait(conns, lambda r: bool(r.payloads), timeout_s, "had their subscribe answered")
    subscribed_at = time.monotonic()
    refused = [
        p for c in conns for p in _reader(c).payloads if b'"result"' not in p or b'"error"' in p
    ]
    if refused:
        raise RuntimeError(f"stream/subscribe refused: {refused[0][:300]!r}")
    print(json.dumps({"subscribed_at": subscribed_at, "took_s": subscribed_at - started}))
    sys.stdout.flush()
    cpu_before = time.process_time()
    await _wait(conns, lambda r: r.end_at is not None, timeout_s, "received stream/end")
    cpu = time.process_time() - cpu_before
    readers = [_reader(c) for c in conns]
    firsts = [r.first_at for r in readers if r.first_at is not None]
    return {
        "items": sum(r.items for r in readers),
        "frames": sum(r.frames for r in readers),
        "merged": sum(r.merged for r in readers),
        "first_at": min(firsts) if firsts else None,
        "last_first_at": max(firsts) if firsts else None,
        "last_end_at": max(r.end_at for r in readers if r.end_at is not None),
        "incomplete": sum(1 for r in readers if r.items != tokens),
        "other_messages": sum(len(r.payloads) - 1 for r in readers),
        "cpu_s": cpu,
    }


async def serve(config: dict[str, Any]) -> None:
    target = Target.from_json(config["target"])
    timeout_s = float(config.get("timeout_s", 120.0))
    conns = await open_connections(
        target, int(config["connections"]), reader=wsclient.StreamItemReader
    )
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    try:
        print("ready", flush=True)
        while True:
            words = (await stdin.readline()).decode().split()
            if not words or words[0] == "quit":
                return
            if words[0] != "subscribe" or len(words) != 3:
                raise RuntimeError(f"unknown command {words!r}")
            result = await _stream(conns, words[1], int(words[2]), timeout_s)
            print(json.dumps(result), flush=True)
    finally:
        for conn in conns:
            conn.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.subscribers CONFIG_JSON", file=sys.stderr)
        return 2
    raise_nofile_limit()
    uvloop.run(serve(json.loads(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

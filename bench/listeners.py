"""The listeners of the audio scenario, in a worker process: ``python -m bench.listeners
CONFIG_JSON``.

CONFIG: ``{"target": ..., "streams": N, "params": {...}, "timeout_s": S, "out": PATH}``.
The worker opens ``N`` connections (one session each) that declare ``capabilities:
{audio: {binary: true}}``, prints ``ready`` and waits for ``go`` on stdin. Then every
connection sends ``audio/synthesize`` with ``params`` at once and reads its stream to
``audio/end``, keeping each binary frame's streamNo, seq, flags, payload size and
arrival time (``time.monotonic()`` when the bytes reached the worker's event loop, the
same clock in every process) and a SHA-256 of the payloads. When every stream has
ended (or after ``S`` seconds) it writes what it saw to ``PATH`` as JSON and prints
``done``.
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
from bench.servers import Target, hello_frames

BINARY = {"audio": {"binary": True}}
"""The capability that makes the server send frames as binary messages."""
REQUEST_ID = 2


def synthesize_frame(params: dict[str, Any], request_id: int = REQUEST_ID) -> bytes:
    message = {"jsonrpc": "2.0", "id": request_id, "method": "audio/synthesize", "params": params}
    return wsclient.frame(json.dumps(message, separators=(",", ":")).encode())


def _reader(conn: wsclient.StreamConnection) -> wsclient.AudioFrameReader:
    reader = conn.reader
    assert isinstance(reader, wsclient.AudioFrameReader)
    return reader


async def listen(config: dict[str, Any]) -> None:
    target = Target.from_json(config["target"])
    conns = await open_connections(
        target,
        int(config["streams"]),
        reader=lambda: wsclient.AudioFrameReader(digest=True),
        hello=hello_frames(BINARY),
    )
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    try:
        for conn in conns:
            _reader(conn).clear()
        print("ready", flush=True)
        if (await stdin.readline()).strip() != b"go":
            raise RuntimeError("expected 'go' on stdin")
        request = synthesize_frame(config["params"])
        cpu_before = time.process_time()
        sent: list[float] = []
        for conn in conns:
            assert conn.transport is not None
            sent.append(time.monotonic())
            conn.transport.write(request)
        deadline = time.monotonic() + float(config["timeout_s"])
        readers = [_reader(c) for c in conns]
        while not all(r.ends or r.closed for r in readers) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        cpu = time.process_time() - cpu_before
        streams = []
        for reader, at in zip(readers, sent, strict=True):
            messages = [json.loads(p) for p in reader.payloads]
            response = next((m for m in messages if m.get("id") == REQUEST_ID), None)
            end = next((m["params"] for m in messages if m.get("method") == "audio/end"), None)
            streams.append(
                {
                    "sent": at,
                    "response": response,
                    "end": end,
                    "frames": [list(f) for f in reader.frames],
                    "sha256": {str(n): d.hexdigest() for n, d in reader.digests.items()},
                    "others": [m for m in messages if m is not response and m.get("params") != end],
                    "closed": reader.closed,
                }
            )
        with open(config["out"], "w", encoding="utf-8") as out:
            json.dump({"streams": streams, "cpu_s": cpu}, out)
        print("done", flush=True)
    finally:
        for conn in conns:
            conn.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.listeners CONFIG_JSON", file=sys.stderr)
        return 2
    raise_nofile_limit()
    uvloop.run(listen(json.loads(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

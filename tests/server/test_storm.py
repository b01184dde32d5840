"""A reconnect storm on the scale-out set-up: a fleet of one user's clients subscribes
to one stream at once on one node, then reconnects and resumes it with ``afterSeq``,
while another tenant pings (docs/deployment.md, "Shared services under load").

The node is a ``yamabiko serve`` process on Redis; the stream is produced in Redis by
this test, standing in for the node that runs the generation, so that the test decides
when items are published. Every subscribe must succeed, every client must get every
item exactly once, and the other tenant's pings must stay answered promptly.
"""

from __future__ import annotations

import asyncio
import json
import resource
import secrets
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.server.nodes import serve_node
from tests.support import STREAM_METHODS, StreamRead
from yamabiko.client import Client
from yamabiko.protocol.messages import encode_notification
from yamabiko.schema import stream as schema
from yamabiko.server.auth import mint_token
from yamabiko.store.redis_broker import RedisBroker

pytestmark = pytest.mark.redis

BEFORE = 20
"""Items published before the storm: replayed from history to each subscriber."""
DURING = 20
"""Items published after the first storm: each client reads up to here, then leaves."""
AFTER = 20
"""Items published after the reconnect storm, then the end."""


def raise_open_files_limit() -> None:
    """Thousands of sockets in this process and in the node (which inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Producer:
    """The node running the generation, as far as Redis can tell."""

    def __init__(self, broker: RedisBroker, stream_id: str) -> None:
        self.broker = broker
        self.stream_id = stream_id
        self.seq = 0
        self.text = ""

    async def deltas(self, count: int) -> None:
        for _ in range(count):
            text = f" w{self.seq + 1}"
            payload = encode_notification(
                schema.STREAM_DELTA,
                schema.DeltaParams(stream_id=self.stream_id, seq=self.seq + 1, text=text),
            )
            self.seq = await self.broker.publish(self.stream_id, "delta", payload)
            self.text += text

    async def end(self) -> None:
        payload = encode_notification(
            schema.STREAM_END,
            schema.EndParams(
                stream_id=self.stream_id,
                seq=self.seq + 1,
                finish_reason="stop",
                message_id="m",
                usage=schema.Usage(input_tokens=1, output_tokens=self.seq, cost_usd=0.0),
            ),
        )
        self.seq = await self.broker.end(self.stream_id, "end", payload)


class Pinger:
    """Another tenant pinging the node back to back, from a process of its own
    (:mod:`tests.server.pinger`)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, url: str, token: str) -> Pinger:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.server.pinger",
            url,
            token,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            assert await proc.stdout.readline() == b"ready\n"
        return cls(proc)

    async def stop(self) -> dict[str, Any]:
        """The p99 and the worst round trip (s), and how many pings were answered."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        async with asyncio.timeout(30):
            out, _ = await self.proc.communicate()
        return json.loads(out)  # type: ignore[no-any-return]


async def connect_all(url: str, token: str, count: int) -> list[Client]:
    """``count`` initialized clients, connected 100 at a time (the connects are not
    the storm; the subscribes are)."""
    clients: list[Client] = []
    for start in range(0, count, 100):
        batch = min(100, count - start)
        clients += await asyncio.gather(
            *(Client.connect(url, token=token, open_timeout=30) for _ in range(batch))
        )
    return clients


async def read_until(client: Client, sub: Any, read: StreamRead, last_seq: int) -> None:
    """Read ``sub`` into ``read`` until it holds seq ``last_seq`` (or the end)."""
    seq = 0
    while seq < last_seq and read.end is None:
        note = await client.next(sub, 30)
        if note.params.get("streamId") == read.stream_id:
            read.items.append((note.method, note.params))
            seq = note.params["seq"]


async def close_all(clients: list[Client]) -> None:
    for start in range(0, len(clients), 200):
        await asyncio.gather(*(c.close() for c in clients[start : start + 200]))


@asynccontextmanager
async def storm_node(tmp: Path, redis_url: str, secret: str) -> AsyncIterator[str]:
    env = {
        "YAMABIKO_JWT_SECRET": secret,
        "YAMABIKO_REDIS_URL": redis_url,
        # One user holding thousands of sockets is the point here, not a limit to hit.
        "YAMABIKO_MAX_CONNECTIONS_PER_USER": "10000",
        "YAMABIKO_HANDSHAKES_PER_SECOND": "0",
        "YAMABIKO_REQUEST_BURST": "100000",
        "YAMABIKO_TENANT_REQUEST_BURST": "100000",
    }
    with serve_node(tmp, "b", env) as node:
        yield node.url


async def storm(tmp: Path, redis_url: str, count: int) -> None:
    raise_open_files_limit()
    secret = secrets.token_urlsafe(48)
    tenant = f"t-{uuid.uuid4().hex}"
    token = mint_token(secret, sub="fleet", tenant=tenant)
    stream_id = uuid.uuid4().hex
    # A long lease: this process is busy with thousands of sockets, and its stalls
    # must not pass for the producer's death.
    broker = RedisBroker.from_url(redis_url, lease_s=60.0)
    try:
        await broker.create(stream_id, owner_tenant=tenant, owner_user="fleet")
        producer = Producer(broker, stream_id)
        await producer.deltas(BEFORE)
        async with storm_node(tmp, redis_url, secret) as url:
            pinger = await Pinger.start(url, mint_token(secret, sub="o", tenant="other"))
            try:
                # The storm: every client subscribes at once.
                fleet = await connect_all(url, token, count)
                subs = [c.subscribe(*STREAM_METHODS) for c in fleet]
                answers = await asyncio.gather(
                    *(c.call("stream/subscribe", {"streamId": stream_id}) for c in fleet),
                    return_exceptions=True,
                )
                failed = [a for a in answers if isinstance(a, BaseException)]
                assert not failed, f"{len(failed)} of {count} failed, e.g. {failed[0]!r}"
                assert {a["status"] for a in answers} == {"live"}  # type: ignore[index]

                await producer.deltas(DURING)
                first = [StreamRead(stream_id) for _ in fleet]
                async with asyncio.timeout(60):
                    await asyncio.gather(
                        *(
                            read_until(c, s, r, BEFORE + DURING)
                            for c, s, r in zip(fleet, subs, first, strict=True)
                        )
                    )
                for read in first:
                    assert read.seqs == list(range(1, BEFORE + DURING + 1))
                await close_all(fleet)

                # The fleet comes back and resumes where it was, all at once.
                fleet = await connect_all(url, token, count)
                subs = [c.subscribe(*STREAM_METHODS) for c in fleet]
                answers = await asyncio.gather(
                    *(
                        c.call(
                            "stream/subscribe",
                            {"streamId": stream_id, "afterSeq": BEFORE + DURING},
                        )
                        for c in fleet
                    ),
                    return_exceptions=True,
                )
                failed = [a for a in answers if isinstance(a, BaseException)]
                assert not failed, f"{len(failed)} of {count} failed, e.g. {failed[0]!r}"
                await producer.deltas(AFTER)
                await producer.end()
                rest = [StreamRead(stream_id) for _ in fleet]
                async with asyncio.timeout(60):
                    await asyncio.gather(
                        *(
                            read_until(c, s, r, producer.seq)
                            for c, s, r in zip(fleet, subs, rest, strict=True)
                        )
                    )
                for before, after in zip(first, rest, strict=True):
                    assert after.end is not None
                    assert after.seqs == list(range(BEFORE + DURING + 1, producer.seq + 1))
                    assert before.text + after.text == producer.text
                await close_all(fleet)
            finally:
                pings = await pinger.stop()
            p99, worst = pings["p99"] * 1000, pings["worst"] * 1000
            print(f"\nstorm of {count}: other tenant's ping p99 {p99:.0f} ms, "
                  f"worst {worst:.0f} ms over {pings['count']:.0f} pings")  # fmt: skip
            assert pings["worst"] < 1.0, f"a ping took {pings['worst']:.3f} s during the storm"
    finally:
        await broker.close()


@pytest.mark.timeout(180)  # about 40 s on two loaded cores
async def test_a_storm_of_500_subscribes_and_resumes_all_succeed(
    redis_url: str, tmp_path: Path
) -> None:
    await storm(tmp_path, redis_url, 500)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_storm_of_2000_subscribes_and_resumes_all_succeed(
    redis_url: str, tmp_path: Path
) -> None:
    await storm(tmp_path, redis_url, 2000)

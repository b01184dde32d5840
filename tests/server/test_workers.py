"""``yamabiko serve --workers 2``: two worker processes on one port behind a supervisor
(docs/deployment.md, Workers), driven over real sockets as real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.fakes import FakeOpenAI, Script
from tests.server.workers import Supervised, clean_env, serve_command, socket_owner, supervised
from tests.support import STREAM_METHODS, postgres_schema, read_stream
from yamabiko.client import Client

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity"), reason="workers share a port with SO_REUSEPORT (Linux)"
)

ATTEMPTS = 64
"""Connections opened at most to find one on a given worker: each lands on either of
two with even odds, so all 64 missing one has a chance of 2^-64."""


async def on_worker(server: Supervised, token: str, pid: int) -> Client:
    """A connected client whose socket the worker ``pid`` accepted."""
    pids = list(server.worker_pids().values())
    for _ in range(ATTEMPTS):
        client = await Client.connect(server.url, token=token)
        owner = socket_owner(server.port, client.ws.local_address[1], pids)
        if owner == pid:
            return client
        await client.close()
    raise AssertionError(f"no connection reached worker {pid} in {ATTEMPTS} tries")


def test_more_than_one_worker_without_redis_exits_2_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        serve_command(tmp_path, "2"),
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env({}),
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "YAMABIKO_REDIS_URL" in lines[0]
    assert "2 workers" in lines[0]
    assert not (tmp_path / "data").exists()  # refused before anything was made


@pytest.mark.timeout(120)  # three processes start on a loaded machine
async def test_a_stream_started_on_one_worker_is_resumed_on_the_other(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    script = Script.count(60, delay=0.01)
    async with FakeOpenAI(script) as fake, postgres_schema(postgres_url) as database_url:
        env = {
            "YAMABIKO_REDIS_URL": redis_url,
            "YAMABIKO_DATABASE_URL": database_url,
            "YAMABIKO_HANDSHAKES_PER_SECOND": "0",
            "OPENAI_BASE_URL": fake.url,
            "OPENAI_API_KEY": "k",
        }
        with supervised(tmp_path, env) as server:
            first, second = server.worker_pids().values()
            assert first != second
            token = server.token("alice", f"t-{uuid.uuid4().hex}")
            async with (
                await on_worker(server, token, first) as on_first,
                await on_worker(server, token, second) as on_second,
            ):
                sub_first = on_first.subscribe(*STREAM_METHODS)
                started = await on_first.call(
                    "chat/send", {"message": "go", "model": "openai/gpt-4.1-mini"}
                )
                stream_id = started["streamId"]
                begun = await read_stream(on_first, sub_first, stream_id, deltas=3)
                # The client moves to the other worker and resumes after what it has.
                after = begun.seqs[-1]
                sub_second = on_second.subscribe(*STREAM_METHODS)
                await on_second.call("stream/subscribe", {"streamId": stream_id, "afterSeq": after})
                rest = await read_stream(on_second, sub_second, stream_id)
            assert rest.end is not None
            assert rest.end["finishReason"] == "stop"
            assert begun.seqs + rest.seqs == list(range(1, rest.end["seq"] + 1))
            assert begun.text + rest.text == script.text


@pytest.mark.timeout(120)  # three processes start on a loaded machine
async def test_a_killed_worker_is_restarted_and_its_sibling_keeps_its_sockets(
    redis_url: str, tmp_path: Path
) -> None:
    # SQLite in the data dir (made once, by the supervisor) serves both workers.
    env = {"YAMABIKO_REDIS_URL": redis_url, "YAMABIKO_HANDSHAKES_PER_SECOND": "0"}
    with supervised(tmp_path, env) as server:
        pids = server.worker_pids()
        token = server.token("bob", f"t-{uuid.uuid4().hex}")
        doomed, survivor = pids[0], pids[1]
        async with (
            await on_worker(server, token, doomed) as on_doomed,
            await on_worker(server, token, survivor) as on_survivor,
        ):
            created = await on_survivor.call("conversations/create", {"title": "kept"})
            os.kill(doomed, signal.SIGKILL)
            restarted = server.wait_log(lambda line: line.get("msg") == "worker restarted")
            assert restarted["worker"] == 0
            reborn = int(restarted["pid"])
            assert reborn not in (doomed, survivor)
            # The survivor's socket never noticed.
            assert await on_survivor.call("ping") == {}
            listed = await on_survivor.call("conversations/list")
            assert [c["id"] for c in listed["items"]] == [created["id"]]
            # The dead worker's client was cut off; a new socket reaches the new worker,
            # which sees the same store.
            with pytest.raises((ConnectionError, ConnectionClosed)):
                await on_doomed.call("ping", timeout=10)
            async with await on_worker(server, token, reborn) as on_reborn:
                listed = await on_reborn.call("conversations/list")
                assert [c["id"] for c in listed["items"]] == [created["id"]]
                assert on_survivor.close_code is None
                # SIGTERM drains every worker: their sockets close with 1001, all exit 0.
                server.proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(30):
                    await on_reborn.wait_closed()
                    await on_survivor.wait_closed()
                assert on_reborn.close_code == 1001
                assert on_survivor.close_code == 1001
                assert server.proc.wait(30) == 0
        for pid in (survivor, reborn):
            assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
        assert len(list((tmp_path / "data").glob("jwt_secret"))) == 1


def _is_zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] == "Z"


def test_a_port_held_by_anything_else_stops_the_start(redis_url: str, tmp_path: Path) -> None:
    # A listener with SO_REUSEPORT too: another supervisor's worker would not share it.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        command = [*serve_command(tmp_path, "2"), "--port", str(port)]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env({"YAMABIKO_REDIS_URL": redis_url}),
        )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "cannot listen" in done.stderr


def test_a_worker_that_cannot_start_stops_the_whole(redis_url: str, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        mcp_port = busy.getsockname()[1]
        command = [*serve_command(tmp_path, "2"), "--mcp-port", str(mcp_port)]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env({"YAMABIKO_REDIS_URL": redis_url}),
        )
    assert done.returncode == 1  # worker 0's status: its MCP port is busy
    assert done.stdout == ""
    assert "MCP HTTP face could not start" in done.stderr
    assert "worker 0 exited with status 1 before listening" in done.stderr

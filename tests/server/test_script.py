"""``yamabiko script`` as a tester runs it: the examples, failures, a recording, all
against one real ``yamabiko serve`` subprocess."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.test_cli import YAMABIKO, _clean_env, run, serving
from yamabiko.client import Client

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.jsonl"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with serving(tmp_path_factory.mktemp("script")) as (url, data, _):
        yield url, data


def script(server: tuple[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    url, data = server
    return run("script", "--url", url, "--data-dir", str(data), "--timeout", "20", *args)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "s.jsonl"
    path.write_text(text)
    return str(path)


def test_there_are_examples() -> None:
    assert {p.name for p in EXAMPLES} >= {"ping.jsonl", "chat.jsonl", "ghost.jsonl"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_passes(server: tuple[str, Path], example: Path) -> None:
    done = script(server, str(example))
    assert done.returncode == 0, done.stderr
    steps = sum(1 for line in example.read_text().splitlines() if line.strip()[:1] == "{")
    assert done.stdout == f"{steps} steps passed\n"


def test_a_wrong_expectation_exits_1_with_a_diff(server: tuple[str, Path], tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"send": {"method": "ghost/open", "params": {"docId": "d", "text": ""}}}\n'
        "# the version of a new document is 0, not 3\n"
        '{"expect": {"id": "${id}", "result": {"docId": "d", "version": 3}}, "within": 300}\n',
    )
    done = script(server, path)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0] == "step 2 (line 3) failed: no matching message within 300 ms"
    assert '"version": 3' in lines[1]  # the step as written
    assert lines[2] == '  expected: {"id":1,"result":{"docId":"d","version":3}}'
    assert lines[3].startswith('  closest:  {"jsonrpc":"2.0","id":1,"result":')
    assert "  $.result.version: expected 3, got 0" in lines


def test_a_malformed_script_exits_2_naming_the_line(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    path = write(tmp_path, '{"send": {"method": "ping"}}\n\n{"expect": {"id": 1}, "within": -5}\n')
    done = script(server, path)
    assert done.returncode == 2
    assert done.stderr == f"yamabiko: {path}:3: within takes milliseconds (a number > 0)\n"
    missing = script(server, str(tmp_path / "absent.jsonl"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr


def test_variables_and_regex(server: tuple[str, Path], tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"send": {"id": "open-1", "method": "ghost/open", "params": {"text": ""}}}\n'
        '{"expect": {"id": "open-1", "result": {"docId": "$save:doc", "version": 0}}}\n'
        # The captured id, whole (a string) and inside a longer string.
        '{"send": {"method": "ghost/close", "params": {"docId": "${doc}"}}}\n'
        '{"expect": {"id": 1, "result": {"closed": "$any"}}}\n'
        '{"send": {"method": "ghost/open", "params": {"docId": "copy-of-${doc}", "text": ""}}}\n'
        '{"expect": {"id": "${id}", "result": {"docId": "$regex:^copy-of-.+$"}}}\n'
        '{"sleep": 1}\n',
    )
    done = script(server, path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "7 steps passed\n"


def test_a_script_that_initializes_itself_is_not_initialized_twice(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        '{"send": {"method": "initialize", "params": {"protocolVersion": "yamabiko/1"}}}\n'
        '{"expect": {"id": 1, "result": {"sessionId": "$save:session"}}}\n'
        '{"notify": {"method": "notifications/initialized"}}\n'
        '{"send": {"method": "ping"}}\n'
        '{"expect": {"id": 2, "result": {}}}\n',
    )
    done = script(server, path)
    assert done.returncode == 0, done.stderr


FAKE_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl"


@pytest.mark.parametrize("flag", ["-v", "--verbose"])
def test_verbose_prints_each_message_sent_and_received_with_secrets_redacted(
    server: tuple[str, Path], tmp_path: Path, flag: str
) -> None:
    path = write(
        tmp_path,
        '{"send": {"method": "ping"}}\n'
        '{"expect": {"id": 1, "result": {}}}\n'
        f'{{"send": {{"method": "session/refresh", "params": {{"token": "{FAKE_JWT}"}}}}}}\n'
        '{"expect": {"id": 2, "error": {"code": -32001}}}\n'
        f'{{"notify": {{"method": "test/none", "params": {{"note": "bearer {FAKE_JWT}"}}}}}}\n',
    )
    done = script(server, flag, path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "5 steps passed\n"  # the trace leaves stdout alone
    lines = done.stderr.splitlines()
    assert lines[0].startswith("# connected to ws://")
    sent = [line for line in lines if line.startswith("> ")]
    received = [line for line in lines if line.startswith("< ")]
    assert sent[0].startswith('> initialize {"jsonrpc":"2.0","id":"script-initialize"')
    assert sent[2] == '> step 1 (line 1) {"jsonrpc":"2.0","method":"ping","id":1}'
    assert sent[3] == (
        '> step 3 (line 3) {"jsonrpc":"2.0","method":"session/refresh",'
        '"params":{"token":"[redacted]"},"id":2}'
    )
    assert sent[4] == (
        '> step 5 (line 5) {"jsonrpc":"2.0","method":"test/none",'
        '"params":{"note":"bearer [redacted]"}}'
    )
    assert '< {"jsonrpc":"2.0","id":1,"result":{}}' in received
    assert any('"id":2,"error":{"code":-32001' in line for line in received)
    assert "# step 2 (line 2) expect matched" in lines
    # Neither the script's secret nor the token the CLI minted to connect is printed.
    assert "eyJ" not in done.stderr
    assert FAKE_JWT.split(".")[2] not in done.stderr


def test_without_verbose_nothing_is_traced(server: tuple[str, Path], tmp_path: Path) -> None:
    path = write(tmp_path, '{"send": {"method": "ping"}}\n{"expect": {"id": 1}}\n')
    done = script(server, path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "2 steps passed\n", "")


def test_an_unreachable_server_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, '{"send": {"method": "ping"}}\n')
    done = run("script", "--url", "ws://127.0.0.1:9/ws", "--token", "x", path)
    assert done.returncode == 1
    assert "cannot connect" in done.stderr


def test_record_a_session_then_replay_it(server: tuple[str, Path], tmp_path: Path) -> None:
    url, data = server
    recording = tmp_path / "recorded.jsonl"
    with subprocess.Popen(
        [
            *YAMABIKO,
            "script",
            "--record",
            str(recording),
            "--listen-port",
            "0",
            "--url",
            url,
            "--data-dir",
            str(data),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_clean_env(),
    ) as proxy:
        assert proxy.stdout is not None
        line = proxy.stdout.readline()
        assert line.startswith("recording on ws://127.0.0.1:"), line
        asyncio.run(_session(line.split()[-1]))
        out, err = proxy.communicate(timeout=20)
    assert proxy.returncode == 0, err
    text = recording.read_text()
    assert out.startswith("recorded ")
    assert '"$save:sessionId"' in text
    assert '"$save:streamId"' in text
    assert '"${conversationId}"' in text
    assert "stream/delta" not in text
    replay = script(server, str(recording))
    assert replay.returncode == 0, replay.stderr + text


async def _session(url: str) -> None:
    async with await Client.connect(url) as client:
        assert await client.call("ping") == {}
        ends = client.subscribe("stream/end")
        result = await client.call("chat/send", {"message": "How do I make the kick punchier?"})
        end = await client.next(ends, 10)
        assert end.params["streamId"] == result["streamId"]
        await client.call("conversations/messages", {"conversationId": result["conversationId"]})

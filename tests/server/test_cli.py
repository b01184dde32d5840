"""The ``yamabiko`` command as a user runs it: serve, token, call, in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

YAMABIKO = [sys.executable, "-m", "yamabiko.server.cli"]


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*YAMABIKO, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**_clean_env(), **(env or {})},
        check=False,
    )


def _clean_env() -> dict[str, str]:
    """The environment without our settings and provider keys: the server and the CLI
    see only what a test gives them (with no provider, the local engine answers)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("YAMABIKO_") and not k.endswith(("_API_KEY", "_BASE_URL"))
    }


@contextmanager
def serving(tmp: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    """A ``yamabiko serve`` process on a free port with a fresh data dir in ``tmp``:
    its socket URL, the data dir and the process (ended on exit)."""
    data = tmp / "data"
    with (
        (tmp / "server.log").open("w") as log,
        subprocess.Popen(
            [*YAMABIKO, "serve", "--port", "0", "--data-dir", str(data)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=_clean_env(),
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # bounded by the test timeout
            assert line.startswith("listening on ws://127.0.0.1:"), line
            yield line.split()[-1], data, proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    with serving(tmp_path) as running:
        yield running


def test_first_start_creates_the_data_dir_then_token_and_call_work(
    served: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    url, data, _ = served
    assert (data / "jwt_secret").stat().st_mode & 0o777 == 0o600
    assert (data / "fernet.key").stat().st_mode & 0o777 == 0o600
    token = run("token", "--data-dir", str(data), "--sub", "alice", "--tenant", "acme")
    assert token.returncode == 0, token.stderr
    jwt = token.stdout.strip()
    assert jwt.count(".") == 2
    ping = run("call", "--url", url, "--token", jwt, "ping")
    assert ping.returncode == 0, ping.stderr
    assert json.loads(ping.stdout) == {}
    # Without --token, call mints one from the data dir.
    ping = run("call", "--url", url, "--data-dir", str(data), "ping")
    assert (ping.returncode, json.loads(ping.stdout)) == (0, {})


def test_call_exits_non_zero_on_an_error_response(
    served: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    url, data, _ = served
    result = run("call", "--url", url, "--data-dir", str(data), "no/such", "{}")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == -32601
    bad = run("call", "--url", url, "--data-dir", str(data), "ping", "{not json")
    assert bad.returncode == 2
    assert "not JSON" in bad.stderr


def test_call_with_a_bad_token_reports_the_refusal(
    served: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    url, _, _ = served
    result = run("call", "--url", url, "--token", "x.y.z", "ping")
    assert result.returncode == 1
    assert "401" in result.stderr


def test_sigterm_shuts_down_cleanly(served: tuple[str, Path, subprocess.Popen[str]]) -> None:
    _, _, proc = served
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_bad_setting_stops_the_start_naming_it(tmp_path: Path) -> None:
    result = run("serve", "--data-dir", str(tmp_path), env={"YAMABIKO_PORT": "eighty"})
    assert result.returncode == 2
    assert "YAMABIKO_PORT" in result.stderr
    result = run("serve", "--data-dir", str(tmp_path), "--port", "99999")
    assert result.returncode == 2
    assert "--port" in result.stderr


def test_token_without_a_data_dir_says_what_to_do(tmp_path: Path) -> None:
    result = run("token", "--data-dir", str(tmp_path / "none"), "--sub", "a", "--tenant", "t")
    assert result.returncode == 2
    assert "yamabiko serve" in result.stderr


def test_call_chat_send_streams_a_reply_from_the_local_engine(
    served: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    url, data, _ = served
    params = json.dumps({"message": "How should I compress the vocal?"})
    chat = run("call", "--url", url, "--data-dir", str(data), "chat/send", params)
    assert chat.returncode == 0, chat.stderr
    reply = chat.stdout.strip()
    assert len(reply.split()) > 3
    started, ended = (json.loads(line) for line in chat.stderr.splitlines())
    assert started["model"] == "local/default"
    end = ended["stream/end"]
    assert (end["streamId"], end["finishReason"]) == (started["streamId"], "stop")
    # The reply is stored in the conversation, and --jsonl shows each item.
    params = json.dumps({"message": "And the reverb?", "conversationId": started["conversationId"]})
    lines = run("call", "--url", url, "--data-dir", str(data), "--jsonl", "chat/send", params)
    assert lines.returncode == 0, lines.stderr
    result, *items = (json.loads(line) for line in lines.stdout.splitlines())
    assert result["conversationId"] == started["conversationId"]
    assert [i["params"]["seq"] for i in items] == list(range(1, len(items) + 1))
    assert {i["method"] for i in items[:-1]} == {"stream/delta"}
    assert items[-1]["method"] == "stream/end"
    history = run(
        "call", "--url", url, "--data-dir", str(data), "conversations/messages",
        json.dumps({"conversationId": started["conversationId"]}),
    )  # fmt: skip
    contents = [m["content"] for m in json.loads(history.stdout)["items"]]
    assert contents[:2] == ["How should I compress the vocal?", reply]
    assert len(contents) == 4


def test_serve_with_no_redis_listening_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run(
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        env={"YAMABIKO_REDIS_URL": f"redis://:hunter2@127.0.0.1:{port}/0"},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    expected = f"yamabiko: YAMABIKO_REDIS_URL: no Redis answers at 127.0.0.1:{port} ("
    assert lines[0].startswith(expected)
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr

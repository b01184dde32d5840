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
            [*YAMABIKO, "serve", "--port", "0", "--mcp-port", "0", "--data-dir", str(data)],
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


def test_call_audio_synthesize_follows_the_frames_into_a_file(
    served: tuple[str, Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    import wave

    url, data, _ = served
    song = {
        "notes": [
            {"pitch": 69, "start": 0, "duration": 1, "velocity": 100, "lyric": "a"},
            {"pitch": 72, "start": 1, "duration": 1, "velocity": 100, "lyric": "i"},
        ],
        "tempo": 120,
        "format": "wav",
    }
    out = tmp_path / "song.wav"
    args = ("call", "--url", url, "--data-dir", str(data), "-o", str(out))
    result = run(*args, "audio/synthesize", json.dumps(song), timeout=60)
    assert result.returncode == 0, result.stderr
    end = json.loads(result.stderr.splitlines()[-2])["audio/end"]
    assert end["cancelled"] is False
    with wave.open(str(out)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    assert abs(seconds * 1000 - end["durationMs"]) < 25
    assert 0.9 < seconds < 1.2  # two beats at 120 bpm, plus the release
    import hashlib

    assert hashlib.sha256(out.read_bytes()).hexdigest() == end["sha256"]


def test_call_music_generate_writes_a_midi_file(
    served: tuple[str, Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    import mido

    url, data, _ = served
    out = tmp_path / "bass.mid"
    params = {"kind": "bassline", "key": "A minor", "bars": 2, "tempo": 100, "seed": 7}
    args = ("call", "--url", url, "--data-dir", str(data), "--output", str(out))
    result = run(*args, "music/generate", json.dumps(params))
    assert result.returncode == 0, result.stderr
    notes = json.loads(result.stdout)["notes"]
    midi = mido.MidiFile(str(out))
    played = [m for m in midi.tracks[1] if m.type == "note_on"]
    assert [m.note for m in played] == [n["pitch"] for n in sorted(notes, key=lambda n: n["start"])]
    assert abs(midi.length - 2 * 4 * 60 / 100) < 0.5  # two bars of 4/4 at 100 bpm
    # Nothing to write for a method that makes nothing.
    nothing = run("call", "--url", url, "--data-dir", str(data), "-o", str(out), "ping")
    assert nothing.returncode == 2


def test_call_into_a_closed_pipe_stops_quietly(
    served: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    url, data, _ = served
    params = json.dumps({"message": "Tell me about compressors and limiters"})
    with subprocess.Popen(
        [*YAMABIKO, "call", "--url", url, "--data-dir", str(data), "--jsonl", "chat/send", params],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_clean_env(),
    ) as cli:
        assert cli.stdout is not None
        assert cli.stderr is not None
        cli.stdout.readline()  # like `| head -1`: read one line, then close the pipe
        cli.stdout.close()
        errors = cli.stderr.read()
        assert cli.wait(30) == 0
    assert b"Traceback" not in errors


def test_token_and_call_sign_with_the_secret_the_server_verifies_with(tmp_path: Path) -> None:
    """One rule for every command: YAMABIKO_JWT_SECRET (as `serve` resolves it) before
    the data dir's secret, with the audience and issuer the server requires."""
    secret = "s" * 40
    env = {
        "YAMABIKO_JWT_SECRET": secret,
        "YAMABIKO_JWT_AUDIENCE": "daw",
        "YAMABIKO_JWT_ISSUER": "https://id.example",
    }
    data = tmp_path / "data"
    with subprocess.Popen(
        [*YAMABIKO, "serve", "--port", "0", "--mcp-port", "0", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**_clean_env(), **env},
    ) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split()[-1]
            token = run("token", "--data-dir", str(data), "--sub", "a", "--tenant", "t", env=env)
            assert token.returncode == 0, token.stderr
            ping = run("call", "--url", url, "--token", token.stdout.strip(), "ping", env=env)
            assert ping.returncode == 0, ping.stderr
            minted = run("call", "--url", url, "--data-dir", str(data), "ping", env=env)
            assert minted.returncode == 0, minted.stderr
            empty = run("call", "--url", url, "--token", "", "ping", env=env)
            assert empty.returncode == 2
            assert "empty" in empty.stderr
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    # A server that verifies with a public key: the CLI cannot sign, and says so.
    pem = tmp_path / "key.pem"
    pem.write_text("not read by the CLI")
    refused = run(
        "token", "--sub", "a", "--tenant", "t", env={"YAMABIKO_JWT_PUBLIC_KEY_FILE": str(pem)}
    )
    assert refused.returncode == 2
    assert "identity provider" in refused.stderr


async def test_serve_with_everything_configured_creates_no_data_dir(
    tmp_path: Path, postgres_url: str
) -> None:
    from cryptography.fernet import Fernet

    from tests.support import postgres_schema

    async with postgres_schema(postgres_url) as database_url:
        env = {
            "YAMABIKO_JWT_SECRET": "s" * 40,
            "YAMABIKO_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "YAMABIKO_DATABASE_URL": database_url,
        }
        _serve_once(tmp_path, env)
    assert not (tmp_path / ".yamabiko").exists()


def _serve_once(cwd: Path, env: dict[str, str]) -> None:
    """Start ``yamabiko serve`` in ``cwd`` until it listens, then stop it."""
    with subprocess.Popen(
        [*YAMABIKO, "serve", "--port", "0", "--mcp-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
        env={**_clean_env(), **env},
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith("listening on")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)


def test_serve_on_a_busy_port_exits_at_once(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        main = run("serve", "--port", port, "--data-dir", str(tmp_path / "a"), timeout=20)
        assert main.returncode == 1
        assert "cannot listen" in main.stderr
        args = ("serve", "--port", "0", "--mcp-port", port, "--data-dir", str(tmp_path / "b"))
        mcp = run(*args, timeout=20)
        assert mcp.returncode == 1
        assert "YAMABIKO_MCP_HTTP=false" in mcp.stderr
    # Turned off explicitly, the busy MCP port does not matter.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {"YAMABIKO_MCP_PORT": str(busy.getsockname()[1])}
        _serve_once(tmp_path, {**env, "YAMABIKO_MCP_HTTP": "false"})


def test_serve_writes_only_json_lines_on_stderr(tmp_path: Path) -> None:
    with serving(tmp_path) as (url, data, proc):
        assert run("call", "--url", url, "--data-dir", str(data), "ping").returncode == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    lines = (tmp_path / "server.log").read_text().splitlines()
    messages = [json.loads(line)["msg"] for line in lines]  # each line is one JSON object
    assert "listening" in messages
    assert "shutting down" in messages


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
    line = json.loads(lines[0])  # a JSON log line, like every line on stderr
    expected = f"YAMABIKO_REDIS_URL: no Redis answers at 127.0.0.1:{port} ("
    assert line["msg"].startswith(expected)
    assert line["level"] == "ERROR"
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr

"""The README's first session, run as a newcomer pastes it: the shell block, then the
Python block, against the server the shell block started."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def block(after: str, language: str) -> str:
    """The first fenced ``language`` block after the line containing ``after``."""
    rest = README[README.index(after) :]
    match = re.search(rf"```{language}\n(.*?)```", rest, re.DOTALL)
    assert match is not None, f"no {language} block after {after!r}"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_first_session_works_when_pasted(tmp_path: Path) -> None:
    stamp, pyproject = ROOT / ".venv" / ".installed", ROOT / "pyproject.toml"
    if not stamp.exists() or stamp.stat().st_mtime < pyproject.stat().st_mtime:
        pytest.fail("run `make install` first: `make install` here would reinstall the venv")
    # A directory like a fresh clone's, but sharing this checkout's venv and Makefile;
    # the server listens on free ports, so that the test never meets a running one.
    for name in ("Makefile", "pyproject.toml", ".venv"):
        (tmp_path / name).symlink_to(ROOT / name)
    port, mcp_port = free_port(), free_port()
    shell = block("## First session", "sh")
    python = block("From Python", "python").replace("127.0.0.1:8765", f"127.0.0.1:{port}")
    script = f"set -euo pipefail\n{shell}\n.venv/bin/python - <<'PYTHON'\n{python}PYTHON\n"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("YAMABIKO_") and not k.endswith(("_API_KEY", "_BASE_URL"))
    }
    env |= {
        "YAMABIKO_PORT": str(port),
        "YAMABIKO_MCP_PORT": str(mcp_port),
        "YAMABIKO_URL": f"ws://127.0.0.1:{port}/ws",
    }
    # Files, not pipes: the server that `make run &` leaves running holds them open.
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with (
        out_path.open("w") as out_file,
        err_path.open("w") as err_file,
        subprocess.Popen(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=env,
            stdout=out_file,
            stderr=err_file,
            start_new_session=True,  # `make run &` lives in this group: ended below
        ) as proc,
    ):
        try:
            returncode = proc.wait(timeout=50)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    out, err = out_path.read_text(), err_path.read_text()
    assert returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    assert "{}" in out  # ping's result
    # Two replies streamed from the local engine: the CLI's and the Python client's.
    replies = [line for line in out.splitlines() if len(line.split()) > 5]
    assert len(replies) >= 2, out
    assert (tmp_path / ".yamabiko" / "jwt_secret").exists()

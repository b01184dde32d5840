"""``yamabiko serve`` processes for scale-out tests: each a real node, started with a
clean environment plus what the test gives it, killable like a real one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Node:
    url: str
    """The node's socket URL."""
    proc: subprocess.Popen[str]
    log: Path
    """Its stderr (the server log)."""


@contextmanager
def serve_node(tmp: Path, name: str, env: dict[str, str]) -> Iterator[Node]:
    """A ``yamabiko serve`` on a free port with the data dir ``tmp/name`` (reused if
    it exists, as a restarted node would); ended with SIGTERM on exit unless the test
    killed it."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("YAMABIKO_") and not k.endswith(("_API_KEY", "_BASE_URL"))
    }
    log_path = tmp / f"{name}.log"
    with (
        log_path.open("a") as log,
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "yamabiko.server.cli",
                "serve",
                "--port",
                "0",
                "--mcp-port",
                "0",
                "--data-dir",
                str(tmp / name),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**clean, **env},
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # bounded by the test's timeout
            assert line.startswith("listening on "), log_path.read_text()
            yield Node(line.split()[-1], proc, log_path)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

"""What every scenario gets: the options of the run, the servers, a place for notes.

A scenario is a function ``run(harness) -> list[Figure]``. It asks the harness for a
server with :meth:`Harness.server` (started once, shared by the scenarios, ended when the
run ends) or :meth:`Harness.fresh_server` (its own process, ended when the ``with`` block
ends), measures, and returns figures; remarks worth printing under the table (CPU use,
counts) go to :meth:`Harness.note`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from bench.servers import ServerProcess


@dataclass(frozen=True)
class Options:
    """Sizes and durations of one run; :meth:`quick` is the short variant."""

    rounds: int = 3
    """Pipelined runs alternate between the servers this many times."""
    sequential_rounds: int = 5
    """Sequential runs alternate this many times (they are short, and the noisiest)."""
    sequential_count: int = 20_000
    """Timed round trips per server, split evenly over its rounds."""
    sequential_warmup: int = 1_000
    """Untimed round trips at the start of each round."""
    sequential_max_s: float = 10.0
    """A round stops early after this long (a very slow server)."""
    connections: int = 50
    window: int = 32
    workers: int = 1
    warmup_s: float = 1.0
    duration_s: float = 5.0
    """Measured seconds of each pipelined round, after ``warmup_s``."""
    idle_connections: int = 2_000
    settle_s: float = 1.0

    def quick(self) -> Options:
        return replace(
            self,
            rounds=1,
            sequential_rounds=2,
            sequential_count=5_000,
            sequential_warmup=500,
            warmup_s=0.5,
            duration_s=2.0,
            idle_connections=1_000,
            settle_s=0.5,
        )


class Harness:
    """The servers and options of one bench run."""

    def __init__(self, options: Options, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.notes: list[str] = []
        self._servers: dict[str, ServerProcess] = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def server(self, kind: str) -> ServerProcess:
        """The shared server of ``kind``, started on first use."""
        server = self._servers.get(kind)
        if server is None:
            server = self._stack.enter_context(ServerProcess(kind, self.workdir))
            self._servers[kind] = server
        return server

    @contextlib.contextmanager
    def fresh_server(self, kind: str) -> Iterator[ServerProcess]:
        """A new server of ``kind`` for this block only (for figures that need a clean
        process, such as memory)."""
        with ServerProcess(kind, self.workdir) as server:
            yield server

    def note(self, text: str) -> None:
        self.notes.append(text)

    def progress(self, text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

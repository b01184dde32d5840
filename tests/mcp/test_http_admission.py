"""Admission on the MCP Streamable HTTP face of a real ``yamabiko serve``: a session is
bound to the (tenant, subject) that opened it, sessions per user are capped and idle
ones reaped, the origin allowlist applies as on the socket; with the SDK's client and
raw HTTP. Another tenant's socket ``ping`` stays responsive during the floods."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.support import Process, p99, ping_while, serve_process

ORIGIN = "https://daw.example"
CAP = 3
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    env = {
        "YAMABIKO_ALLOWED_ORIGINS": ORIGIN,
        "YAMABIKO_MAX_MCP_SESSIONS_PER_USER": str(CAP),
        "YAMABIKO_HANDSHAKES_PER_SECOND": "0",
    }
    with serve_process(tmp_path_factory.mktemp("mcp_admission"), env) as process:
        yield process


def headers(token: str, session: str | None = None, **extra: str) -> dict[str, str]:
    out = {"Authorization": f"Bearer {token}", "Accept": ACCEPT, **extra}
    if session is not None:
        out["Mcp-Session-Id"] = session
        out["Mcp-Protocol-Version"] = "2025-06-18"
    return out


async def open_raw(http: httpx2.AsyncClient, url: str, token: str, **extra: str) -> httpx2.Response:
    return await http.post(url, json=INITIALIZE, headers=headers(token, **extra))


@asynccontextmanager
async def sdk_session(url: str, token: str) -> AsyncIterator[tuple[ClientSession, str]]:
    """An initialized SDK client session and its ``Mcp-Session-Id`` (read off the
    responses by an httpx event hook)."""
    seen: list[str] = []

    async def remember(response: httpx2.Response) -> None:
        if "mcp-session-id" in response.headers:
            seen.append(response.headers["mcp-session-id"])

    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            event_hooks={"response": [remember]},
        ) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        assert seen
        yield client, seen[0]


async def test_another_tenants_token_cannot_use_a_session(served: Process) -> None:
    url = served.mcp_url
    owner = served.token("alice", "acme")
    thieves = [served.token("mallory", "acme"), served.token("alice", "globex")]
    async with (
        sdk_session(url, owner) as (client, sid),
        httpx2.AsyncClient(timeout=30) as http,
    ):
        for thief in thieves:
            posted = await http.post(url, json=LIST, headers=headers(thief, sid))
            assert posted.status_code == 404, posted.text
            streamed = await http.get(url, headers=headers(thief, sid))
            assert streamed.status_code == 404
            deleted = await http.delete(url, headers=headers(thief, sid))
            assert deleted.status_code == 404
            # The same answer as for a session that does not exist: nothing to learn.
            unknown = await http.post(url, json=LIST, headers=headers(thief, "0" * 32))
            assert (unknown.status_code, unknown.json()) == (404, posted.json())
        # The owner's session is untouched by all of it.
        listed = await client.list_tools()
        assert listed.tools


async def test_sessions_per_user_are_capped(served: Process) -> None:
    url = served.mcp_url
    token = served.token("carol", "acme")
    async with httpx2.AsyncClient(timeout=30) as http:
        opened = [await open_raw(http, url, token) for _ in range(CAP)]
        assert [r.status_code for r in opened] == [200] * CAP
        sids = [r.headers["mcp-session-id"] for r in opened]
        refused = await open_raw(http, url, token)
        assert refused.status_code == 429
        assert "limit 3" in refused.text
        # Another user of the same tenant has places of their own.
        other = await open_raw(http, url, served.token("dave", "acme"))
        assert other.status_code == 200
        # Ending a session gives its place back.
        ended = await http.delete(url, headers=headers(token, sids[0]))
        assert ended.status_code < 400
        again = await open_raw(http, url, token)
        assert again.status_code == 200
        for sid in [*sids[1:], again.headers["mcp-session-id"]]:
            await http.delete(url, headers=headers(token, sid))
        await http.delete(
            url, headers=headers(served.token("dave", "acme"), other.headers["mcp-session-id"])
        )


async def test_a_flood_of_session_openings_is_refused_while_others_are_served(
    served: Process,
) -> None:
    url = served.mcp_url
    token = served.token("erin", "acme")
    statuses: list[int] = []

    async def attack() -> None:
        async with httpx2.AsyncClient(timeout=30) as http:
            sem = asyncio.Semaphore(16)

            async def one() -> None:
                async with sem:
                    statuses.append((await open_raw(http, url, token)).status_code)

            await asyncio.gather(*(one() for _ in range(600)))

    latencies = await ping_while(served.ws_url, served.token("bob", "globex"), attack())
    assert statuses.count(200) == CAP
    assert statuses.count(429) == 600 - CAP
    print(f"\n600 MCP session openings by one user: ping p99 {p99(latencies)}")
    assert max(latencies) < 1.0


async def test_the_origin_allowlist_applies(served: Process) -> None:
    url = served.mcp_url
    token = served.token("frank", "acme")
    async with httpx2.AsyncClient(timeout=30) as http:
        allowed = await open_raw(http, url, token, Origin=ORIGIN)
        assert allowed.status_code == 200, allowed.text
        foreign = await open_raw(http, url, token, Origin="https://evil.example")
        assert foreign.status_code == 403
        await http.delete(url, headers=headers(token, allowed.headers["mcp-session-id"]))


async def test_query_tokens_are_not_accepted(served: Process) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{served.mcp_url}?access_token={served.token()}",
            json=INITIALIZE,
            headers={"Accept": ACCEPT},
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_idle_sessions_are_reaped(tmp_path: Path) -> None:
    env = {"YAMABIKO_MAX_MCP_SESSIONS_PER_USER": "1", "YAMABIKO_MCP_SESSION_IDLE_S": "1"}
    with serve_process(tmp_path, env) as process:
        url, token = process.mcp_url, process.token()
        async with httpx2.AsyncClient(timeout=30) as http:
            first = await open_raw(http, url, token)
            assert first.status_code == 200
            assert (await open_raw(http, url, token)).status_code == 429
            # Left idle, the session is closed and its place given back.
            async with asyncio.timeout(10):
                while (second := await open_raw(http, url, token)).status_code == 429:
                    await asyncio.sleep(0.2)
            assert second.status_code == 200
            stale = await http.post(
                url, json=LIST, headers=headers(token, first.headers["mcp-session-id"])
            )
            assert stale.status_code == 404
        body = json.loads(stale.text)
        assert body["error"]["message"] == "Session not found"

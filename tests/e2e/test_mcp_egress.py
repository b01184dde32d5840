"""The egress policy of HTTP MCP servers, end to end (docs/mcp.md, "Egress policy"): a
tenant admin cannot make the server connect to private, loopback, link-local or
unspecified addresses, in any spelling, by name, or through a redirect; failures do not
tell an open port from a closed one; the operator's allowlist opens named destinations.
Every "must not be reached" is a real listener on 127.0.0.1 that counts connections."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.mcp.listeners import Recorder, closed_port, mcp_http_server
from tests.support import Running, running_server
from yamabiko.client import Client, RemoteError
from yamabiko.engines.tools.egress import is_public, literal_address

ADMIN = ["agent", "admin", "chat"]
CANNOT_CONNECT = "could not connect to the MCP server"


def hostile_urls(port: int) -> list[str]:
    """Every spelling of a destination the default policy refuses, at ``port``."""
    return [
        f"http://127.0.0.1:{port}/mcp",
        f"http://localhost:{port}/mcp",
        f"http://LOCALHOST.:{port}/mcp",
        f"http://api.localhost:{port}/mcp",
        f"http://[::1]:{port}/mcp",
        f"http://[::ffff:127.0.0.1]:{port}/mcp",
        f"http://[::ffff:7f00:1]:{port}/mcp",
        f"http://[64:ff9b::7f00:1]:{port}/mcp",
        f"http://0.0.0.0:{port}/mcp",
        f"http://[::]:{port}/mcp",
        f"http://0:{port}/mcp",
        f"http://2130706433:{port}/mcp",
        f"http://0x7f.1:{port}/mcp",
        f"http://0x7f000001:{port}/mcp",
        f"http://127.1:{port}/mcp",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/mcp",
        "http://10.0.0.1/mcp",
        "http://172.16.0.1/mcp",
        "http://192.168.1.1/mcp",
        "http://100.64.0.1/mcp",
        "http://224.0.0.1/mcp",
        "http://[ff02::1]/mcp",
        "http://255.255.255.255/mcp",
        f"https://127.0.0.1:{port}/mcp",
    ]


async def add_http(admin: Client, name: str, url: str, **extra: Any) -> dict[str, Any]:
    params = {"name": name, "transport": "http", "url": url, **extra}
    return await admin.call("mcp/servers/add", params)  # type: ignore[no-any-return]


@asynccontextmanager
async def pinging(server: Running) -> AsyncIterator[list[float]]:
    """Another tenant pings back to back while the block runs; yields the round trips
    (seconds), filled in when the block ends."""
    rtts: list[float] = []
    stop = asyncio.Event()
    async with await server.client("bystander", "other-tenant") as other:

        async def loop() -> None:
            while not stop.is_set():
                start = time.perf_counter()
                await other.call("ping")
                rtts.append(time.perf_counter() - start)

        task = asyncio.create_task(loop())
        try:
            yield rtts
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    assert rtts, "the bystander never got a ping through"


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def test_add_refuses_every_spelling_of_a_private_destination(tmp_path: Path) -> None:
    async with Recorder("404") as target:
        async with (
            running_server(tmp_path) as server,
            await server.client(scopes=ADMIN) as admin,
        ):
            for number, url in enumerate(hostile_urls(target.port)):
                with pytest.raises(RemoteError) as refused:
                    await add_http(admin, f"s{number}", url)
                assert refused.value.wire_code == -32602, url
                assert refused.value.message.startswith("url not allowed: "), url
                assert refused.value.message.endswith(" - at $.url"), url
            for url in ("ftp://example.com/mcp", "file:///etc/passwd", "gopher://10.0.0.1/"):
                with pytest.raises(RemoteError) as scheme:
                    await add_http(admin, "scheme", url)
                assert scheme.value.wire_code == -32602
            assert (await admin.call("mcp/servers/list"))["items"] == []
            audit = await admin.call("audit/list", {"action": "mcp_server.add"})
            assert {e["outcome"] for e in audit["items"]} == {"refused"}
        assert target.connections == 0


async def test_a_server_added_under_a_wider_allowlist_is_refused_when_connecting(
    tmp_path: Path,
) -> None:
    """The check is made when connecting, not only when adding: servers stored while
    the operator allowed everything are refused once the allowlist is narrowed, and
    the listener behind them never sees a connection (nor a secret)."""
    secret = "a-shared-hs256-secret-of-at-least-32-bytes"
    async with Recorder("404") as target:
        urls = hostile_urls(target.port)
        wide = ("0.0.0.0/0", "::/0", "localhost", "localhost.", "api.localhost")
        async with (
            running_server(tmp_path, secret=secret, mcp_egress_allow=wide) as server,
            await server.client(scopes=ADMIN) as admin,
        ):
            ids = [(await add_http(admin, f"s{n}", url))["id"] for n, url in enumerate(urls)]
        async with (
            running_server(tmp_path, secret=secret) as server,
            await server.client(scopes=ADMIN) as admin,
            pinging(server) as rtts,
        ):
            slots = asyncio.Semaphore(6)  # under the session's limit of running requests

            async def probe(server_id: str) -> dict[str, Any]:
                async with slots:
                    return await admin.call("mcp/servers/test", {"serverId": server_id})  # type: ignore[no-any-return]

            probes = await asyncio.gather(*(probe(i) for i in ids))
        for url, probe in zip(urls, probes, strict=True):
            assert probe["ok"] is False, url
            assert "not allowed for MCP servers" in probe["error"], (url, probe["error"])
        assert target.connections == 0
    assert max(rtts) < 1.0, f"ping p99 {p99(rtts) * 1000:.1f} ms, max {max(rtts) * 1000:.1f} ms"


async def test_a_name_that_resolves_to_a_private_address_is_refused_when_connecting(
    tmp_path: Path,
) -> None:
    # This machine's own name resolves to loopback or to a private address (a
    # container's), never to a public one: a name the literal check cannot catch.
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
    except OSError:
        pytest.skip("the host name does not resolve here")
    addresses = [literal_address(str(info[4][0])) for info in infos]
    if not addresses or any(a is None or is_public(a) for a in addresses):
        pytest.skip("the host name resolves to a public address here")
    async with (
        Recorder("404") as target,
        running_server(tmp_path) as server,
        await server.client(scopes=ADMIN) as admin,
    ):
        added = await add_http(admin, "by-name", f"http://{name}:{target.port}/mcp")
        probe = await admin.call("mcp/servers/test", {"serverId": added["id"]})
        assert probe["ok"] is False
        assert probe["error"].endswith(
            f"{name.lower()} is a private or reserved address: not allowed for MCP servers"
            " unless YAMABIKO_MCP_EGRESS_ALLOW names it"
        )
        assert target.connections == 0


async def test_a_redirect_from_an_allowed_server_to_a_private_address_is_not_followed(
    tmp_path: Path,
) -> None:
    async with Recorder("404") as private:
        location = f"http://127.0.0.1:{private.port}/mcp"
        async with Recorder("404", redirect=location) as allowed:
            async with (
                running_server(tmp_path, mcp_egress_allow=(f"127.0.0.1:{allowed.port}",)) as server,
                await server.client(scopes=ADMIN) as admin,
            ):
                with pytest.raises(RemoteError):  # the target itself is not allowed
                    await add_http(admin, "direct", location)
                added = await add_http(admin, "hop", f"http://127.0.0.1:{allowed.port}/mcp")
                probe = await admin.call("mcp/servers/test", {"serverId": added["id"]})
            assert probe["ok"] is False
            assert probe["error"] == f"MCP server {added['id']}: {CANNOT_CONNECT}"
            assert allowed.connections >= 1  # it was asked, and answered with a redirect
            assert private.connections == 0


async def test_open_and_closed_ports_give_the_same_error(tmp_path: Path) -> None:
    async with (
        Recorder("close") as closes,
        Recorder("404") as not_mcp,
        Recorder("garbage") as garbage,
        mcp_http_server(token="only-this") as needs_token,
    ):
        ports = [closed_port(), closes.port, not_mcp.port, garbage.port, needs_token]
        async with (
            running_server(tmp_path, mcp_egress_allow=("127.0.0.1",)) as server,
            await server.client(scopes=ADMIN) as admin,
            pinging(server) as rtts,
        ):
            errors = []
            for number, port in enumerate(ports):
                added = await add_http(admin, f"p{number}", f"http://127.0.0.1:{port}/mcp")
                probe = await admin.call("mcp/servers/test", {"serverId": added["id"]})
                assert probe["ok"] is False
                assert probe["tools"] == []
                errors.append(probe["error"].replace(added["id"], "<id>"))
        assert errors == [f"MCP server <id>: {CANNOT_CONNECT}"] * len(ports)
        assert not_mcp.connections >= 1  # really reached
        assert garbage.connections >= 1
    assert max(rtts) < 1.0, f"ping p99 {p99(rtts) * 1000:.1f} ms"


async def test_an_allowlisted_destination_reaches_its_mcp_server(tmp_path: Path) -> None:
    async with mcp_http_server() as port, mcp_http_server() as other_port:
        allow = (f"127.0.0.1:{port}", "localhost")
        async with (
            running_server(tmp_path, mcp_egress_allow=allow) as server,
            await server.client(scopes=ADMIN) as admin,
        ):
            by_address = await add_http(admin, "address", f"http://127.0.0.1:{port}/mcp")
            by_name = await add_http(admin, "name", f"http://localhost:{other_port}/mcp")
            for added in (by_address, by_name):
                probe = await admin.call("mcp/servers/test", {"serverId": added["id"]})
                assert probe["ok"] is True, probe["error"]
                assert "transpose" in {tool["name"] for tool in probe["tools"]}
            # The address is allowed at its port only.
            with pytest.raises(RemoteError) as other:
                await add_http(admin, "other", f"http://127.0.0.1:{other_port}/mcp")
            assert other.value.wire_code == -32602

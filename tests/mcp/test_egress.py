"""The egress policy's judgement and its transport, against real sockets on 127.0.0.1."""

from __future__ import annotations

import httpx2
import pytest

from tests.mcp.listeners import Recorder
from yamabiko.engines.tools.egress import (
    EgressPolicy,
    EgressRefused,
    EgressTransport,
    is_public,
    literal_address,
)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("[::1]", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("example.com", None),
        ("dead.beef", None),
    ],
)
def test_host_forms_the_resolver_reads_as_addresses_are_addresses(
    host: str, address: str | None
) -> None:
    found = literal_address(host)
    assert (str(found) if found is not None else None) == address


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1",
        "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.1", "::1", "::",
        "fe80::1", "fc00::1", "fec0::1", "ff02::1", "::ffff:127.0.0.1", "64:ff9b::a00:1",
        "2002:c0a8:1::",
    ],
)  # fmt: skip
def test_addresses_that_are_not_globally_routable_are_not_public(address: str) -> None:
    found = literal_address(address)
    assert found is not None
    assert not is_public(found)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111"])
def test_public_addresses_are_public(address: str) -> None:
    found = literal_address(address)
    assert found is not None
    assert is_public(found)


def test_allowlist_entries_name_hosts_addresses_and_networks_with_ports() -> None:
    policy = EgressPolicy(["mcp.internal", "10.0.0.0/8", "127.0.0.1:8931", "[::1]:8931"])
    assert policy.check_url("http://MCP.internal/x") == ("mcp.internal", 80)
    assert policy.check_url("https://10.1.2.3/mcp") == ("10.1.2.3", 443)
    assert policy.check_url("http://127.0.0.1:8931/mcp") == ("127.0.0.1", 8931)
    assert policy.check_url("http://[::1]:8931/mcp") == ("::1", 8931)
    for refused in ("http://127.0.0.1:8932/", "http://[::1]/", "http://192.168.0.1/"):
        with pytest.raises(EgressRefused):
            policy.check_url(refused)
    for bad in ("[::1]x", "host:0", "host:99999", "a b", "10.0.0.0/99"):
        with pytest.raises(ValueError, match="egress allowlist entry"):
            EgressPolicy([bad])


async def test_a_name_is_resolved_once_and_every_answer_judged() -> None:
    with pytest.raises(EgressRefused, match="loopback name"):
        await EgressPolicy().resolve(httpx2.URL("http://localhost/"))
    with pytest.raises(EgressRefused, match="does not resolve"):
        await EgressPolicy().resolve(httpx2.URL("http://no-such-host.invalid/"))
    allowed = await EgressPolicy(["localhost"]).resolve(httpx2.URL("http://localhost/"))
    assert allowed.is_loopback


async def test_the_transport_connects_to_the_judged_address_and_keeps_the_host() -> None:
    async with Recorder("404") as listener:
        transport = EgressTransport(EgressPolicy([f"localhost:{listener.port}"]))
        async with httpx2.AsyncClient(transport=transport, trust_env=False) as client:
            response = await client.get(f"http://localhost:{listener.port}/mcp")
            assert response.status_code == 404
            assert f"host: localhost:{listener.port}".encode() in listener.seen().lower()
            with pytest.raises(EgressRefused):
                await client.get(f"http://127.0.0.1:{listener.port}/mcp")
        assert listener.connections == 1


async def test_the_connection_goes_to_the_address_judged_not_to_a_second_lookup() -> None:
    """``rebind.test`` exists only in this resolver: that the request arrives proves the
    connection used the judged address (no second lookup to be rebound), with the name
    kept in Host. A resolver that slips a loopback address among public ones is refused."""
    calls: list[str] = []

    async with Recorder("404") as listener:

        async def resolver(host: str, port: int) -> list[str]:
            calls.append(host)
            if host == "rebind.test":
                return ["127.0.0.1"]
            return ["93.184.216.34", "127.0.0.1"]

        policy = EgressPolicy([f"127.0.0.1:{listener.port}"], resolver=resolver)
        async with httpx2.AsyncClient(transport=EgressTransport(policy), trust_env=False) as client:
            response = await client.get(f"http://rebind.test:{listener.port}/mcp")
            assert response.status_code == 404
            with pytest.raises(EgressRefused, match="private or reserved"):
                await client.get("http://mixed.test/mcp")
        assert calls == ["rebind.test", "mixed.test"]
        assert f"host: rebind.test:{listener.port}".encode() in listener.seen().lower()
        assert listener.connections == 1

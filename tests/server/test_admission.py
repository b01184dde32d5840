"""The admission service without a transport: what a new face can rely on when it
calls it (token sources and their order, places held and given back, the handshake
rate per address and per IPv6 /64)."""

from __future__ import annotations

from yamabiko.server.admission import Admission, AdmissionRequest, Refusal, Ticket
from yamabiko.server.auth import TokenVerifier, mint_token

SECRET = "a-secret-for-the-admission-tests-0123456789"


def admission(**kw: object) -> Admission:
    return Admission(TokenVerifier(secret=SECRET), **kw)  # type: ignore[arg-type]


def token(sub: str = "alice", tenant: str = "acme") -> str:
    return mint_token(SECRET, sub=sub, tenant=tenant)


def request(peer: str = "10.0.0.1:5000", **kw: object) -> AdmissionRequest:
    return AdmissionRequest(path="/ws", peer=peer, **kw)  # type: ignore[arg-type]


async def test_header_then_subprotocol_then_query() -> None:
    rules = admission()
    alice, bob, carol = token("alice"), token("bob"), token("carol")
    both = request(
        headers={"authorization": f"Bearer {alice}"},
        subprotocols=["yamabiko.v1", f"bearer.{bob}"],
        query=f"access_token={carol}",
    )
    assert isinstance(got := await rules.admit(both, None), Ticket)
    assert got.identity.sub == "alice"
    sub = request(headers={}, subprotocols=[f"bearer.{bob}"], query=f"access_token={carol}")
    assert isinstance(got := await rules.admit(sub, None), Ticket)
    assert got.identity.sub == "bob"
    query = request(headers={}, query=f"access_token={carol}")
    assert isinstance(got := await rules.admit(query, None), Ticket)
    assert got.identity.sub == "carol"
    refused = await rules.admit(
        request(headers={}, query=f"access_token={carol}", query_token=False), None
    )
    assert isinstance(refused, Refusal)
    assert (refused.status, refused.kind) == (401, "missing_token")


async def test_places_are_held_until_released_once() -> None:
    rules = admission(max_connections_per_user=2)
    headers = {"authorization": f"Bearer {token()}"}
    first = await rules.admit(request(headers=headers), "socket")
    second = await rules.admit(request(headers=headers), "socket")
    assert isinstance(first, Ticket)
    assert isinstance(second, Ticket)
    third = await rules.admit(request(headers=headers), "socket")
    assert isinstance(third, Refusal)
    assert (third.status, third.kind) == (429, "too_many_connections")
    # The same sub in another tenant is another user; MCP sessions are counted apart.
    other = {"authorization": f"Bearer {token(tenant='globex')}"}
    assert isinstance(await rules.admit(request(headers=other), "socket"), Ticket)
    assert isinstance(await rules.admit(request(headers=headers), "mcp_session"), Ticket)
    first.release()
    first.release()
    assert rules.held("socket", "acme", "alice") == 1
    assert isinstance(await rules.admit(request(headers=headers), "socket"), Ticket)
    assert rules.stats.handshakes_rejected == {"too_many_connections": 1}


async def test_handshake_rate_per_address_and_per_ipv6_64() -> None:
    now = [0.0]
    rules = admission(handshakes_per_second=1.0, handshake_burst=2, clock=lambda: now[0])

    async def kind(peer: str) -> str:
        refused = await rules.admit(request(peer, headers={}), "socket")
        assert isinstance(refused, Refusal)
        return refused.kind

    assert [await kind("10.0.0.1:1") for _ in range(3)] == [
        "missing_token",
        "missing_token",
        "rate_limited",
    ]
    assert await kind("10.0.0.2:1") == "missing_token"  # another address, its own bucket
    # Two addresses of one IPv6 /64 share a bucket; another /64 does not.
    assert await kind("2001:db8:0:1::1:1") == "missing_token"
    assert await kind("2001:db8:0:1::2:1") == "missing_token"
    assert await kind("2001:db8:0:1::3:1") == "rate_limited"
    assert await kind("2001:db8:0:2::1:1") == "missing_token"
    now[0] += 1.0  # a second later, one more handshake
    assert await kind("10.0.0.1:1") == "missing_token"
    assert await kind("10.0.0.1:1") == "rate_limited"
    # Requests that ask for no place (within an open MCP session) are not rate limited.
    within = await rules.admit(request("10.0.0.1:1", headers={}), None)
    assert isinstance(within, Refusal)
    assert within.kind == "missing_token"
    assert rules.stats.handshakes_rejected["rate_limited"] == 3

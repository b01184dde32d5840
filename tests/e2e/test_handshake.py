"""Refusals at the handshake: HTTP 401/403/429 before any upgrade, over a real socket."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support import Running, running_server
from yamabiko.client import Client
from yamabiko.schema.objects import TenantId
from yamabiko.store.revocations import MemoryRevokedTokens


async def refused(url: str, token: str | None = None, **headers: str) -> tuple[int, str, str]:
    """Try a handshake; return (status, WWW-Authenticate, body) of the refusal."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, additional_headers=headers, open_timeout=5):
            pass
    response = info.value.response
    return (
        response.status_code,
        response.headers.get("WWW-Authenticate", ""),
        response.body.decode() if response.body else "",
    )


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "alice",
        "tid": "acme",
        "exp": now + 600,
        "iat": now,
        "scope": "chat",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


async def test_missing_token_is_401_with_challenge(server: Running) -> None:
    status, challenge, _ = await refused(server.url)
    assert status == 401
    assert challenge.startswith("Bearer")


async def test_query_token_is_accepted(server: Running) -> None:
    async with connect(f"{server.url}?access_token={server.token()}") as ws:
        await ws.send('{"jsonrpc":"2.0","id":1,"method":"ping"}')
        assert json.loads(await ws.recv())["result"] == {}


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(
            lambda s: f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.",
            "algorithm not allowed",
            id="alg-none",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(), "x" * 40, algorithm="HS256"),
            "signature",
            id="wrong-signature",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(exp=int(time.time()) - 5), s, algorithm="HS256"),
            "expired",
            id="expired",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(nbf=int(time.time()) + 300), s, algorithm="HS256"),
            "not yet valid",
            id="not-yet-valid",
        ),
        pytest.param(
            lambda s: jwt.encode(claims(sub=None), s, algorithm="HS256"), "sub", id="missing-sub"
        ),
        pytest.param(
            lambda s: jwt.encode(claims(tid=None), s, algorithm="HS256"), "tid", id="missing-tid"
        ),
        pytest.param(
            lambda s: jwt.encode(claims(exp=None), s, algorithm="HS256"), "exp", id="missing-exp"
        ),
        pytest.param(lambda s: "not.a.jwt", "malformed", id="garbage"),
    ],
)
async def test_bad_tokens_are_refused_with_401(server: Running, make: Any, reason: str) -> None:
    status, challenge, body = await refused(server.url, make(server.secret))
    assert status == 401
    assert 'error="invalid_token"' in challenge
    assert reason in body


async def test_audience_and_issuer_are_checked(tmp_path: Path) -> None:
    env = {"YAMABIKO_JWT_AUDIENCE": "yamabiko", "YAMABIKO_JWT_ISSUER": "https://idp.example"}
    async with running_server(tmp_path, env=env) as server:
        good = server.token(audience="yamabiko", issuer="https://idp.example")
        async with await Client.connect(server.url, token=good) as client:
            assert await client.call("ping") == {}
        status, _, body = await refused(
            server.url, server.token(audience="other", issuer="https://idp.example")
        )
        assert (status, "audience" in body) == (401, True)
        status, _, body = await refused(
            server.url, server.token(audience="yamabiko", issuer="https://evil.example")
        )
        assert (status, "issuer" in body) == (401, True)


async def test_hs256_token_signed_with_the_public_key_is_refused(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = tmp_path / "pub.pem"
    key_file.write_bytes(pem)
    async with running_server(tmp_path, jwt_public_key_file=str(key_file)) as server:
        good = jwt.encode(claims(), key, algorithm="RS256")
        async with await Client.connect(server.url, token=good) as client:
            assert await client.call("ping") == {}
        # The classic confusion attack: HMAC keyed with the public key's PEM bytes.
        signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims())}"
        mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
        forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        status, _, body = await refused(server.url, forged)
        assert status == 401
        assert "algorithm not allowed" in body
        # The data dir's dev secret is no backdoor once a public key is configured.
        status, _, _ = await refused(server.url, server.token())
        assert status == 401


async def test_revoked_jti_is_refused(tmp_path: Path) -> None:
    revoked = MemoryRevokedTokens()
    async with running_server(tmp_path, revoked=revoked) as server:
        token = server.token(jti="t-1")
        async with await Client.connect(server.url, token=token) as client:
            assert await client.call("ping") == {}
        await revoked.revoke("acme", "t-1", time.time() + 600)
        status, _, body = await refused(server.url, token)
        assert status == 401
        assert "revoked" in body


async def test_origin_allowlist(tmp_path: Path) -> None:
    async with running_server(
        tmp_path, env={"YAMABIKO_ALLOWED_ORIGINS": "https://app.example"}
    ) as server:
        status, _, _ = await refused(server.url, server.token(), Origin="https://evil.example")
        assert status == 403
        async with connect(
            server.url,
            additional_headers={
                "Authorization": f"Bearer {server.token()}",
                "Origin": "https://app.example",
            },
        ):
            pass


async def test_connections_per_user_are_limited_with_429(tmp_path: Path) -> None:
    async with running_server(tmp_path, max_connections_per_user=2) as server:
        first, second = await server.client(), await server.client()
        status, _, _ = await refused(server.url, server.token())
        assert status == 429
        # Another user is not affected, and a slot frees up when one closes.
        async with await server.client(sub="bob"):
            pass
        await first.close()
        async with await server.client() as third:
            assert await third.call("ping") == {}
        await second.close()


async def test_http_endpoints(server: Running) -> None:
    import urllib.request

    def get(path: str) -> tuple[int, bytes, Any]:
        with urllib.request.urlopen(server.http + path, timeout=5) as r:
            return r.status, r.read(), r.headers

    import asyncio

    status, body, headers = await asyncio.to_thread(get, "/health/live")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, body, _ = await asyncio.to_thread(get, "/health/ready")
    assert status == 200
    status, body, _ = await asyncio.to_thread(get, "/schema/openrpc.json")
    assert any(m["name"] == "initialize" for m in json.loads(body)["methods"])
    async with await server.client() as client, await server.client(sub="bob"):
        await client.call("ping")
        status, body, headers = await asyncio.to_thread(get, "/metrics")
    assert headers["Content-Type"].startswith("text/plain")
    assert b'yamabiko_requests_total{method="ping",outcome="ok"} 1.0' in body
    assert b"yamabiko_connections 2.0" in body
    assert b"yamabiko_connections_total 2.0" in body
    async with asyncio.timeout(5):  # the gauge falls as sessions end
        while b"yamabiko_connections 0.0" not in (await asyncio.to_thread(get, "/metrics"))[1]:
            await asyncio.sleep(0.02)


async def test_revocation_closes_an_open_session_within_a_second(server: Running) -> None:
    token = server.token(jti="live-1")
    client = await Client.connect(server.url, token=token)
    other = await server.client()  # same user, another token: unaffected
    assert server.app.revoked is not None
    started = time.monotonic()
    await server.app.revoked.revoke("acme", "live-1", time.time() + 600)
    async with asyncio.timeout(5):
        await client.wait_closed()
    assert time.monotonic() - started < 1.5
    assert client.close_code == 4001
    assert await other.call("ping") == {}
    await other.close()
    await client.close()
    status, _, body = await refused(server.url, token)
    assert status == 401
    assert "revoked" in body


async def test_refusals_without_identity_are_counted_not_audited(server: Running) -> None:
    await refused(server.url)
    await refused(server.url, "x.y.z")
    store = server.app.services.store
    assert (await store.audit.list(None, limit=10)).items == []
    assert server.app.stats.handshakes_rejected == {"missing_token": 1, "invalid_token": 1}


async def test_refusal_of_an_identified_user_is_audited(tmp_path: Path) -> None:
    async with running_server(tmp_path, max_connections_per_user=1) as server:
        async with await server.client():
            status, _, body = await refused(server.url, server.token())
            assert status == 429
            for _ in range(20):  # a user hammering its limit: sampled, not a row each
                assert (await refused(server.url, server.token()))[0] == 429
            store = server.app.services.store
            page = await store.audit.list(None)
            events = await store.audit.list(TenantId("acme"))
        assert page.items == []
        (event,) = events.items
        assert (event.action, event.outcome, event.subject) == (
            "connection.refused",
            "refused",
            "alice",
        )
        assert event.detail["reason"] == body.strip()
        assert server.token() not in str(event.detail)

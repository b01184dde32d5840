"""The JWT verifier: key sources, the algorithm allowlist, claims, revocation, JWKS."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from yamabiko.server.auth import TokenRejected, TokenVerifier, mint_token
from yamabiko.store.revocations import MemoryRevokedTokens

SECRET = "s" * 32
OTHER_SECRET = "o" * 32
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
BOUND_S = 10.0  # every wait on a verification that may touch the network is bounded


def pem(private_key: Any) -> bytes:
    return bytes(
        private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "alice", "tid": "acme", "exp": int(time.time()) + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


async def rejected(verifier: TokenVerifier, token: str) -> TokenRejected:
    with pytest.raises(TokenRejected) as info:
        await asyncio.wait_for(verifier.verify(token), BOUND_S)
    assert not token or token not in info.value.reason
    return info.value


# --- construction -------------------------------------------------------------------------


def test_nothing_configured_is_refused() -> None:
    with pytest.raises(ValueError, match="no JWT key configured"):
        TokenVerifier()


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenVerifier(secret="short")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        mint_token("short", sub="a", tenant="t")


@pytest.mark.parametrize(
    "key",
    [ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(65537, 1024)],
    ids=["ec-p384", "rsa-1024"],
)
def test_unsupported_public_keys_are_refused(key: Any) -> None:
    with pytest.raises(ValueError, match="public key must be"):
        TokenVerifier(public_key_pem=pem(key))


def test_algorithm_follows_the_key_source() -> None:
    assert TokenVerifier(secret=SECRET).algorithms == ("HS256",)
    assert TokenVerifier(public_key_pem=pem(RSA_KEY), secret=SECRET).algorithms == ("RS256",)
    assert TokenVerifier(public_key_pem=pem(EC_KEY)).algorithms == ("ES256",)
    assert TokenVerifier(public_key_pem=pem(ED_KEY)).algorithms == ("EdDSA",)
    jwks = TokenVerifier(jwks_url="http://127.0.0.1:1/jwks", secret=SECRET)
    assert jwks.algorithms == ("RS256", "ES256", "EdDSA")


# --- valid tokens -------------------------------------------------------------------------


async def test_minted_hs256_token_verifies() -> None:
    token = mint_token(SECRET, sub="alice", tenant="acme", audience="yb", issuer="idp")
    identity = await TokenVerifier(secret=SECRET, audience="yb", issuer="idp").verify(token)
    assert (identity.sub, identity.tid) == ("alice", "acme")
    assert identity.scopes == {"chat", "agent", "ghost", "audio", "mcp"}
    assert identity.jti is not None
    assert len(identity.jti) == 32
    assert identity.exp == pytest.approx(time.time() + 3600, abs=5)


@pytest.mark.parametrize(("key", "alg"), [(RSA_KEY, "RS256"), (EC_KEY, "ES256"), (ED_KEY, "EdDSA")])
async def test_asymmetric_pem_tokens_verify(key: Any, alg: str) -> None:
    token = jwt.encode(claims(scope="chat"), key, algorithm=alg)
    identity = await TokenVerifier(public_key_pem=pem(key)).verify(token)
    assert identity.sub == "alice"
    assert identity.scopes == {"chat"}


async def test_aud_in_token_is_fine_when_no_audience_is_configured() -> None:
    token = mint_token(SECRET, sub="alice", tenant="acme", audience="someone")
    assert (await TokenVerifier(secret=SECRET).verify(token)).sub == "alice"


async def test_leeway_accepts_a_just_expired_token() -> None:
    token = jwt.encode(claims(exp=int(time.time()) - 5), SECRET, algorithm="HS256")
    assert (await TokenVerifier(secret=SECRET, leeway_s=30).verify(token)).tid == "acme"


# --- algorithm attacks --------------------------------------------------------------------


async def test_alg_none_is_refused() -> None:
    token = unsigned({"alg": "none", "typ": "JWT"}, claims()) + "."
    rejection = await rejected(TokenVerifier(secret=SECRET), token)
    assert rejection.reason == "algorithm not allowed: none"
    assert rejection.error == "invalid_token"


async def test_hs256_signed_with_the_public_key_pem_is_refused() -> None:
    # The classic confusion: an attacker signs HS256 with the (public) RSA PEM as secret.
    public_pem = pem(RSA_KEY)
    signing_input = unsigned({"alg": "HS256", "typ": "JWT"}, claims())
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"
    rejection = await rejected(TokenVerifier(public_key_pem=public_pem), token)
    assert rejection.reason == "algorithm not allowed: HS256"


async def test_secret_is_ignored_when_a_public_key_is_configured() -> None:
    token = mint_token(SECRET, sub="alice", tenant="acme")
    verifier = TokenVerifier(secret=SECRET, public_key_pem=pem(RSA_KEY))
    assert (await rejected(verifier, token)).reason == "algorithm not allowed: HS256"


async def test_unsafe_alg_value_is_not_echoed() -> None:
    token = unsigned({"alg": "<script>" * 4}, claims()) + "." + b64(b"sig")
    assert (await rejected(TokenVerifier(secret=SECRET), token)).reason == (
        "algorithm not allowed: ?"
    )


async def test_wrong_signature_is_refused() -> None:
    token = mint_token(OTHER_SECRET, sub="alice", tenant="acme")
    rejection = await rejected(TokenVerifier(secret=SECRET), token)
    assert rejection.reason == "signature verification failed"
    other_rsa = jwt.encode(claims(), RSA_KEY_2, algorithm="RS256")
    rejection = await rejected(TokenVerifier(public_key_pem=pem(RSA_KEY)), other_rsa)
    assert rejection.reason == "signature verification failed"


@pytest.mark.parametrize(
    ("token", "reason", "error"),
    [
        ("", "missing token", "invalid_request"),
        ("x" * 20_000, "token too large", "invalid_request"),
        ("not-a-jwt", "malformed token", "invalid_token"),
        ("a.b.c", "malformed token", "invalid_token"),
    ],
    ids=["empty", "huge", "garbage", "bad-base64"],
)
async def test_malformed_tokens(token: str, reason: str, error: str) -> None:
    rejection = await rejected(TokenVerifier(secret=SECRET), token)
    assert (rejection.reason, rejection.error) == (reason, error)


async def test_malformed_payload_with_valid_signature() -> None:
    signing_input = f"{b64(json.dumps({'alg': 'HS256'}).encode())}.{b64(b'not json')}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"
    assert (await rejected(TokenVerifier(secret=SECRET), token)).reason == "malformed token"


# --- claims -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": int(time.time()) - 10}, "token expired"),
        ({"nbf": int(time.time()) + 600}, "token not yet valid"),
        ({"iat": int(time.time()) + 600}, "token not yet valid"),
        ({"sub": None}, "missing claim: sub"),
        ({"tid": None}, "missing claim: tid"),
        ({"exp": None}, "missing claim: exp"),
        ({"sub": ""}, "invalid claim: sub"),
        ({"sub": 42}, "invalid claim: sub"),
        ({"tid": ["acme"]}, "invalid claim: tid"),
        ({"exp": "tomorrow"}, "malformed token"),
        ({"scope": 7}, "invalid claim: scope"),
        ({"scope": ["chat", 7]}, "invalid claim: scope"),
        ({"jti": 5}, "invalid claim: jti"),
    ],
)
async def test_claim_problems(overrides: dict[str, Any], reason: str) -> None:
    token = jwt.encode(claims(**overrides), SECRET, algorithm="HS256")
    assert (await rejected(TokenVerifier(secret=SECRET), token)).reason == reason


async def test_audience_and_issuer_are_enforced_when_configured() -> None:
    verifier = TokenVerifier(secret=SECRET, audience="yb", issuer="https://idp")
    for audience, issuer, reason in [
        ("other", "https://idp", "invalid audience"),
        ("yb", "https://evil", "invalid issuer"),
        (None, "https://idp", "missing claim: aud"),
        ("yb", None, "missing claim: iss"),
    ]:
        token = mint_token(SECRET, sub="alice", tenant="acme", audience=audience, issuer=issuer)
        assert (await rejected(verifier, token)).reason == reason


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("chat  ghost admin custom:thing", {"chat", "ghost", "admin", "custom:thing"}),
        (["chat", "audio"], {"chat", "audio"}),
        ("", set()),
        (None, set()),
    ],
    ids=["string", "list", "empty", "absent"],
)
async def test_scope_parsing(scope: Any, expected: set[str]) -> None:
    token = jwt.encode(claims(scope=scope), SECRET, algorithm="HS256")
    assert (await TokenVerifier(secret=SECRET).verify(token)).scopes == expected


async def test_revoked_jti_is_refused_in_its_tenant_only() -> None:
    revoked = MemoryRevokedTokens()
    await revoked.revoke("acme", "j1", time.time() + 600)
    verifier = TokenVerifier(secret=SECRET, revoked=revoked)
    token = mint_token(SECRET, sub="alice", tenant="acme", jti="j1")
    assert (await rejected(verifier, token)).reason == "token revoked"
    other_tenant = mint_token(SECRET, sub="alice", tenant="globex", jti="j1")
    assert (await verifier.verify(other_tenant)).jti == "j1"
    no_jti = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert (await verifier.verify(no_jti)).jti is None


def test_token_rejected_is_an_unauthorized_wire_error() -> None:
    error = TokenRejected("token expired")
    assert (error.code, error.message, error.error) == (-32001, "token expired", "invalid_token")


# --- JWKS ---------------------------------------------------------------------------------


def jwk(key: Any, kid: str) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(key, rsa.RSAPrivateKey):
        as_dict = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        as_dict = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        as_dict = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**as_dict, "kid": kid, "use": "sig"}


def signed(key: Any, alg: str, kid: str | None, **overrides: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers=headers)


class JwksServer:
    """A real HTTP server on loopback serving ``document``; counts the requests."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.status = 200
        self.hits = 0
        self.requested = threading.Event()
        self.gate: threading.Event | None = None  # when set, answers wait for it
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                owner.requested.set()
                if owner.gate is not None:
                    owner.gate.wait(BOUND_S)
                body = json.dumps(owner.document).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    thread = threading.Thread(target=server.httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
    thread.join(BOUND_S)


async def test_jwks_verifies_each_key_type_by_kid(jwks_server: JwksServer) -> None:
    jwks_server.document = {"keys": [jwk(RSA_KEY, "r1"), jwk(EC_KEY, "e1"), jwk(ED_KEY, "d1")]}
    verifier = TokenVerifier(jwks_url=jwks_server.url, secret=SECRET)
    for key, alg, kid in [
        (RSA_KEY, "RS256", "r1"),
        (EC_KEY, "ES256", "e1"),
        (ED_KEY, "EdDSA", "d1"),
    ]:
        identity = await asyncio.wait_for(verifier.verify(signed(key, alg, kid)), BOUND_S)
        assert identity.sub == "alice"
    assert jwks_server.hits == 1  # one fetch, then the cache
    hs = mint_token(SECRET, sub="alice", tenant="acme")
    assert (await rejected(verifier, hs)).reason == "algorithm not allowed: HS256"
    assert (await rejected(verifier, signed(EC_KEY, "ES256", "r1"))).reason == (
        "algorithm does not match signing key"
    )
    assert (await rejected(verifier, signed(RSA_KEY, "RS256", None))).reason == (
        "missing key id (kid)"
    )
    assert (await rejected(verifier, signed(RSA_KEY_2, "RS256", "r1"))).reason == (
        "signature verification failed"
    )


async def test_jwks_skips_keys_it_cannot_use(jwks_server: JwksServer) -> None:
    jwks_server.document = {
        "keys": [
            {"kty": "oct", "k": b64(SECRET.encode()), "kid": "hmac"},
            {**jwk(RSA_KEY, "enc"), "use": "enc"},
            {**jwk(RSA_KEY, "mislabelled"), "alg": "HS256"},
            "junk",
            jwk(RSA_KEY, "good"),
        ]
    }
    verifier = TokenVerifier(jwks_url=jwks_server.url, jwks_min_refresh_s=60)
    assert (await asyncio.wait_for(verifier.verify(signed(RSA_KEY, "RS256", "good")), BOUND_S)).sub
    for kid in ("enc", "mislabelled"):
        assert (await rejected(verifier, signed(RSA_KEY, "RS256", kid))).reason == (
            "unknown signing key"
        )
    hs = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "hmac"})
    assert (await rejected(verifier, hs)).reason == "algorithm not allowed: HS256"


async def test_jwks_key_rotation_is_picked_up(jwks_server: JwksServer) -> None:
    jwks_server.document = {"keys": [jwk(RSA_KEY, "old")]}
    verifier = TokenVerifier(jwks_url=jwks_server.url, jwks_min_refresh_s=0)
    await asyncio.wait_for(verifier.verify(signed(RSA_KEY, "RS256", "old")), BOUND_S)
    jwks_server.document = {"keys": [jwk(RSA_KEY, "old"), jwk(RSA_KEY_2, "new")]}
    identity = await asyncio.wait_for(verifier.verify(signed(RSA_KEY_2, "RS256", "new")), BOUND_S)
    assert identity.sub == "alice"
    assert jwks_server.hits == 2


async def test_concurrent_verifications_share_one_fetch(jwks_server: JwksServer) -> None:
    jwks_server.document = {"keys": [jwk(EC_KEY, "k")]}
    verifier = TokenVerifier(jwks_url=jwks_server.url)
    token = signed(EC_KEY, "ES256", "k")
    results = await asyncio.wait_for(
        asyncio.gather(*(verifier.verify(token) for _ in range(20))), BOUND_S
    )
    assert {r.sub for r in results} == {"alice"}
    assert jwks_server.hits == 1


async def test_a_cancelled_verification_does_not_cancel_the_shared_fetch(
    jwks_server: JwksServer,
) -> None:
    jwks_server.document = {"keys": [jwk(EC_KEY, "k")]}
    jwks_server.gate = threading.Event()
    verifier = TokenVerifier(jwks_url=jwks_server.url)
    token = signed(EC_KEY, "ES256", "k")
    first = asyncio.create_task(verifier.verify(token))
    assert await asyncio.to_thread(jwks_server.requested.wait, BOUND_S)
    first.cancel()
    second = asyncio.create_task(verifier.verify(token))
    jwks_server.gate.set()
    assert (await asyncio.wait_for(second, BOUND_S)).sub == "alice"
    assert first.cancelled()
    assert jwks_server.hits == 1


async def test_unknown_kids_do_not_hammer_the_idp(jwks_server: JwksServer) -> None:
    jwks_server.document = {"keys": [jwk(RSA_KEY, "k")]}
    verifier = TokenVerifier(jwks_url=jwks_server.url, jwks_min_refresh_s=60)
    await asyncio.wait_for(verifier.verify(signed(RSA_KEY, "RS256", "k")), BOUND_S)
    for i in range(10):
        rejection = await rejected(verifier, signed(RSA_KEY, "RS256", f"garbage-{i}"))
        assert rejection.reason == "unknown signing key"
    assert jwks_server.hits == 1
    # With no rate limit, each unknown kid costs one fetch; concurrent ones share it.
    eager = TokenVerifier(jwks_url=jwks_server.url, jwks_min_refresh_s=0)
    await asyncio.wait_for(eager.verify(signed(RSA_KEY, "RS256", "k")), BOUND_S)
    tokens = [signed(RSA_KEY, "RS256", f"garbage-{i}") for i in range(5)]
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(eager.verify(t) for t in tokens), return_exceptions=True), BOUND_S
    )
    assert all(isinstance(o, TokenRejected) for o in outcomes)
    assert jwks_server.hits == 3


async def test_jwks_cache_expiry_refetches(jwks_server: JwksServer) -> None:
    jwks_server.document = {"keys": [jwk(ED_KEY, "k")]}
    verifier = TokenVerifier(jwks_url=jwks_server.url, jwks_cache_s=0, jwks_min_refresh_s=0)
    for _ in range(3):
        await asyncio.wait_for(verifier.verify(signed(ED_KEY, "EdDSA", "k")), BOUND_S)
    assert jwks_server.hits == 3


async def test_jwks_server_error_is_a_rejection(jwks_server: JwksServer) -> None:
    jwks_server.status = 500
    verifier = TokenVerifier(jwks_url=jwks_server.url, jwks_min_refresh_s=60)
    token = signed(RSA_KEY, "RS256", "k")
    assert (await rejected(verifier, token)).reason == "signing keys unavailable"
    # Within the refresh interval a failed IdP is not asked again.
    assert (await rejected(verifier, token)).reason == "signing keys unavailable"
    assert jwks_server.hits == 1


async def test_jwks_endpoint_down_is_a_rejection() -> None:
    with socket.socket() as sock:  # a port that was just free, so nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    verifier = TokenVerifier(jwks_url=f"http://127.0.0.1:{port}/jwks")
    rejection = await rejected(verifier, signed(RSA_KEY, "RS256", "k"))
    assert (rejection.reason, rejection.error) == ("signing keys unavailable", "invalid_token")


async def test_jwks_recovers_after_the_endpoint_comes_back(jwks_server: JwksServer) -> None:
    jwks_server.status = 503
    verifier = TokenVerifier(jwks_url=jwks_server.url, jwks_min_refresh_s=0)
    token = signed(RSA_KEY, "RS256", "k")
    assert (await rejected(verifier, token)).reason == "signing keys unavailable"
    jwks_server.status, jwks_server.document = 200, {"keys": [jwk(RSA_KEY, "k")]}
    assert (await asyncio.wait_for(verifier.verify(token), BOUND_S)).sub == "alice"


async def test_an_expired_key_set_is_not_used_when_the_refetch_fails(
    jwks_server: JwksServer,
) -> None:
    jwks_server.document = {"keys": [jwk(RSA_KEY, "k")]}
    verifier = TokenVerifier(jwks_url=jwks_server.url, jwks_cache_s=0)
    token = signed(RSA_KEY, "RS256", "k")
    assert (await asyncio.wait_for(verifier.verify(token), BOUND_S)).sub == "alice"
    jwks_server.status = 500
    assert (await rejected(verifier, token)).reason == "signing keys unavailable"
    assert jwks_server.hits == 2

"""The plain-HS256 fast path of the token check gives PyJWT's verdict on every token.

``TokenVerifier`` verifies the common token (a plain HS256 header) itself and leaves
everything else to PyJWT. These tokens are built to sit on each edge of each rule; for
every one, the verifier must accept exactly when PyJWT (with the same settings) does,
with the same claims, and refuse with PyJWT's reason otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest

from yamabiko.server.auth import TokenRejected, TokenVerifier

SECRET = "fast-path-secret-0123456789abcdef"
NOW = time.time()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(header: Any, payload: Any, secret: str = SECRET, raw: bool = False) -> str:
    head = b64(header if raw else json.dumps(header).encode())
    body = b64(payload if raw else json.dumps(payload).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "u1", "tid": "t1", "exp": NOW + 600, "jti": "j1"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


PLAIN = {"alg": "HS256", "typ": "JWT"}
VALID = signed(PLAIN, claims())

TOKENS: dict[str, str] = {
    "valid": VALID,
    "no typ": signed({"alg": "HS256"}, claims()),
    "typ other": signed({"alg": "HS256", "typ": "at+jwt"}, claims()),
    "kid header": signed({"alg": "HS256", "kid": "k"}, claims()),
    "crit header": signed({"alg": "HS256", "crit": ["b64"], "b64": False}, claims()),
    "alg none": signed({"alg": "none"}, claims()),
    "alg HS512": signed({"alg": "HS512"}, claims()),
    "header not an object": signed(["HS256"], claims()),
    "payload not an object": signed(PLAIN, ["sub"]),
    "payload not json": signed(json.dumps(PLAIN).encode(), b"{not json", raw=True),
    "payload NaN exp": signed(
        json.dumps(PLAIN).encode(), b'{"sub":"u","tid":"t","exp":NaN}', raw=True
    ),
    "bad signature": VALID[:-2] + ("AA" if not VALID.endswith("AA") else "BB"),
    "other secret": signed(PLAIN, claims(), secret="another-secret-0123456789abcdefgh"),
    "padded signature": VALID + "=",
    "junk in body": VALID.replace(".", ".!", 1),
    "two parts": VALID.rsplit(".", 1)[0],
    "four parts": VALID + ".x",
    "expired": signed(PLAIN, claims(exp=NOW - 1)),
    "exp as string": signed(PLAIN, claims(exp=str(int(NOW + 600)))),
    "exp true": signed(PLAIN, claims(exp=True)),
    "exp float": signed(PLAIN, claims(exp=NOW + 600.5)),
    "no exp": signed(PLAIN, claims(exp=...)),
    "no sub": signed(PLAIN, claims(sub=...)),
    "sub number": signed(PLAIN, claims(sub=5)),
    "sub empty": signed(PLAIN, claims(sub="")),
    "no tid": signed(PLAIN, claims(tid=...)),
    "tid number": signed(PLAIN, claims(tid=5)),
    "jti number": signed(PLAIN, claims(jti=5)),
    "no jti": signed(PLAIN, claims(jti=...)),
    "nbf future": signed(PLAIN, claims(nbf=NOW + 600)),
    "nbf past": signed(PLAIN, claims(nbf=NOW - 600)),
    "nbf string": signed(PLAIN, claims(nbf="soon")),
    "iat future": signed(PLAIN, claims(iat=NOW + 600)),
    "iat past": signed(PLAIN, claims(iat=NOW - 600)),
    "iat string": signed(PLAIN, claims(iat="then")),
    "aud string": signed(PLAIN, claims(aud="yamabiko")),
    "aud other": signed(PLAIN, claims(aud="other")),
    "aud list": signed(PLAIN, claims(aud=["x", "yamabiko"])),
    "aud list other": signed(PLAIN, claims(aud=["x", "y"])),
    "aud list mixed": signed(PLAIN, claims(aud=["yamabiko", 5])),
    "aud number": signed(PLAIN, claims(aud=5)),
    "iss ours": signed(PLAIN, claims(iss="https://issuer")),
    "iss other": signed(PLAIN, claims(iss="https://evil")),
    "iss number": signed(PLAIN, claims(iss=5)),
    "scope list": signed(PLAIN, claims(scope=["chat", "ghost"])),
    "exp past year 9999": signed(PLAIN, claims(exp=1e30)),
}

SETTINGS: list[dict[str, Any]] = [
    {},
    {"audience": "yamabiko"},
    {"issuer": "https://issuer"},
    {"audience": "yamabiko", "issuer": "https://issuer", "leeway_s": 5.0},
]


async def verdict(verifier: TokenVerifier, token: str) -> tuple[str, Any]:
    try:
        identity = await verifier.verify(token)
    except TokenRejected as exc:
        return "refused", exc.reason
    return "accepted", (identity.sub, identity.tid, identity.jti, identity.exp)


async def reference(settings: dict[str, Any], token: str) -> tuple[str, Any]:
    """PyJWT's own verdict with the options the verifier documents."""
    require = ["exp", "sub", "tid"]
    require += ["aud"] * ("audience" in settings) + ["iss"] * ("issuer" in settings)
    options: dict[str, Any] = {"require": require}
    if "audience" not in settings:
        options["verify_aud"] = False
    try:
        jwt.decode(
            token,
            SECRET.encode(),
            algorithms=["HS256"],
            audience=settings.get("audience"),
            issuer=settings.get("issuer"),
            leeway=settings.get("leeway_s", 0.0),
            options=options,  # type: ignore[arg-type]
        )
    except jwt.PyJWTError:
        return "refused", None
    return "accepted", None


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(s) or "default")
@pytest.mark.parametrize("name", list(TOKENS))
async def test_the_verdict_is_pyjwts(name: str, settings: dict[str, Any]) -> None:
    verifier = TokenVerifier(secret=SECRET, **settings)
    got, detail = await verdict(verifier, TOKENS[name])
    expected, _ = await reference(settings, TOKENS[name])
    if expected == "refused":
        assert got == "refused", f"{name}: accepted what PyJWT refuses"
    elif got == "refused":
        # PyJWT accepts; only our own identity rules may still refuse.
        assert detail.startswith("invalid claim"), f"{name}: refused with {detail!r}"
    else:
        payload = jwt.decode(TOKENS[name], options={"verify_signature": False})
        assert detail[:3] == (payload["sub"], payload["tid"], payload.get("jti"))


async def test_the_reason_is_pyjwts_when_the_common_token_is_refused() -> None:
    verifier = TokenVerifier(secret=SECRET)
    assert (await verdict(verifier, TOKENS["expired"]))[1] == "token expired"
    assert (await verdict(verifier, TOKENS["nbf future"]))[1] == "token not yet valid"
    assert (await verdict(verifier, TOKENS["bad signature"]))[1] == (
        "signature verification failed"
    )
    assert (await verdict(verifier, TOKENS["no tid"]))[1] == "missing claim: tid"

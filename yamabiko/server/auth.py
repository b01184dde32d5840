"""JWT verification for the handshake and ``session/refresh``.

The rules are in docs/configuration.md, Authentication.

Theory of operation: exactly one key source is in force. A PEM public key or a JWKS URL
means asymmetric algorithms only (the HS256 secret is then ignored, so a dev secret can
never sit beside a production IdP as a backdoor); otherwise HS256 with the secret. The
token's ``alg`` header must be in the allowlist before any key is touched, and a key is
always handed to PyJWT as a typed key object bound to one algorithm, so ``none`` and
HS/RS confusion (a public key used as an HMAC secret) cannot happen by construction.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import json
import logging
import math
import re
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK
from jwt.exceptions import InvalidJTIError, InvalidSubjectError
from jwt.types import Options

from yamabiko.protocol.errors import Unauthorized
from yamabiko.sessions.identity import Identity
from yamabiko.store.revocations import RevokedTokens

ASYMMETRIC_ALGORITHMS: Final = ("RS256", "ES256", "EdDSA")
MIN_SECRET_BYTES: Final = 32
"""RFC 7518 section 3.2: an HS256 key must be at least as long as the hash."""
MAX_TOKEN_BYTES: Final = 16 * 1024
_MIN_RSA_BITS: Final = 2048
_JWKS_TIMEOUT_S: Final = 5.0
_JWKS_MAX_BYTES: Final = 1024 * 1024
_SAFE_ALG = re.compile(r"[A-Za-z0-9]{1,16}")
MAX_EXP: Final = 253402300799
"""9999-12-31T23:59:59Z: the last instant a datetime can hold. A later ``exp`` (even
issuer-signed) is refused as invalid rather than overflowing wherever it is shown."""

logger = logging.getLogger(__name__)


class TokenRejected(Unauthorized):
    """A token was refused. ``reason`` is short, safe to log and to send in a 401 body or
    ``WWW-Authenticate`` error_description: it never contains the token or a secret.
    ``error`` is the RFC 6750 code: ``invalid_request`` when no usable token was sent,
    else ``invalid_token``. As an :class:`Unauthorized` it reaches the wire as -32001."""

    def __init__(self, reason: str, error: str = "invalid_token") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


# PyJWT's exceptions, most specific first, mapped to our reasons.
_REASONS: Final[tuple[tuple[type[jwt.PyJWTError], str], ...]] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "invalid audience"),
    (jwt.InvalidIssuerError, "invalid issuer"),
    (jwt.InvalidSignatureError, "signature verification failed"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (InvalidSubjectError, "invalid claim: sub"),
    (InvalidJTIError, "invalid claim: jti"),
    (jwt.InvalidIssuedAtError, "invalid claim: iat"),
    (jwt.DecodeError, "malformed token"),
)


_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_HS256_SIGNATURE_CHARS: Final = 43
"""32 bytes of HMAC-SHA256 in unpadded base64url."""


def _unbase64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@functools.lru_cache(maxsize=64)
def _plain_hs256_header(head: str) -> bool:
    """Whether a token's header segment is exactly ``{"alg": "HS256"}``, with ``typ``
    ``JWT`` or none. Few distinct headers exist, hence the cache. Anything else (a
    ``kid``, ``crit``, ``b64``...) is left to PyJWT."""
    if not _BASE64URL.fullmatch(head):
        return False
    try:
        header = json.loads(_unbase64(head))
    except (binascii.Error, ValueError):
        return False
    return (
        type(header) is dict
        and header.get("alg") == "HS256"
        and header.get("typ", "JWT") == "JWT"
        and header.keys() <= {"alg", "typ"}
    )


def _is_number(value: object) -> bool:
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _checked_secret(secret: str) -> bytes:
    key = secret.encode()
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"HS256 secret must be at least {MIN_SECRET_BYTES} bytes")
    return key


def _jwk_algorithm(jwk: Mapping[str, Any]) -> str | None:
    """The one algorithm a JWK may verify, from its kty/crv; None when we do not accept it."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "RSA":
        alg = "RS256"
    elif (kty, crv) == ("EC", "P-256"):
        alg = "ES256"
    elif (kty, crv) == ("OKP", "Ed25519"):
        alg = "EdDSA"
    else:
        return None
    return alg if jwk.get("alg", alg) == alg and jwk.get("use", "sig") == "sig" else None


def _fetch_jwks(url: str) -> dict[str, PyJWK]:
    """Blocking: download and parse the key set. Runs in a worker thread."""
    # The scheme was checked to be http(s) when the verifier was built.
    with urllib.request.urlopen(url, timeout=_JWKS_TIMEOUT_S) as response:  # noqa: S310
        document = json.loads(response.read(_JWKS_MAX_BYTES + 1)[:_JWKS_MAX_BYTES])
    keys: dict[str, PyJWK] = {}
    for jwk in document["keys"]:
        alg = _jwk_algorithm(jwk) if isinstance(jwk, dict) else None
        if alg is None or not isinstance(jwk.get("kid"), str):
            continue  # unusable here: skipping it keeps the rest of the set working
        try:
            key = PyJWK(jwk, algorithm=alg)
        except jwt.PyJWTError:
            continue
        if isinstance(key.key, rsa.RSAPublicKey) and key.key.key_size < _MIN_RSA_BITS:
            continue
        keys[jwk["kid"]] = key
    return keys


class _JwksCache:
    """The key set at one URL: cached for ``cache_s``, refetched on an unknown ``kid`` at
    most once per ``min_refresh_s`` (failed attempts count too), one fetch at a time. A set
    that expired and could not be refetched is not used: its keys may have been revoked."""

    def __init__(self, url: str, cache_s: float, min_refresh_s: float) -> None:
        # A refresh interval longer than the cache life would leave known keys unusable.
        self._url, self._cache_s, self._min_refresh_s = url, cache_s, min(min_refresh_s, cache_s)
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._inflight: asyncio.Task[bool] | None = None

    async def key(self, kid: str) -> PyJWK:
        now = time.monotonic()
        fresh = now - self._fetched_at < self._cache_s
        may_fetch = self._inflight is not None or now - self._attempted_at >= self._min_refresh_s
        if (not fresh or kid not in self._keys) and may_fetch:
            if not await asyncio.shield(self._refresh()):
                raise TokenRejected("signing keys unavailable")
            fresh = True
        if not fresh:
            raise TokenRejected("signing keys unavailable")
        key = self._keys.get(kid)
        if key is None:
            raise TokenRejected("unknown signing key")
        return key

    def _refresh(self) -> asyncio.Task[bool]:
        if self._inflight is None:
            self._attempted_at = time.monotonic()
            self._inflight = asyncio.create_task(self._fetch())
        return self._inflight

    async def _fetch(self) -> bool:
        # Never raises, so a waiter that was cancelled leaves no unretrieved exception.
        try:
            self._keys = await asyncio.to_thread(_fetch_jwks, self._url)
            self._fetched_at = time.monotonic()
            return True
        except Exception as exc:
            # No query string: it could carry a credential.
            logger.warning("JWKS fetch from %s failed: %r", self._url.split("?")[0], exc)
            return False
        finally:
            self._inflight = None


class TokenVerifier:
    """Verifies tokens into :class:`Identity`. Guarantees: the signature is checked with the
    configured key under the explicit ``algorithms`` allowlist; ``exp``, ``sub`` and ``tid``
    are required, ``aud``/``iss`` when configured, ``nbf``/``iat`` checked when present;
    a revoked ``jti`` is refused. Safe to share between sessions; never logs a token."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key_pem: bytes | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway_s: float = 0.0,
        revoked: RevokedTokens | None = None,
        jwks_cache_s: float = 300.0,
        jwks_min_refresh_s: float = 10.0,
    ) -> None:
        self._static_key: Any = None
        self._jwks: _JwksCache | None = None
        if public_key_pem is not None and jwks_url is not None:
            raise ValueError("configure a public key or a JWKS URL, not both")
        if public_key_pem is not None:
            key = load_pem_public_key(public_key_pem)
            if isinstance(key, rsa.RSAPublicKey) and key.key_size >= _MIN_RSA_BITS:
                self.algorithms: tuple[str, ...] = ("RS256",)
            elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
                self.algorithms = ("ES256",)
            elif isinstance(key, ed25519.Ed25519PublicKey):
                self.algorithms = ("EdDSA",)
            else:
                raise ValueError("public key must be RSA >= 2048 bits, EC P-256 or Ed25519")
            self._static_key = key
        elif jwks_url is not None:
            if not jwks_url.startswith(("https://", "http://")):
                raise ValueError("JWKS URL must be http(s)")
            self.algorithms = ASYMMETRIC_ALGORITHMS
            self._jwks = _JwksCache(jwks_url, jwks_cache_s, jwks_min_refresh_s)
        elif secret:
            self.algorithms = ("HS256",)
            self._static_key = _checked_secret(secret)
        else:
            raise ValueError("no JWT key configured: set a secret, a public key or a JWKS URL")
        self._hs256_key: bytes | None = self._static_key if self.algorithms == ("HS256",) else None
        self._audience, self._issuer, self._leeway = audience, issuer, leeway_s
        self._revoked = revoked
        self._require = ["exp", "sub", "tid"]
        self._require += ["aud"] * (audience is not None) + ["iss"] * (issuer is not None)

    async def verify(self, token: str) -> Identity:
        """Return the token's identity, or raise :class:`TokenRejected` with the reason."""
        if not token:
            raise TokenRejected("missing token", "invalid_request")
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRejected("token too large", "invalid_request")
        claims = self._plain_hs256(token) if self._hs256_key is not None else None
        if claims is None:
            claims = await self._claims(token)
        identity = _identity(claims)
        jti, revoked = identity.jti, self._revoked
        if jti is not None and revoked is not None and await revoked.is_revoked(identity.tid, jti):
            raise TokenRejected("token revoked")
        return identity

    async def _claims(self, token: str) -> dict[str, Any]:
        """The claims of a token PyJWT verifies, or the reason it does not."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("malformed token") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            shown = alg if isinstance(alg, str) and _SAFE_ALG.fullmatch(alg) else "?"
            raise TokenRejected(f"algorithm not allowed: {shown}")
        key = self._static_key
        if self._jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise TokenRejected("missing key id (kid)")
            key = await self._jwks.key(kid)
            if key.algorithm_name != alg:
                raise TokenRejected("algorithm does not match signing key")
        return self._decode(token, key, alg)

    def _plain_hs256(self, token: str) -> dict[str, Any] | None:
        """The claims of the common token (a plain HS256 header, a signature that
        verifies, claims that pass every check), or None for anything else, which then
        goes through PyJWT for its verdict and its reason.

        Every handshake verifies a token, and PyJWT spends ~45 us on one (it checks the
        base64 alphabet a character at a time, and decodes the header twice); this takes
        ~4 us. It accepts only what PyJWT would accept with the same settings: each
        check here is as strict as PyJWT's or stricter, and a doubt means None.
        """
        key = self._hs256_key
        parts = token.split(".")
        if key is None or len(parts) != 3:
            return None
        head, body, signature = parts
        if (
            len(signature) != _HS256_SIGNATURE_CHARS
            or not _plain_hs256_header(head)
            or not _BASE64URL.fullmatch(body)
            or not _BASE64URL.fullmatch(signature)
        ):
            return None
        expected = hmac.digest(key, f"{head}.{body}".encode("ascii"), "sha256")
        try:
            if not hmac.compare_digest(expected, _unbase64(signature)):
                return None
            claims = msgspec.json.decode(_unbase64(body))
        except (binascii.Error, msgspec.DecodeError):
            return None
        if type(claims) is not dict or not all(name in claims for name in self._require):
            return None
        now, leeway = time.time(), self._leeway
        exp, nbf, iat = claims["exp"], claims.get("nbf", 0), claims.get("iat", 0)
        if not (_is_number(exp) and _is_number(nbf) and _is_number(iat)):
            return None
        if exp <= now - leeway or nbf > now + leeway or iat > now + leeway:
            return None
        if not isinstance(claims["sub"], str) or not isinstance(claims.get("jti", ""), str):
            return None
        if self._issuer is not None and claims["iss"] != self._issuer:
            return None
        if self._audience is not None:
            aud = claims["aud"]
            audiences = [aud] if isinstance(aud, str) else aud
            if not isinstance(audiences, list) or self._audience not in audiences:
                return None
            if not all(isinstance(a, str) for a in audiences):
                return None
        return claims

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        options: Options = {"require": self._require}
        if self._audience is None:
            options["verify_aud"] = False  # no audience configured: a token's aud is fine
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],  # already checked against the allowlist
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options=options,
            )
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(f"missing claim: {exc.claim}") from None
        except jwt.PyJWTError as exc:
            reason = next((r for t, r in _REASONS if isinstance(exc, t)), "invalid token")
            raise TokenRejected(reason) from None


@functools.lru_cache(maxsize=256)
def _scope_set(scope: str) -> frozenset[str]:
    # Few distinct scope strings exist; sharing one set per string saves ~1 KiB per
    # idle connection over building a new one for every token.
    return frozenset(sys.intern(name) for name in scope.split())


def _identity(claims: Mapping[str, Any]) -> Identity:
    for name in ("sub", "tid"):
        if not isinstance(claims[name], str) or not claims[name]:
            raise TokenRejected(f"invalid claim: {name}")
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        raise TokenRejected("invalid claim: exp")
    if not math.isfinite(exp) or exp > MAX_EXP:
        raise TokenRejected("invalid claim: exp")
    scope = claims.get("scope", "")
    if isinstance(scope, str):
        scopes = _scope_set(scope)
    elif isinstance(scope, list) and all(isinstance(s, str) for s in scope):
        scopes = _scope_set(" ".join(scope))
    else:
        raise TokenRejected("invalid claim: scope")
    jti = claims.get("jti")
    if jti is not None and not isinstance(jti, str):
        raise TokenRejected("invalid claim: jti")
    return Identity(sub=claims["sub"], tid=claims["tid"], scopes=scopes, exp=float(exp), jti=jti)


def mint_token(
    secret: str,
    *,
    sub: str,
    tenant: str,
    scopes: Iterable[str] = ("chat", "agent", "ghost", "audio", "mcp"),
    ttl_s: float = 3600.0,
    audience: str | None = None,
    issuer: str | None = None,
    jti: str | None = None,
    now: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """An HS256 token for ``secret`` (dev mode, ``yamabiko token``, tests). ``jti`` defaults
    to a random uuid4 hex; ``scope`` is space-separated; ``extra`` claims are added last."""
    _checked_secret(secret)
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        "sub": sub,
        "tid": tenant,
        "scope": " ".join(scopes),
        "iat": int(issued),
        "exp": int(issued + ttl_s),
        "jti": jti or uuid.uuid4().hex,
    }
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    claims.update(extra or {})
    return jwt.encode(claims, secret, algorithm="HS256")

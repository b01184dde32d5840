"""``GET /dev/token``: a token for the playground, on a developer's machine only.

Served only in dev mode with the data dir's own HS256 secret (no JWT setting: nothing
to protect but the developer's own laptop), and only to a request that is local in
every way we can see: the peer address is loopback, the ``Host`` names a loopback
host (a DNS-rebinding page cannot pass: its ``Host`` is the attacker's name), and a
browser's ``Sec-Fetch-Site`` says same-origin (or is absent, as from curl). The token
carries no ``admin`` scope and lives an hour. Everywhere else the path is 404.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qs

import msgspec

from yamabiko.server.auth import mint_token

PATH: Final = "/dev/token"
TTL_S: Final = 3600.0
SCOPES: Final = ("chat", "agent", "ghost", "audio", "mcp")
_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class DevToken(msgspec.Struct, rename="camel"):
    token: str
    sub: str
    tenant: str
    expires_at: float


def is_local(peer: str, host: str, fetch_site: str | None) -> bool:
    """Whether a request is from this machine, to a loopback name, not cross-site."""
    address = peer.rsplit(":", 1)[0].strip("[]")
    try:
        if not ipaddress.ip_address(address).is_loopback:
            return False
    except ValueError:
        return False
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
    if hostname.lower() not in _LOOPBACK_HOSTS:
        return False
    return fetch_site in (None, "same-origin", "none")


class DevTokens:
    """Mints playground tokens with the data dir's secret (see the module's rules)."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def mint(self, query: str) -> DevToken | None:
        """A token for ``?sub=`` (default ``dev``) in tenant ``dev``; None for a bad name."""
        sub = parse_qs(query).get("sub", ["dev"])[0]
        if not _NAME.match(sub):
            return None
        token = mint_token(self._secret, sub=sub, tenant="dev", scopes=SCOPES, ttl_s=TTL_S)
        return DevToken(token=token, sub=sub, tenant="dev", expires_at=time.time() + TTL_S)

    @staticmethod
    def allowed(peer: str, headers: Mapping[str, str]) -> bool:
        return is_local(peer, headers.get("Host", ""), headers.get("Sec-Fetch-Site"))

"""Where the server may connect on a tenant's behalf: the egress policy of MCP servers.

A tenant admin chooses the URL of an HTTP MCP server, and the server connects to it from
inside the operator's network. Without a policy that is a server-side request forgery:
the cloud's metadata service, Redis on loopback, an intranet admin page. The policy
(``docs/mcp.md``, "Egress policy"):

- only ``http`` and ``https``;
- a destination is refused when its address is not globally routable: private,
  loopback, link-local, multicast, reserved, unspecified, shared (CGNAT), documentation
  ranges; an IPv4 address inside IPv6 (mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::``,
  6to4 ``2002::``) is judged by the IPv4 address it carries;
- ``localhost`` and ``*.localhost`` are loopback whatever the resolver says;
- host forms that the C resolver reads as IPv4 (``2130706433``, ``0x7f.1``, ``127.1``,
  ``0177.0.0.1``) are addresses, judged as such;
- the operator's allowlist (``YAMABIKO_MCP_EGRESS_ALLOW``) names exceptions: a host name
  (``mcp.internal``), an address or a network (``10.0.0.0/8``, ``::1``), each optionally
  with a port (``127.0.0.1:8931``, ``[::1]:8931``, ``mcp.internal:443``). A named host is
  allowed whatever it resolves to; an address or network allows the resolved addresses
  in it.

The check is made on the resolved address at connect time, by :class:`EgressTransport`:
it resolves the name once, judges every address it got (one refused address refuses
the request: a name cannot smuggle a private address among public ones), and connects
to the judged address while keeping the name in ``Host`` and in TLS (SNI and certificate
checks, through httpx's ``sni_hostname`` request extension). A DNS answer that changes
between a check and the connect (rebinding) therefore changes nothing: there is no
second lookup. Every request goes through it, a redirect the SDK follows included.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

import httpx2

__all__ = [
    "DEFAULT_PORTS",
    "EgressPolicy",
    "EgressRefused",
    "EgressTransport",
    "IPAddress",
    "literal_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS: Final = {"http": 80, "https": 443}
MAX_ADDRESSES: Final = 32
"""Resolved addresses judged at most (a longer answer is refused, not truncated)."""

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_LOOPBACK_NAMES: Final = (
    "localhost", "localhost.localdomain", "localhost6", "localhost6.localdomain6",
    "ip6-localhost", "ip6-loopback",
)  # fmt: skip


class EgressRefused(Exception):
    """A destination the policy does not allow. The message names the host as written
    and why (never a header, never what a port answered)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` denotes by itself, or None for a name. Reads what the C
    resolver reads as IPv4 (``inet_aton``: decimal, octal, hex and short forms), and
    IPv6 with or without brackets (a zone ``%eth0`` is dropped)."""
    text = host.strip().rstrip(".").strip("[]")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    if not text or not all(c in "0123456789abcdefxABCDEFX." for c in text):
        return None  # a name: inet_aton would refuse it anyway; this avoids the call
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def _carried(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is globally routable unicast (what the policy allows)."""
    inner = _carried(address)
    site_local = isinstance(inner, ipaddress.IPv6Address) and inner.is_site_local
    return inner.is_global and not (
        inner.is_multicast
        or inner.is_reserved
        or inner.is_unspecified
        or inner.is_link_local
        or site_local
    )


def _is_loopback_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name in _LOOPBACK_NAMES or name.endswith(".localhost")


@dataclass(frozen=True)
class _Entry:
    """One allowlist entry: a host name or a network, and a port (None: any)."""

    host: str | None
    network: IPNetwork | None
    port: int | None

    def names(self, host: str, port: int) -> bool:
        return self.host is not None and self.host == host and self.port in (None, port)

    def holds(self, address: IPAddress, port: int) -> bool:
        if self.network is None or self.port not in (None, port):
            return False
        return address in self.network or _carried(address) in self.network


def _parse_entry(text: str) -> _Entry:
    entry = text.strip().lower()
    port: int | None = None
    if entry.startswith("["):  # [v6]:port or [v6]
        inside, _, rest = entry[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"egress allowlist entry {text!r}: expected [address]:port")
            port = _port(rest[1:], text)
        entry = inside
    elif entry.count(":") == 1:  # host:port or v4:port (a bare v6 has several colons)
        entry, _, port_text = entry.partition(":")
        port = _port(port_text, text)
    if "/" in entry or ":" in entry or literal_address(entry) is not None:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            address = literal_address(entry)
            if address is None:
                raise ValueError(
                    f"egress allowlist entry {text!r}: not an address, a network or a host name"
                ) from None
            network = ipaddress.ip_network(address)
        return _Entry(None, network, port)
    if not entry or not all(c.isalnum() or c in "-._" for c in entry):
        raise ValueError(f"egress allowlist entry {text!r}: not a host name")
    return _Entry(entry.rstrip("."), None, port)


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"egress allowlist entry {entry!r}: the port must be 1-65535")
    return int(text)


Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Host and port to the addresses (as text) a connection may use."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's resolver (``getaddrinfo`` in the loop's thread pool)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class EgressPolicy:
    """Judges MCP servers' destinations (see the module docstring). ``allow``: the
    operator's exceptions; a malformed entry raises ValueError naming it. ``resolver``:
    how names become addresses (default: the system's)."""

    def __init__(self, allow: Iterable[str] = (), *, resolver: Resolver | None = None) -> None:
        self._entries = tuple(_parse_entry(e) for e in allow if e.strip())
        self._resolver = resolver or system_resolver

    def __repr__(self) -> str:
        return f"EgressPolicy(entries={len(self._entries)})"

    def check_url(self, url: str) -> tuple[str, int]:
        """The host and port of ``url`` if nothing in the URL itself is refused (scheme,
        a literal address or a loopback name not on the allowlist); a name still has to
        pass :meth:`resolve` at connect time. Raises EgressRefused."""
        try:
            parsed = httpx2.URL(url)
        except (httpx2.InvalidURL, TypeError, ValueError):
            raise EgressRefused("the URL cannot be parsed") from None
        return self._check(parsed)

    def _check(self, url: httpx2.URL) -> tuple[str, int]:
        if url.scheme not in DEFAULT_PORTS:
            raise EgressRefused("only http and https URLs are allowed")
        host = url.host.lower().rstrip(".")
        if not host:
            raise EgressRefused("the URL has no host")
        port = url.port or DEFAULT_PORTS[url.scheme]
        if self._named(host, port):
            return host, port
        address = literal_address(host)
        if address is not None:
            self._judge(host, address, port)
        elif _is_loopback_name(host):
            raise EgressRefused(f"{host} is a loopback name: {_HINT}")
        return host, port

    async def resolve(self, url: httpx2.URL) -> IPAddress:
        """The address to connect to for ``url``: its literal address, or its name
        resolved once, every answer judged. Raises EgressRefused (a name that does not
        resolve included)."""
        host, port = self._check(url)
        address = literal_address(host)
        if address is not None:
            return address
        try:
            answers = await self._resolver(host, port)
        except (OSError, UnicodeError):
            raise EgressRefused(f"{host} does not resolve") from None
        addresses: list[IPAddress] = []
        for answer in answers[: MAX_ADDRESSES + 1]:
            try:
                resolved = ipaddress.ip_address(answer.split("%", 1)[0])
            except ValueError:
                raise EgressRefused(f"{host} does not resolve to a usable address") from None
            if resolved not in addresses:
                addresses.append(resolved)
        if not addresses or len(addresses) > MAX_ADDRESSES:
            raise EgressRefused(f"{host} does not resolve to a usable address")
        if not self._named(host, port):
            for resolved in addresses:
                self._judge(host, resolved, port)
        return addresses[0]

    def _named(self, host: str, port: int) -> bool:
        return any(entry.names(host, port) for entry in self._entries)

    def _judge(self, host: str, address: IPAddress, port: int) -> None:
        if is_public(address) or any(e.holds(address, port) for e in self._entries):
            return
        raise EgressRefused(f"{host} is a private or reserved address: {_HINT}")


_HINT: Final = "not allowed for MCP servers unless YAMABIKO_MCP_EGRESS_ALLOW names it"


class EgressTransport(httpx2.AsyncBaseTransport):
    """An httpx transport that connects only where ``policy`` allows, to the address it
    judged (see the module docstring). Refusals raise :class:`EgressRefused` before any
    connection is made. Proxies from the environment are ignored: a proxy would make
    the connection on our behalf, out of the policy's sight."""

    def __init__(self, policy: EgressPolicy, ssl_context: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        # Give a shared context: building one loads the CA bundle (100-300 ms, blocking).
        self._inner = httpx2.AsyncHTTPTransport(
            verify=ssl_context if ssl_context is not None else True, trust_env=False
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        address = await self.policy.resolve(request.url)
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            # TLS still names (and verifies) the host the URL gave, not the address.
            extensions.setdefault("sni_hostname", request.url.host)
        pinned = httpx2.Request(
            request.method,
            request.url.copy_with(host=str(address)),
            headers=request.headers,  # Host: the name, as the client set it
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self._inner.aclose()

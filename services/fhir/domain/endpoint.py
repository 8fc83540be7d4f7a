"""Where the facade may POST a notification, and with which headers: the decisions, without I/O.

A Subscription's endpoint is chosen by a sender, so the facade must not become a way into its own network:
in production an endpoint is https, its host is a name (or a public address), and every address that name
resolves to must be a public one — loopback, private, link-local, unique-local, multicast, reserved and
unspecified addresses are refused in whatever spelling (`127.1`, `2130706433`, `0x7f000001`,
`[::ffff:127.0.0.1]`, …). The adapter that connects resolves once, asks `refused_address` about what it
got, and connects to that very address (no second lookup for DNS rebinding to answer differently).
"""

from __future__ import annotations

import ipaddress
import socket
import string
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # an IPv4 address behind a NAT64 gateway
# Headers a sender may not set: they frame the request, route it, or belong to the facade (the body's type).
FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "cookie",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "content-type",
        "content-encoding",
        "expect",
    }
)
TOKEN = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")  # RFC 9110 field-name
PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F)) | {"\t"}


class EndpointRefused(Exception):
    """The endpoint may not be reached (the message says why in general terms, never an address)."""


@dataclass(frozen=True)
class EndpointPolicy:
    """`development`: http and loopback allowed (local tests); `allowed_hosts`: when set, the only hosts an
    endpoint may name (`ehr.example.nl`, or `*.example.nl` for every name under it)."""

    development: bool = False
    allowed_hosts: tuple[str, ...] = ()

    def host_allowed(self, host: str) -> bool:
        if not self.allowed_hosts:
            return True
        name = _name(host)
        return any(
            name == allowed or (allowed.startswith("*.") and name.endswith(allowed[1:]))
            for allowed in (_name(a) for a in self.allowed_hosts)
        )


def _name(host: str) -> str:
    return host.strip().lower().rstrip(".")


def refused_address(address: Address, *, allow_loopback: bool = False) -> bool:
    """Whether a notification may not go to `address`: anything but a public unicast address (an IPv4
    address inside IPv6 — mapped, 6to4, Teredo, NAT64 — is judged as that IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refused_address(embedded, allow_loopback=allow_loopback)
    if address.is_loopback:
        return not allow_loopback
    return (
        not address.is_global
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


def literal_address(host: str) -> Address | None:
    """The address a host names by itself, in any spelling a resolver takes (`127.1`, `0x7f000001`,
    `2130706433`, `[::1]`, `0177.0.0.1`, a trailing dot), or None for a name to be resolved."""
    bare = host.strip().rstrip(".").strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    try:  # inet_aton takes the classic shortened, decimal, octal and hex spellings; it does no lookup
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except (OSError, ValueError):
        return None


def check_endpoint(endpoint: str, policy: EndpointPolicy) -> None:
    """Refuse (EndpointRefused) an endpoint URL that could never be sent to: the wrong scheme, a user in it,
    a host outside the allow-list, a local name, or an address `refused_address` refuses."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise EndpointRefused("the endpoint is not a URL") from None
    if parts.scheme not in (("https", "http") if policy.development else ("https",)) or not parts.hostname:
        raise EndpointRefused("the endpoint is an https URL")
    if "@" in parts.netloc or parts.username is not None:
        raise EndpointRefused("the endpoint has no user or password in it (send them as a header)")
    if port == 0:
        raise EndpointRefused("the endpoint's port is 1 to 65535")
    host = parts.hostname
    if not policy.host_allowed(host):
        raise EndpointRefused("the endpoint's host is not one this platform sends to")
    name = _name(host)
    if not policy.development and (name == "localhost" or name.endswith(".localhost")):
        raise EndpointRefused("the endpoint is a public address")
    address = literal_address(host)
    if address is not None and refused_address(address, allow_loopback=policy.development):
        raise EndpointRefused("the endpoint is a public address")


class HeaderRefused(Exception):
    """A `channel.header` the facade will not send."""


def parse_headers(headers: list[str]) -> list[tuple[str, str]]:
    """`Name: value` lines as (name, value): names are tokens and not one that frames or routes the request,
    values printable ASCII (what HTTP/1.1 sends as is); HeaderRefused otherwise."""
    parsed = []
    for header in headers:
        name, colon, value = header.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name or not set(name) <= TOKEN:
            raise HeaderRefused("a header is `Name: value` with a name of letters, digits and -")
        if not set(value) <= PRINTABLE:
            raise HeaderRefused("a header's value is printable ASCII")
        if name.lower() in FORBIDDEN_HEADERS:
            raise HeaderRefused(f"the header {name} is set by the platform, not by a Subscription")
        parsed.append((name, value))
    return parsed

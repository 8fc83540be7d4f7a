"""The HTTP client notifications go out with: it connects only to an address it checked.

httpx would resolve an endpoint's name itself, after any check of ours — and a name can answer a public
address to the check and `127.0.0.1` to the connection (DNS rebinding). Here the connection pool's network
backend resolves the name once, refuses it unless every address is one `refused_address` allows, and opens
the TCP connection to the checked address. The URL keeps the name, so `Host` and TLS (SNI and the
certificate's name) are those of the endpoint. No proxy from the environment is used: it would connect for us.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from services.fhir.domain.endpoint import Address, EndpointPolicy, EndpointRefused, literal_address, refused_address

Resolver = Callable[[str, int], Awaitable[list[Address]]]


async def resolve(host: str, port: int) -> list[Address]:
    """Every address the system's resolver gives for `host` (one lookup)."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]) for *_, sockaddr in found]


class CheckedAddressBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects to the address it checked for a host, never to the host's name."""

    def __init__(
        self, policy: EndpointPolicy, *, resolver: Resolver = resolve, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.policy, self.resolver = policy, resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def checked_address(self, host: str, port: int) -> Address:
        """The address to connect to for `host`, or EndpointRefused."""
        if not self.policy.host_allowed(host):
            raise EndpointRefused("the endpoint's host is not one this platform sends to")
        literal = literal_address(host)
        try:
            addresses = [literal] if literal is not None else await self.resolver(host, port)
        except OSError:
            raise EndpointRefused("the endpoint's host does not resolve") from None
        if not addresses or any(refused_address(a, allow_loopback=self.policy.development) for a in addresses):
            raise EndpointRefused("the endpoint is not a public address")
        return addresses[0]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await self.checked_address(host, port)
        return await self.inner.connect_tcp(
            str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise EndpointRefused("notifications go over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a pool whose connections go through a CheckedAddressBackend."""

    def __init__(self, backend: CheckedAddressBackend, *, verify: Any = True) -> None:
        super().__init__(verify=verify, trust_env=False)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def notification_client(
    policy: EndpointPolicy, *, timeout: float, resolver: Resolver = resolve, verify: Any = True
) -> httpx.AsyncClient:
    """The client the notifier POSTs with: checked addresses, no redirects, no proxies from the environment."""
    transport = CheckedTransport(CheckedAddressBackend(policy, resolver=resolver), verify=verify)
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)

"""The notifier's HTTP client connects to the address it checked, not to whatever a second lookup of the
name would answer (DNS rebinding), and keeps the name as the request's Host; in production an endpoint
whose name resolves to a loopback or private address — among public ones or in an IPv6 spelling — is
refused before any connection is made."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.fhir.adapters.endpoints import notification_client
from services.fhir.domain.endpoint import Address, EndpointPolicy, EndpointRefused
from tests.support import _free_port


class Listener:
    """An endpoint on 127.0.0.1 that keeps the Host of every request it gets."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.port = _free_port()

    async def _take(self, request: web.Request) -> web.Response:
        self.hosts.append(request.headers["Host"])
        return web.Response(status=204)


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    made = Listener()
    app = web.Application()
    app.router.add_post("/notify", made._take)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", made.port).start()
    yield made
    await runner.cleanup()


class Rebinding:
    """A resolver whose first answer is `first` and every later one `then` (what a rebinding attacker's DNS
    server does between a check and a connection); counts its lookups."""

    def __init__(self, first: list[str], then: list[str]) -> None:
        self.first, self.then, self.lookups = first, then, 0

    async def __call__(self, host: str, port: int) -> list[Address]:
        self.lookups += 1
        return [ipaddress.ip_address(a) for a in (self.first if self.lookups == 1 else self.then)]


async def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(listener: Listener) -> None:
    # development allows loopback: the checked address is 127.0.0.1, a second lookup would say 127.0.0.2
    # (where nothing listens) — the request still reaches the listener, after one lookup
    resolver = Rebinding(["127.0.0.1"], ["127.0.0.2"])
    async with notification_client(EndpointPolicy(development=True), timeout=10, resolver=resolver) as client:
        answer = await client.post(f"http://ehr.rebinding.test:{listener.port}/notify", content=b"{}")
    assert answer.status_code == 204
    assert resolver.lookups == 1
    assert listener.hosts == [f"ehr.rebinding.test:{listener.port}"]


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["93.184.215.14", "127.0.0.1"],  # one refused address among public ones is enough to refuse
        ["10.0.0.7"],
        ["::ffff:127.0.0.1"],
        ["::1"],
        ["fd00::1"],
        ["169.254.169.254"],
    ],
)
async def test_in_production_a_name_resolving_to_a_local_address_is_refused_before_connecting(
    listener: Listener, addresses: list[str]
) -> None:
    resolver = Rebinding(addresses, addresses)
    async with notification_client(EndpointPolicy(), timeout=10, resolver=resolver) as client:
        with pytest.raises(EndpointRefused) as refused:
            await client.post(f"http://ehr.rebinding.test:{listener.port}/notify", content=b"{}")
    assert "127" not in str(refused.value) and listener.hosts == []


async def test_in_production_an_address_spelled_as_the_host_is_judged_without_a_lookup(listener: Listener) -> None:
    resolver = Rebinding(["93.184.215.14"], ["93.184.215.14"])
    async with notification_client(EndpointPolicy(), timeout=10, resolver=resolver) as client:
        for host in ("127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"):
            with pytest.raises(EndpointRefused):
                await client.post(f"http://{host}:{listener.port}/notify", content=b"{}")
    assert resolver.lookups == 0 and listener.hosts == []


async def test_an_allow_list_is_kept_at_send_time(listener: Listener) -> None:
    policy = EndpointPolicy(development=True, allowed_hosts=("ehr.example.nl",))
    resolver = Rebinding(["127.0.0.1"], ["127.0.0.1"])
    async with notification_client(policy, timeout=10, resolver=resolver) as client:
        with pytest.raises(EndpointRefused):
            await client.post(f"http://other.example.nl:{listener.port}/notify", content=b"{}")
        assert (await client.post(f"http://ehr.example.nl:{listener.port}/notify", content=b"{}")).status_code == 204
    assert listener.hosts == [f"ehr.example.nl:{listener.port}"]


def test_the_client_takes_no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    client = notification_client(EndpointPolicy(), timeout=10)
    assert not client._mounts and client.follow_redirects is False and isinstance(client, httpx.AsyncClient)


def _self_signed(name: str, directory: Path) -> tuple[Path, Path]:
    """A certificate for `name` (and its key), signed by itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "endpoint.pem", directory / "endpoint.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_over_https_the_checked_address_is_connected_to_with_the_name_for_sni_and_the_certificate(
    tmp_path: Path,
) -> None:
    name = "ehr.pinning.test"
    cert_path, key_path = _self_signed(name, tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)
    server_names: list[str | None] = []  # what each TLS handshake asked for (SNI)
    server_context.sni_callback = lambda _socket, server_name, _context: server_names.append(server_name)
    seen: list[str] = []

    async def take(request: web.Request) -> web.Response:
        seen.append(request.headers["Host"])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/notify", take)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_context).start()
    try:
        trusted = ssl.create_default_context(cafile=str(cert_path))
        resolver = Rebinding(["127.0.0.1"], ["127.0.0.2"])
        policy = EndpointPolicy(development=True)
        async with notification_client(policy, timeout=10, resolver=resolver, verify=trusted) as client:
            answer = await client.post(f"https://{name}:{port}/notify", content=b"{}")
        # the certificate was checked against the name (it names no address), over a connection to 127.0.0.1
        assert answer.status_code == 204 and resolver.lookups == 1
        assert seen == [f"{name}:{port}"] and server_names == [name]
    finally:
        await runner.cleanup()

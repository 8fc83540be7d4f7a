"""The embedded OpenID Connect provider for development, the demo and the tests: a real provider (PyPI's
`oidc-provider-mock`: discovery, JWKS, authorization code with PKCE and nonce, RP-initiated logout) whose login
form asks a tester for a BSN and a DigiD level instead of a password — or, for the console's client, a name, an
organisation number and roles (the claims `name`, `org_id`, `roles`), standing in for an organisation's Entra ID
or Keycloak.

It stands in for the DigiD broker a gemeente offers; the portal talks to it exactly as to that broker, so there
is no login bypass inside the product. Never run it where real people log in: anyone may be anyone here.
"""

from __future__ import annotations

import hashlib
import html
import io
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import oidc_provider_mock
import werkzeug.serving
import werkzeug.test

# The DigiD levels as a broker names them in `acr` (SAML authentication context classes).
LEVELS = {
    "basis": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
    "midden": "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
    "substantieel": "urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard",
    "hoog": "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI",
}

# The console's client (services/portal/config.py): its testers pick a name, an organisation and roles.
CONSOLE_CLIENT_ID = "kansrijk-console"
CONSOLE_ROLES = ("beheerder", "coordinator", "privacy-officer")

StartResponse = Callable[..., Any]


def _form(query: str, error: str = "") -> bytes:
    options = "".join(
        f'<option value="{name}"{" selected" if name == "substantieel" else ""}>{name}</option>' for name in LEVELS
    )
    notice = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="nl"><head><meta charset="utf-8"><title>Testinlog DigiD (ontwikkeling)</title></head>
<body><main>
<h1>Testinlog DigiD (alleen voor ontwikkeling en tests)</h1>
<p>Dit is geen DigiD. Vul het burgerservicenummer in en kies het niveau waarmee zij inlogt.</p>
{notice}
<form method="post" action="/oauth2/authorize?{html.escape(query)}">
  <p><label for="bsn">Burgerservicenummer</label><br><input id="bsn" name="bsn" inputmode="numeric" required></p>
  <p><label for="level">Niveau</label><br><select id="level" name="level">{options}</select></p>
  <p><button type="submit">Inloggen</button></p>
</form>
</main></body></html>""".encode()


def _staff_form(query: str, error: str = "") -> bytes:
    roles = "".join(
        f'<p><input type="checkbox" id="role-{role}" name="role" value="{role}">'
        f' <label for="role-{role}">{role}</label></p>'
        for role in CONSOLE_ROLES
    )
    notice = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="nl"><head><meta charset="utf-8"><title>Testinlog organisatie (ontwikkeling)</title></head>
<body><main>
<h1>Testinlog organisatie (alleen voor ontwikkeling en tests)</h1>
<p>Dit is niet de inlog van uw organisatie. Kies wie u bent, bij welke organisatie en met welke rollen.</p>
{notice}
<form method="post" action="/oauth2/authorize?{html.escape(query)}">
  <p><label for="name">Naam</label><br><input id="name" name="name" required></p>
  <p><label for="org">Organisatienummer</label><br><input id="org" name="org" required></p>
  <fieldset><legend>Rollen</legend>{roles}</fieldset>
  <p><button type="submit">Inloggen</button></p>
</form>
</main></body></html>""".encode()


class TestLogin:
    """WSGI middleware: the provider's authorization form becomes "BSN and level"; the subject it logs in is
    registered with those claims (`bsn`, `acr`) first, through the provider's own `PUT /users/{sub}`."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._users = werkzeug.test.Client(app)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/oauth2/authorize":
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        query = environ.get("QUERY_STRING", "")
        if environ["REQUEST_METHOD"] == "GET":
            return self._replace_form(environ, start_response, query)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(length).decode())
        if "action" in form:  # "deny" and the like: the provider's own handling
            return self._forward(environ, start_response, urlencode({k: v[0] for k, v in form.items()}))
        if _is_console(query):
            return self._staff_login(environ, start_response, query, form)
        bsn = (form.get("bsn") or [""])[0].strip()
        level = (form.get("level") or [""])[0]
        if not bsn.isdigit() or level not in LEVELS:
            start_response("400 Bad Request", [("Content-Type", "text/html; charset=utf-8")])
            return [_form(query, "Vul een burgerservicenummer (cijfers) in en kies een niveau.")]
        subject = f"test-{bsn}-{level}"
        registered = self._users.put(f"/users/{quote(subject)}", json={"bsn": bsn, "acr": LEVELS[level]})
        if registered.status_code != 204:
            raise RuntimeError(f"the provider refused the test user ({registered.status_code})")
        return self._forward(environ, start_response, urlencode({"sub": subject}))

    def _staff_login(
        self, environ: dict[str, Any], start_response: StartResponse, query: str, form: dict[str, list[str]]
    ) -> Iterable[bytes]:
        name = (form.get("name") or [""])[0].strip()
        org = (form.get("org") or [""])[0].strip()
        roles = [role for role in form.get("role", []) if role in CONSOLE_ROLES]
        if not name or not org:
            start_response("400 Bad Request", [("Content-Type", "text/html; charset=utf-8")])
            return [_staff_form(query, "Vul een naam en een organisatienummer in.")]
        subject = f"staff-{hashlib.sha256(f'{name}|{org}|{roles}'.encode()).hexdigest()[:16]}"
        registered = self._users.put(f"/users/{quote(subject)}", json={"name": name, "org_id": org, "roles": roles})
        if registered.status_code != 204:
            raise RuntimeError(f"the provider refused the test user ({registered.status_code})")
        return self._forward(environ, start_response, urlencode({"sub": subject}))

    def _replace_form(self, environ: dict[str, Any], start_response: StartResponse, query: str) -> Iterable[bytes]:
        """The provider validates the request (client, redirect URI); if it would show its form, ours shows."""
        status: list[Any] = []

        def capture(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            status.extend([s, headers])
            return lambda _data: None

        body = b"".join(self.app(environ, capture))
        if not status[0].startswith("200"):
            start_response(status[0], status[1])
            return [body]
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [_staff_form(query) if _is_console(query) else _form(query)]

    def _forward(self, environ: dict[str, Any], start_response: StartResponse, body: str) -> Iterable[bytes]:
        raw = body.encode()
        environ = {**environ, "wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw))}
        environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        return self.app(environ, start_response)  # type: ignore[no-any-return]


def _is_console(query: str) -> bool:
    return parse_qs(query).get("client_id") == [CONSOLE_CLIENT_ID]


def provider_app() -> TestLogin:
    """The provider as a WSGI app: nonce required (the portal always sends one), any client id accepted."""
    return TestLogin(
        oidc_provider_mock.app(require_nonce=True, issue_refresh_token=False, access_token_max_age=timedelta(minutes=5))
    )


@contextmanager
def running_provider(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """The provider served on a thread; yields its issuer URL."""
    server = werkzeug.serving.make_server(host, port, provider_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def serve(host: str, port: int) -> None:
    """Serve the provider until interrupted (`kansrijk login-provider`)."""
    werkzeug.serving.run_simple(host, port, provider_app(), threaded=True)

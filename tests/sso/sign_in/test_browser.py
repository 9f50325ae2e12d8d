"""A person signs in through the test IdP's login page in a real browser (Debian's chromium).

The IdP is pysaml2 behind a small login page on a loopback port; s3av is Django's live server, driven
through tests/fixtures/browser.py (skipped where Playwright or chromium is missing; ``make test`` installs
both).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from django_scopes import scopes_disabled

from accounts.models import Membership

PASSWORD = "idp-password"


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class IdpLoginPage:
    """GET /sso shows a login form for the AuthnRequest; POST /login answers with a signed response."""

    def __init__(self) -> None:
        self.sso: Any = None
        self.groups: list[str] = []
        self.server = make_server("127.0.0.1", 0, self.app, handler_class=_Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/sso":
            request = self.sso.idp.parse_request(f"{self.url}/sso?{environ['QUERY_STRING']}")
            fields = urlencode({"id": request.id, "acs": request.acs_url, "relay": request.relay_state})
            body = f"""<!doctype html><title>Test IdP</title><h1>Test IdP sign-in</h1>
<form method="post" action="/login?{html.escape(fields)}">
<label>Username <input name="username"></label><label>Password <input type="password" name="password"></label>
<button>Sign in</button></form>"""
        else:
            query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
            size = int(environ.get("CONTENT_LENGTH") or 0)
            form = {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(size).decode()).items()}
            if form.get("password") != PASSWORD:
                start_response("403 Forbidden", [("Content-Type", "text/html")])
                return [b"wrong password"]
            saml = self.sso.idp.response(
                form["username"],
                {"groups": self.groups},
                in_response_to=query["id"],
                acs_url=query["acs"],
                audience=self.sso.sp_entity_id,
            )
            body = f"""<!doctype html><body onload="document.forms[0].submit()">
<form method="post" action="{html.escape(query["acs"])}">
<input type="hidden" name="SAMLResponse" value="{saml}">
<input type="hidden" name="RelayState" value="{html.escape(query.get("relay", ""))}"></form>"""
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body.encode()]


@pytest.fixture
def idp_page() -> Iterator[IdpLoginPage]:
    page = IdpLoginPage()
    page.thread.start()
    yield page
    page.server.shutdown()
    page.server.server_close()


def test_a_person_signs_in_through_the_idp_login_page(portal_browser, make_sso, idp_page) -> None:
    host = portal_browser.base_url.removeprefix("http://")
    sso = make_sso(
        idp_sso_url=f"{idp_page.url}/sso",
        host=host,
        group_attribute="groups",
        group_roles={"ops": "operator"},
    )
    idp_page.sso = sso
    page = portal_browser.page

    def sign_in_at_the_idp() -> None:
        portal_browser.goto("/accounts/login/")
        page.fill("input[name=email][autocomplete=email]", "alice@acme.test")
        page.click("text=Continue with SSO")
        page.wait_for_url(f"{idp_page.url}/sso*")
        page.fill("input[name=username]", "alice@acme.test")
        page.fill("input[name=password]", PASSWORD)
        page.click("text=Sign in")
        page.wait_for_url(f"{portal_browser.base_url}/")

    sign_in_at_the_idp()
    first = page.content()
    portal_browser.screenshot("sso-signed-in-without-role")
    # Added to the mapped group at the IdP: the next sign-in gives the role.
    idp_page.groups = ["ops"]
    portal_browser.sign_out()
    sign_in_at_the_idp()
    second = page.content()
    assert "An admin must grant you a role" in first
    assert "badge--role-operator" in second and "<h1>Dashboard</h1>" in second
    with scopes_disabled():
        assert Membership.objects.get(user__email="alice@acme.test", tenant=sso.tenant).role == "operator"

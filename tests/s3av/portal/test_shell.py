"""The portal's frame: static files, security headers, the nav, messages, error pages."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django_scopes import scopes_disabled

from accounts.models import Membership, Role
from s3av import nav
from tests import factories

pytestmark = pytest.mark.django_db


def test_it_serves_the_stylesheet_and_htmx_itself(client):
    css = client.get("/static/css/portal.css")
    assert css.status_code == 200
    assert b".badge--infected" in b"".join(css.streaming_content)
    htmx = client.get("/static/vendor/htmx/htmx.min.js")
    assert htmx.status_code == 200


def test_every_page_names_its_icon_so_browsers_do_not_ask_for_a_missing_favicon(client):
    page = client.get("/accounts/login/")
    assert b'<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">' in page.content
    icon = client.get("/static/img/favicon.svg")
    assert icon.status_code == 200 and b"<svg" in b"".join(icon.streaming_content)


def test_every_page_carries_a_strict_csp_and_refuses_frames(client):
    response = client.get("/accounts/login/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    body = response.content.decode()
    # Nothing inline for the policy to refuse.
    assert "<style" not in body and " style=" not in body and "<script>" not in body
    assert "onsubmit=" not in body and "onclick=" not in body


def test_a_viewer_sees_the_pages_of_the_nav_they_may_open(tenant, session_client):
    body = session_client(tenant, Role.VIEWER).get("/findings/").content.decode()
    assert '<nav class="mainnav" aria-label="Main">' in body
    assert 'href="/findings/" aria-current="page">Findings</a>' in body
    assert 'href="/buckets/">Buckets</a>' in body
    assert ">Settings</a>" not in body


def test_only_the_closest_section_of_a_page_is_marked_current(tenant, session_client):
    # /settings/policies/ lies under both "Policies" and "Settings": one current link, the closer.
    body = session_client(tenant, Role.ADMIN).get("/settings/policies/").content.decode()
    assert body.count('aria-current="page"') == 1
    assert 'href="/settings/policies/" aria-current="page">Policies</a>' in body
    assert 'href="/settings/">Settings</a>' in body


def test_a_nav_line_whose_page_is_not_routed_is_left_out(tenant, session_client, monkeypatch):
    monkeypatch.setattr(nav, "NAV", [*nav.NAV, ("Coming soon", "no-such-url-name", Role.VIEWER)])
    body = session_client(tenant, Role.ADMIN).get("/").content.decode()
    assert "Coming soon" not in body and ">Findings</a>" in body


def test_a_member_without_a_role_is_told_who_can_grant_one(tenant, session_client):
    response = session_client(tenant, Role.NONE).get("/findings/")
    assert response.status_code == 403
    body = response.content.decode()
    assert "An admin must grant you a role" in body
    with scopes_disabled():
        admin = Membership.objects.get(tenant=tenant, role=Role.ADMIN).user.email
    assert f'href="mailto:{admin}"' in body
    assert "mainnav" not in body  # nothing to navigate to


def test_the_signed_in_message_shows_on_the_very_next_page(client, tenant, make_user):
    make_user("pat@example.com", tenant=tenant, role=Role.VIEWER, password="a-long-enough-password")
    response = client.post(
        "/accounts/login/", {"login": "pat@example.com", "password": "a-long-enough-password"}, follow=True
    )
    assert "Successfully signed in as pat@example.com" in response.content.decode()
    assert "Successfully signed in" not in client.get("/findings/").content.decode()


def test_the_sign_in_page_offers_no_sign_up(client):
    body = client.get("/accounts/login/").content.decode()
    assert "Sign Up" not in body and "signup" not in body
    assert "Continue with SSO" in body and body.count("Forgot your password?") == 1


def test_the_header_offers_a_tenant_switch_to_people_in_several_tenants(
    tenant, outsider_tenant, session_client
):
    client = session_client(tenant, Role.VIEWER)
    with scopes_disabled():
        factories.make_member(outsider_tenant, client.user, Role.ADMIN)
    body = client.get("/findings/").content.decode()
    assert 'action="/tenant/switch"' in body and "Outsider Org</option>" in body
    client.post("/tenant/switch", {"tenant": str(outsider_tenant.pk)})
    body = client.get("/findings/").content.decode()
    assert '<span class="tenant-name">Outsider Org</span>' in body
    assert "badge--role-admin" in body


def test_a_single_tenant_member_gets_no_switch(tenant, session_client):
    assert "tenant-switch" not in session_client(tenant, Role.VIEWER).get("/findings/").content.decode()


def test_an_unknown_page_is_the_portals_own_404(tenant, session_client):
    response = session_client(tenant, Role.VIEWER).get("/no/such/page")
    assert response.status_code == 404
    body = response.content.decode()
    assert "<h1>Not found</h1>" in body and "portal.css" in body


def test_the_500_page_renders_without_a_request_context():
    from s3av.middleware import server_error

    response = server_error(RequestFactory().get("/findings/"))
    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.content
    assert b"portal.css" in response.content


def test_a_form_without_its_csrf_token_gets_the_portals_page(tenant, make_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(tenant=tenant, role=Role.ADMIN))
    response = client.post("/tenant/switch", {"tenant": str(tenant.pk)})
    assert response.status_code == 403
    assert b"This form has expired" in response.content


def test_an_address_outside_the_tenants_ranges_gets_a_page_without_the_tenants_nav(tenant, session_client):
    tenant.allowed_cidrs = ["10.9.8.0/24"]
    tenant.save()
    response = session_client(tenant, Role.ADMIN).get("/findings/")
    assert response.status_code == 403
    body = response.content.decode()
    assert "Your address is not allowed here" in body and "mainnav" not in body

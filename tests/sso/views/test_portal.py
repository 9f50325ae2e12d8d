"""The portal: SSO on the sign-in page, and the admins' settings page calling the same services."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django_scopes import scopes_disabled

from accounts.models import AuditEvent, Role
from sso.models import SamlConnection
from tests.sso.idp import PysamlIdp


def _portal(make_user: Any, tenant: Any, role: str) -> Client:
    client = Client(HTTP_HOST="testserver")
    client.force_login(make_user(tenant=tenant, role=role))
    return client


def test_the_sign_in_page_offers_sso_by_email_or_tenant(db) -> None:
    page = Client().get("/accounts/login/")
    assert page.status_code == 200
    assert b'action="/sso/start"' in page.content
    assert b'name="email"' in page.content and b'name="tenant"' in page.content
    assert b'name="password"' in page.content


def test_an_admin_sets_up_sso_from_the_settings_page(tenant, make_user, keys) -> None:
    client = _portal(make_user, tenant, Role.ADMIN)
    assert b'href="/settings/"' in client.get("/").content
    assert client.get("/settings/").content.count(b'href="/sso/settings"') == 2  # sub-nav and card
    page = client.get("/sso/settings")
    assert page.status_code == 200
    assert f"/accounts/saml/{tenant.slug}/acs/".encode() in page.content
    idp = PysamlIdp("https://idp.example.test/metadata", "https://idp.example.test/sso", keys["idp"], [])
    response = client.post(
        "/sso/settings",
        {
            "preset": "okta",
            "idp_metadata_xml": idp.metadata_xml(),
            "email_domains": "example.test, corp.example.test",
            "group_roles": "s3av-ops=operator\ns3av-admins=admin\n",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    with scopes_disabled():
        connection = SamlConnection.objects.get(tenant=tenant)
        assert AuditEvent.objects.filter(tenant=tenant, action="sso.create").count() == 1
    assert connection.idp_entity_id == "https://idp.example.test/metadata"
    assert connection.group_attribute == "groups"
    assert connection.group_roles == {"s3av-ops": "operator", "s3av-admins": "admin"}
    with scopes_disabled():
        assert connection.email_domains() == ["corp.example.test", "example.test"]
    assert connection.allow_idp_initiated is False and connection.enabled is True


def test_the_settings_page_shows_errors_without_saving(tenant, make_user) -> None:
    client = _portal(make_user, tenant, Role.ADMIN)
    response = client.post("/sso/settings", {"preset": "custom", "idp_metadata_xml": "<nope/>"})
    assert response.status_code == 200
    assert b'<ul class="errors"><li><strong>idp_metadata_xml</strong>' in response.content
    with scopes_disabled():
        assert not SamlConnection.objects.filter(tenant=tenant).exists()


def test_the_settings_page_is_for_admins_only(tenant, make_user) -> None:
    for role in (Role.VIEWER, Role.OPERATOR):
        client = _portal(make_user, tenant, role)
        assert client.get("/sso/settings").status_code == 403
        assert client.post("/sso/settings", {"preset": "okta"}).status_code == 403
        assert client.post("/sso/settings/delete").status_code == 403
        assert b'href="/sso/settings"' not in client.get("/").content


def test_nul_characters_are_refused_not_a_server_error(tenant, make_user) -> None:
    assert Client().post("/sso/start", {"email": "a@b\x00.test"}).status_code == 400
    client = _portal(make_user, tenant, Role.ADMIN)
    response = client.post("/sso/settings", {"preset": "okta", "email_domains": "a.\x00test"})
    assert response.status_code == 200
    assert b"NUL characters are not allowed" in response.content


def test_support_staff_read_connections_and_get_no_allauth_admin(make_sso, make_user) -> None:
    make_sso()
    staff = Client()
    staff.force_login(make_user(is_staff=True, is_superuser=True))
    page = staff.get("/admin/sso/samlconnection/")
    assert page.status_code == 200 and b"https://idp.acme.test/metadata" in page.content
    assert staff.get("/admin/sso/samlconnection/add/").status_code == 403
    assert staff.get("/admin/socialaccount/socialaccount/").status_code == 404


def test_an_admin_requires_sso_from_the_settings_page(make_sso, make_user) -> None:
    """The last step of the set-up, from a browser: the portal has no API keys to PATCH the tenant with."""
    from accounts.models import Tenant

    sso = make_sso()
    client = _portal(make_user, sso.tenant, Role.ADMIN)
    assert b'name="sso_required"' in client.get("/sso/settings").content
    response = client.post("/sso/settings/require", {"sso_required": "on"})
    assert response.status_code == 302
    assert Tenant.objects.get(pk=sso.tenant.pk).sso_required is True
    with scopes_disabled():
        event = AuditEvent.objects.get(tenant=sso.tenant, action="tenant.update")
    assert event.details["after"] == {"sso_required": True}
    # Now a password session no longer reaches the tenant; an admin signed in through the IdP does.
    assert client.post("/sso/settings/require", {}).status_code == 403
    with scopes_disabled():
        make_user("root@acme.test", tenant=sso.tenant, role="admin")
    via_idp = sso.client()
    assert sso.sign_in(via_idp, "root@acme.test").status_code == 302
    assert via_idp.post("/sso/settings/require", {}).status_code == 302
    assert Tenant.objects.get(pk=sso.tenant.pk).sso_required is False


def test_sso_cannot_be_required_from_the_page_before_it_is_set_up(tenant, make_user) -> None:
    from accounts.models import Tenant

    client = _portal(make_user, tenant, Role.ADMIN)
    response = client.post("/sso/settings/require", {"sso_required": "on"}, follow=True)
    assert b"not configured for this tenant" in response.content
    assert Tenant.objects.get(pk=tenant.pk).sso_required is False
    for role in (Role.VIEWER, Role.OPERATOR):
        assert (
            _portal(make_user, tenant, role).post("/sso/settings/require", {"sso_required": "on"}).status_code
            == 403
        )


def test_saving_the_page_keeps_an_attribute_map_set_through_the_api(make_sso, make_user, key_client) -> None:
    sso = make_sso(preset="okta")
    custom = {"email": ["mail"], "first_name": ["given"]}
    assert (
        key_client(sso.tenant, Role.ADMIN)
        .put("/api/v1/sso", {"attribute_map": custom}, format="json")
        .status_code
        == 200
    )
    client = _portal(make_user, sso.tenant, Role.ADMIN)
    # The page as it comes, with one box ticked.
    form = {"preset": "okta", "email_domains": "acme.test", "group_attribute": "groups", "enabled": "on"}
    assert client.post("/sso/settings", {**form, "allow_idp_initiated": "on"}).status_code == 302
    with scopes_disabled():
        connection = SamlConnection.objects.get(tenant=sso.tenant)
    assert connection.allow_idp_initiated is True
    assert connection.attribute_map == custom
    # Choosing another preset is what brings that preset's map.
    assert client.post("/sso/settings", {**form, "preset": "entra", "group_attribute": ""}).status_code == 302
    with scopes_disabled():
        connection = SamlConnection.objects.get(tenant=sso.tenant)
    assert connection.preset == "entra" and "uid" in connection.attribute_map

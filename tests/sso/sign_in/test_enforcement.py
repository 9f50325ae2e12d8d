"""Requiring SSO: allowed once SSO is configured; then no password sign-in for members (staff aside)."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django_scopes import scopes_disabled

from accounts.models import AuditEvent, Role, User
from tests import factories

PASSWORD = "a-long-password-123"


def _member(tenant: Any, email: str, role: str = Role.VIEWER, **extra: Any) -> User:
    user = User.objects.create_user(email, password=PASSWORD, **extra)
    with scopes_disabled():
        factories.make_member(tenant, user, role)
    return user


def _password_sign_in(email: str) -> tuple[Client, Any]:
    client = Client(HTTP_HOST="testserver")
    return client, client.post("/accounts/login/", {"login": email, "password": PASSWORD})


def _events(tenant: Any, action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(tenant=tenant, action=action))


def test_sso_can_be_required_once_configured(make_sso, key_client) -> None:
    sso = make_sso()
    response = key_client(sso.tenant, Role.ADMIN).patch(
        "/api/v1/tenant", {"sso_required": True}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["sso_required"] is True


def test_sso_cannot_be_required_without_it(tenant, key_client) -> None:
    response = key_client(tenant, Role.ADMIN).patch("/api/v1/tenant", {"sso_required": True}, format="json")
    assert response.status_code == 400
    assert "sso_required" in response.json()


def test_a_password_sign_in_is_audited(make_sso) -> None:
    sso = make_sso()
    _member(sso.tenant, "pat@acme.test")
    client, response = _password_sign_in("pat@acme.test")
    assert response.status_code == 302
    assert client.get("/api/v1/me").status_code == 200
    assert [e.details["email"] for e in _events(sso.tenant, "auth.password_sign_in")] == ["pat@acme.test"]


def test_members_cannot_sign_in_with_a_password_when_sso_is_required(make_sso, key_client) -> None:
    sso = make_sso()
    _member(sso.tenant, "pat@acme.test")
    key_client(sso.tenant, Role.ADMIN).patch("/api/v1/tenant", {"sso_required": True}, format="json")
    client, response = _password_sign_in("pat@acme.test")
    assert response.status_code == 403
    assert b"requires its members to sign in with the organisation" in response.content
    assert client.get("/api/v1/me").status_code in (401, 403)
    assert len(_events(sso.tenant, "auth.password_refused")) == 1
    # SSO still signs them in.
    sso_client = sso.client()
    assert sso.sign_in(sso_client, "pat@acme.test").status_code == 302
    assert sso_client.get("/api/v1/me").json()["role"] == "viewer"


def test_support_staff_break_glass_is_audited(make_sso, key_client) -> None:
    sso = make_sso()
    _member(sso.tenant, "staff@s3av.test", Role.ADMIN, is_staff=True)
    key_client(sso.tenant, Role.ADMIN).patch("/api/v1/tenant", {"sso_required": True}, format="json")
    client, response = _password_sign_in("staff@s3av.test")
    assert response.status_code == 302
    assert client.get("/api/v1/me").json()["tenant"]["slug"] == sso.tenant.slug
    assert len(_events(sso.tenant, "auth.break_glass")) == 1


def test_a_password_session_from_before_loses_the_tenant(make_sso, key_client) -> None:
    sso = make_sso()
    _member(sso.tenant, "pat@acme.test")
    client, _ = _password_sign_in("pat@acme.test")
    assert client.get("/api/v1/me").json()["tenant"]["slug"] == sso.tenant.slug
    key_client(sso.tenant, Role.ADMIN).patch("/api/v1/tenant", {"sso_required": True}, format="json")
    assert client.get("/api/v1/me").json()["tenant"] is None


def test_api_keys_are_unaffected(make_sso, key_client) -> None:
    sso = make_sso()
    admin = key_client(sso.tenant, Role.ADMIN)
    admin.patch("/api/v1/tenant", {"sso_required": True}, format="json")
    assert key_client(sso.tenant, Role.VIEWER).get("/api/v1/results/").status_code == 200


def test_sso_cannot_be_removed_or_disabled_while_required(make_sso, key_client) -> None:
    sso = make_sso()
    admin = key_client(sso.tenant, Role.ADMIN)
    admin.patch("/api/v1/tenant", {"sso_required": True}, format="json")
    response = admin.delete("/api/v1/sso")
    assert response.status_code == 400
    assert "SSO required" in str(response.json())
    response = admin.put("/api/v1/sso", {"enabled": False}, format="json")
    assert response.status_code == 400
    assert admin.get("/api/v1/sso").json()["enabled"] is True


def test_the_admin_has_no_sign_in_of_its_own(make_sso, key_client) -> None:
    """Django's admin form would sign staff in past the break-glass audit: it sends them to ours."""
    sso = make_sso()
    _member(sso.tenant, "staff@s3av.test", Role.ADMIN, is_staff=True)
    key_client(sso.tenant, Role.ADMIN).patch("/api/v1/tenant", {"sso_required": True}, format="json")
    client = Client(HTTP_HOST="testserver")
    response = client.post("/admin/login/", {"username": "staff@s3av.test", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert client.get("/api/v1/me").status_code in (401, 403)
    client, response = _password_sign_in("staff@s3av.test")
    assert client.get("/admin/").status_code == 200
    assert len(_events(sso.tenant, "auth.break_glass")) == 1


def test_the_last_domain_cannot_be_removed_while_sso_is_required(make_sso, key_client) -> None:
    """With no domain claimed nobody signs in through the IdP, and nobody with a password either."""
    sso = make_sso()
    admin = key_client(sso.tenant, Role.ADMIN)
    admin.patch("/api/v1/tenant", {"sso_required": True}, format="json")
    response = admin.put("/api/v1/sso", {"email_domains": []}, format="json")
    assert response.status_code == 400
    assert "email_domains" in response.json()
    assert admin.get("/api/v1/sso").json()["email_domains"] == ["acme.test"]
    assert (
        admin.put("/api/v1/sso", {"email_domains": ["acme.test", "acme2.test"]}, format="json").status_code
        == 200
    )

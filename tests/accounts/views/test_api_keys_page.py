"""Settings → API keys: the secret is shown once, keys are listed and revoked; admins only."""

from __future__ import annotations

import re

import pytest
from django_scopes import scope, scopes_disabled

from accounts.models import ApiKey, AuditEvent, Role
from tests import factories

pytestmark = pytest.mark.django_db


def _key(tenant, name="ci"):
    with scope(tenant=tenant):
        key, _ = factories.make_api_key(tenant, Role.OPERATOR, name)
    return key


def test_the_secret_is_shown_once_and_works(tenant, session_client, client):
    admin = session_client(tenant, Role.ADMIN)
    response = admin.post("/settings/api-keys", {"name": "uploader", "role": "operator", "expires_at": ""})
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    body = response.content.decode()
    secret = re.search(r'<code id="new-secret">([^<]+)</code>', body).group(1)
    assert "only time the secret is shown" in body
    assert secret not in admin.get("/settings/api-keys").content.decode()
    me = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {secret}").json()
    assert me["role"] == "operator" and me["api_key"]["name"] == "uploader"
    with scopes_disabled():
        assert AuditEvent.objects.filter(tenant=tenant, action="api_key.create").count() == 1


def test_a_bad_key_form_is_an_error_next_to_the_field(tenant, session_client):
    admin = session_client(tenant, Role.ADMIN)
    past = admin.post("/settings/api-keys", {"name": "old", "role": "viewer", "expires_at": "2001-01-01"})
    assert past.status_code == 200 and "The expiry must be in the future." in past.content.decode()
    far = admin.post("/settings/api-keys", {"name": "far", "role": "viewer", "expires_at": "2999-01-01"})
    assert far.status_code == 200 and "at most 3650 days ahead" in far.content.decode()
    empty = admin.post("/settings/api-keys", {"name": "", "role": "root", "expires_at": "soon"})
    body = empty.content.decode()
    assert empty.status_code == 200
    assert (
        "This field is required." in body
        and "Select a valid choice" in body
        and "Enter a valid date." in body
    )
    with scopes_disabled():
        assert not ApiKey.objects.filter(tenant=tenant).exists()


def test_revoking_asks_first_and_then_the_key_stops_working(tenant, session_client, key_client):
    api = key_client(tenant, Role.VIEWER)
    key = api.api_key
    admin = session_client(tenant, Role.ADMIN)
    listing = admin.get("/settings/api-keys").content.decode()
    assert f"/settings/api-keys/{key.pk}/revoke" in listing and key.prefix in listing
    confirm = admin.get(f"/settings/api-keys/{key.pk}/revoke").content.decode()
    assert "refused from now on" in confirm
    assert api.get("/api/v1/me").status_code == 200
    done = admin.post(f"/settings/api-keys/{key.pk}/revoke", {"confirmed": "yes"}, follow=True)
    assert "Revoked the key" in done.content.decode()
    assert api.get("/api/v1/me").status_code == 401
    assert 'badge--neutral">Revoked' in admin.get("/settings/api-keys").content.decode()


def test_a_viewer_or_operator_cannot_see_create_or_revoke_keys(tenant, session_client):
    key = _key(tenant)
    for role in (Role.VIEWER, Role.OPERATOR):
        client = session_client(tenant, role)
        assert client.get("/settings/api-keys").status_code == 403
        assert client.post("/settings/api-keys", {"name": "x", "role": "admin"}).status_code == 403
        assert client.post(f"/settings/api-keys/{key.pk}/revoke", {"confirmed": "yes"}).status_code == 403
    with scopes_disabled():
        assert ApiKey.objects.filter(tenant=tenant).count() == 1
        assert ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_another_tenants_key_is_404(tenant, outsider_tenant, session_client):
    theirs = _key(outsider_tenant, "their-secret-pipeline")
    admin = session_client(tenant, Role.ADMIN)
    assert admin.get(f"/settings/api-keys/{theirs.pk}/revoke").status_code == 404
    assert admin.post(f"/settings/api-keys/{theirs.pk}/revoke", {"confirmed": "yes"}).status_code == 404
    assert "their-secret-pipeline" not in admin.get("/settings/api-keys").content.decode()
    with scopes_disabled():
        assert ApiKey.objects.get(pk=theirs.pk).revoked_at is None


def test_the_keys_page_costs_the_same_queries_for_many_keys(
    tenant, session_client, django_assert_max_num_queries
):
    admin = session_client(tenant, Role.ADMIN)
    _key(tenant)
    with django_assert_max_num_queries(12) as few:
        admin.get("/settings/api-keys")
    for n in range(15):
        _key(tenant, f"key {n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert admin.get("/settings/api-keys").content.decode().count("Revoke<span") == 16

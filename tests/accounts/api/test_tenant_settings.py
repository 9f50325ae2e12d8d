import pytest
from django_scopes import scope

from accounts.models import AuditEvent, Role

pytestmark = pytest.mark.django_db


def test_it_reads_the_tenant(tenant, key_client):
    body = key_client(tenant, Role.VIEWER).get("/api/v1/tenant").json()
    assert body["slug"] == tenant.slug
    assert body["allowed_cidrs"] == []


def test_it_updates_settings_and_audits(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    response = admin.patch("/api/v1/tenant", {"max_scan_bytes": 1024, "name": "Renamed"}, format="json")
    assert response.status_code == 200
    assert response.json()["max_scan_bytes"] == 1024
    tenant.refresh_from_db()
    assert tenant.name == "Renamed"
    with scope(tenant=tenant):
        assert AuditEvent.objects.filter(tenant=tenant, action="tenant.update").exists()


def test_it_ignores_a_tenant_id_in_the_body(tenant, outsider_tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    response = admin.patch(
        "/api/v1/tenant", {"id": str(outsider_tenant.pk), "slug": "stolen", "name": "Mine"}, format="json"
    )
    assert response.status_code == 200
    outsider_tenant.refresh_from_db()
    assert outsider_tenant.name == "Outsider Org"
    assert response.json()["id"] == str(tenant.pk)
    assert response.json()["slug"] == tenant.slug


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"allowed_cidrs": ["10.0.0.0/8", "not-a-range"]}, "allowed_cidrs"),
        ({"allowed_cidrs": "10.0.0.0/8"}, "allowed_cidrs"),
        ({"sso_required": "maybe"}, "sso_required"),
        ({"sso_required": True}, "sso_required"),
        ({"max_scan_bytes": -5}, "max_scan_bytes"),
        ({"name": ""}, "name"),
    ],
)
def test_it_rejects_bad_settings_with_field_errors(tenant, key_client, payload, field):
    response = key_client(tenant, Role.ADMIN).patch("/api/v1/tenant", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_it_refuses_ranges_that_lock_out_the_caller(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    response = admin.patch("/api/v1/tenant", {"allowed_cidrs": ["203.0.113.0/24"]}, format="json")
    assert response.status_code == 400
    assert "allowed_cidrs" in response.json()


def test_it_refuses_settings_changes_below_admin(tenant, key_client):
    response = key_client(tenant, Role.OPERATOR).patch("/api/v1/tenant", {"name": "x"}, format="json")
    assert response.status_code == 403


def test_it_answers_403_and_audits_outside_the_allowed_ranges(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    ok = admin.patch("/api/v1/tenant", {"allowed_cidrs": ["127.0.0.0/8"]}, format="json")
    assert ok.status_code == 200
    assert admin.get("/api/v1/me", REMOTE_ADDR="127.0.0.9").status_code == 200
    response = admin.get("/api/v1/me", REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 403
    with scope(tenant=tenant):
        denied = AuditEvent.objects.get(tenant=tenant, action="access.denied")
    assert denied.ip == "198.51.100.7"


def test_it_uses_the_forwarded_address_only_behind_trusted_proxies(tenant, key_client, settings):
    admin = key_client(tenant, Role.ADMIN)
    admin.patch("/api/v1/tenant", {"allowed_cidrs": ["127.0.0.0/8"]}, format="json")
    spoofed = admin.get("/api/v1/me", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert spoofed.status_code == 200  # no proxies trusted: the header is ignored
    settings.TRUSTED_PROXY_COUNT = 1
    response = admin.get("/api/v1/me", HTTP_X_FORWARDED_FOR="198.51.100.7", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 403

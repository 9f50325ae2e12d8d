"""Settings → Tenant and addresses, and Usage: validated fields, a warning before a self-lockout."""

from __future__ import annotations

import datetime

import pytest
from django_scopes import scope, scopes_disabled

from accounts.models import AuditEvent, Role, Tenant

pytestmark = pytest.mark.django_db


def _form(tenant, **changes):
    data = {
        "name": tenant.name,
        "allowed_cidrs": "\n".join(tenant.allowed_cidrs),
        "max_scan_bytes": "",
        "monthly_scan_bytes_limit": "",
    }
    data.update(changes)
    return data


def test_an_admin_saves_ranges_and_limits(tenant, session_client):
    admin = session_client(tenant, Role.ADMIN)
    response = admin.post(
        "/settings/tenant",
        _form(tenant, allowed_cidrs="127.0.0.0/8\n10.0.0.0/8, 2001:db8::/32", monthly_scan_bytes_limit="10G"),
        follow=True,
    )
    assert "Tenant settings saved." in response.content.decode()
    tenant.refresh_from_db()
    assert tenant.allowed_cidrs == ["127.0.0.0/8", "10.0.0.0/8", "2001:db8::/32"]
    assert tenant.monthly_scan_bytes_limit == 10 * 1024**3
    with scopes_disabled():
        event = AuditEvent.objects.get(tenant=tenant, action="tenant.update")
    assert set(event.details["after"]) == {"allowed_cidrs", "monthly_scan_bytes_limit"}
    assert 'value="10G"' in admin.get("/settings/tenant").content.decode()


def test_bad_values_are_errors_next_to_their_fields(tenant, session_client):
    admin = session_client(tenant, Role.ADMIN)
    response = admin.post(
        "/settings/tenant",
        _form(tenant, allowed_cidrs="10.0.0.0/8\nnot-a-range", max_scan_bytes="lots", name=""),
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "“not-a-range” is not a CIDR range" in body
    assert "“lots” is not a size" in body
    assert "This field is required." in body
    too_big = admin.post("/settings/tenant", _form(tenant, max_scan_bytes="6T"))
    assert too_big.status_code == 200 and "At most 5.0" in too_big.content.decode()
    sso = admin.post("/settings/tenant", _form(tenant, sso_required="on"))
    assert sso.status_code == 200
    assert "cannot be required yet" in sso.content.decode()
    tenant.refresh_from_db()
    assert tenant.allowed_cidrs == [] and tenant.sso_required is False


def test_ranges_that_leave_out_the_admin_warn_and_need_a_confirmation(tenant, session_client):
    admin = session_client(tenant, Role.ADMIN)
    warned = admin.post("/settings/tenant", _form(tenant, allowed_cidrs="203.0.113.0/24"))
    assert warned.status_code == 200
    body = warned.content.decode()
    assert "These ranges leave out your own address" in body and "127.0.0.1" in body
    assert 'name="lock_out_confirmed"' in body
    tenant.refresh_from_db()
    assert tenant.allowed_cidrs == []
    admin.post("/settings/tenant", _form(tenant, allowed_cidrs="203.0.113.0/24", lock_out_confirmed="yes"))
    tenant.refresh_from_db()
    assert tenant.allowed_cidrs == ["203.0.113.0/24"]
    with scopes_disabled():
        event = AuditEvent.objects.get(tenant=tenant, action="tenant.update")
    assert event.details["locked_out_actor_ip"] == "127.0.0.1"
    # As warned: this address is refused from now on.
    assert admin.get("/settings/tenant").status_code == 403


def test_the_api_still_refuses_a_self_lockout(tenant, session_client):
    admin = session_client(tenant, Role.ADMIN)
    response = admin.patch("/api/v1/tenant", {"allowed_cidrs": ["203.0.113.0/24"]}, format="json")
    assert response.status_code == 400


def test_only_admins_reach_the_tenant_and_usage_pages(tenant, session_client):
    for role in (Role.VIEWER, Role.OPERATOR):
        client = session_client(tenant, role)
        assert client.get("/settings/tenant").status_code == 403
        assert client.get("/settings/usage").status_code == 403
        assert client.post("/settings/tenant", _form(tenant, name="Taken over")).status_code == 403
    tenant.refresh_from_db()
    assert tenant.name == "Owner Org"


def test_saving_changes_only_the_admins_own_tenant(tenant, outsider_tenant, session_client):
    session_client(tenant, Role.ADMIN).post("/settings/tenant", _form(tenant, name="Renamed"))
    assert Tenant.objects.get(pk=tenant.pk).name == "Renamed"
    assert Tenant.objects.get(pk=outsider_tenant.pk).name == "Outsider Org"


def test_usage_shows_each_month_against_the_limit(tenant, outsider_tenant, session_client):
    from scanning.models import UsageMonth

    this_month = datetime.datetime.now(datetime.UTC).date().replace(day=1)
    with scope(tenant=tenant):
        UsageMonth.objects.create(
            tenant=tenant, month=this_month, objects_scanned=1234, bytes_scanned=3 * 1024**3
        )
        UsageMonth.objects.create(
            tenant=tenant, month=datetime.date(2025, 1, 1), objects_scanned=7, bytes_scanned=1024
        )
    with scope(tenant=outsider_tenant):
        UsageMonth.objects.create(
            tenant=outsider_tenant, month=datetime.date(2025, 2, 1), objects_scanned=99, bytes_scanned=1
        )
    tenant.monthly_scan_bytes_limit = 4 * 1024**3
    tenant.save()
    body = session_client(tenant, Role.ADMIN).get("/settings/usage").content.decode()
    assert "1,234" in body and "3.0\xa0GB" in body and "75% of the monthly limit" in body
    assert "2025-01" in body and "2025-02" not in body

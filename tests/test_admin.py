import pytest
from django_scopes import scope, scopes_disabled

from accounts.models import ApiKey, AuditEvent, Role, User

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    staff = User.objects.create_user(
        "support@example.com", "a-long-staff-password", is_staff=True, is_superuser=True
    )
    client.force_login(staff)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/accounts/tenant/",
        "/admin/accounts/membership/",
        "/admin/accounts/apikey/",
        "/admin/accounts/auditevent/",
        "/admin/accounts/user/",
        "/admin/scanning/scanresult/",
        "/admin/scanning/bucket/",
        "/admin/scanning/scanpolicy/",
        "/admin/scanning/scanjob/",
        "/admin/scanning/schedule/",
        "/admin/scanning/usagemonth/",
        "/admin/linked_accounts/awsaccount/",
    ],
)
def test_staff_see_every_admin_page(staff_client, tenant, outsider_tenant, url):
    response = staff_client.get(url)
    assert response.status_code == 200


def test_staff_see_tenants_across_the_deployment(staff_client, tenant, outsider_tenant):
    body = staff_client.get("/admin/accounts/tenant/").content.decode()
    assert tenant.name in body and outsider_tenant.name in body


def test_a_staff_change_is_audited(staff_client, tenant):
    response = staff_client.post(
        f"/admin/accounts/tenant/{tenant.pk}/change/",
        {
            "name": "Changed by support",
            "slug": tenant.slug,
            "status": "suspended",
            "allowed_cidrs": "[]",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    with scope(tenant=tenant):
        event = AuditEvent.objects.get(tenant=tenant, action="staff.change")
    assert event.actor_label == "staff:support@example.com"


def test_the_admin_never_shows_a_key_secret_or_hash(staff_client, tenant, key_client):
    client = key_client(tenant, Role.ADMIN)
    body = staff_client.get(f"/admin/accounts/apikey/{client.api_key.pk}/change/").content.decode()
    with scopes_disabled():
        key = ApiKey.objects.get(pk=client.api_key.pk)
    assert key.secret_hash not in body
    assert client._credentials["HTTP_AUTHORIZATION"].split()[1] not in body


def test_revoking_from_the_admin_is_audited(staff_client, tenant, key_client):
    client = key_client(tenant, Role.ADMIN)
    staff_client.post(
        "/admin/accounts/apikey/", {"action": "revoke_keys", "_selected_action": [str(client.api_key.pk)]}
    )
    assert client.get("/api/v1/me").status_code == 401
    with scope(tenant=tenant):
        assert AuditEvent.objects.filter(tenant=tenant, action="api_key.revoke").exists()


def test_a_non_staff_user_is_kept_out(client, tenant, make_user):
    client.force_login(make_user(tenant=tenant, role=Role.ADMIN))
    assert client.get("/admin/accounts/tenant/").status_code == 302

import pytest
from django_scopes import scope, scopes_disabled

from accounts.models import ApiKey, AuditEvent, Role
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, make_user):
    staff = make_user(
        "support@example.com", password="a-long-staff-password", is_staff=True, is_superuser=True
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
        "/admin/scanning/agent/",
        "/admin/scanning/signatureupdate/",
        "/admin/linked_accounts/awsaccount/",
    ],
)
def test_staff_see_every_admin_page(staff_client, tenant, outsider_tenant, url):
    response = staff_client.get(url)
    assert response.status_code == 200


def test_the_admin_sections_are_named_for_support_staff(staff_client):
    body = staff_client.get("/admin/").content.decode()
    for section in ("Tenants and people", "Linked AWS accounts", "Scanning", "Single sign-on"):
        assert f">{section}</a>" in body
    # One section per app of ours; allauth's email addresses and dramatiq's empty task list are gone.
    assert "Email addresses" not in body and ">Tasks<" not in body
    assert staff_client.get("/admin/django_dramatiq/task/").status_code == 404
    assert staff_client.get("/admin/account/emailaddress/").status_code == 404


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


# --- the admin validates every field as the API does ---------------------------------------------------


def _tenant_form(tenant, **changes):
    form = {
        "name": tenant.name,
        "slug": tenant.slug,
        "status": tenant.status,
        "allowed_cidrs": "",
        "max_scan_bytes": "",
        "monthly_scan_bytes_limit": "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def test_emptying_allowed_cidrs_in_the_admin_allows_any_address(staff_client, tenant):
    tenant.allowed_cidrs = ["10.0.0.0/8"]
    tenant.save()
    response = staff_client.post(f"/admin/accounts/tenant/{tenant.pk}/change/", _tenant_form(tenant))
    assert response.status_code == 302, response.content.decode()[:2000]
    tenant.refresh_from_db()
    assert tenant.allowed_cidrs == []


def test_staff_type_cidrs_one_a_line_or_comma_separated(staff_client, tenant):
    form = _tenant_form(tenant, allowed_cidrs="203.0.113.0/24\r\n198.51.100.7/32, 2001:db8::/32")
    response = staff_client.post(f"/admin/accounts/tenant/{tenant.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    tenant.refresh_from_db()
    assert tenant.allowed_cidrs == ["203.0.113.0/24", "198.51.100.7/32", "2001:db8::/32"]
    page = staff_client.get(f"/admin/accounts/tenant/{tenant.pk}/change/").content.decode()
    assert "203.0.113.0/24\n198.51.100.7/32" in page


@pytest.mark.parametrize(
    "changes",
    [
        {"allowed_cidrs": "not-a-range"},
        {"sso_required": "on"},
        {"max_scan_bytes": "0"},
        {"monthly_scan_bytes_limit": str(2**62)},
    ],
)
def test_the_admin_refuses_tenant_settings_the_api_refuses(staff_client, tenant, changes):
    response = staff_client.post(
        f"/admin/accounts/tenant/{tenant.pk}/change/", _tenant_form(tenant, **changes)
    )
    assert response.status_code == 200  # the form again, with its errors
    assert response.context["adminform"].form.errors
    fresh = type(tenant).objects.get(pk=tenant.pk)
    assert (fresh.allowed_cidrs, fresh.sso_required, fresh.max_scan_bytes) == ([], False, None)


def test_staff_cannot_type_an_accounts_role_arn_or_status(staff_client, tenant):
    from tests.factories import make_account

    with scope(tenant=tenant):
        account = make_account(tenant, account_id="123456789012", connected=False)
    staff_client.post(
        f"/admin/linked_accounts/awsaccount/{account.pk}/change/",
        {
            "name": "renamed",
            "role_arn": "arn:aws:iam::999999999999:role/elsewhere",
            "status": "connected",
        },
    )
    account.refresh_from_db()
    assert account.name == "renamed"
    assert (account.role_arn, account.status) == ("", "pending")


def test_the_admin_verify_action_runs_the_same_checks_as_the_api(staff_client, tenant):
    from linked_accounts.models import AwsAccount
    from tests.factories import make_account

    with scope(tenant=tenant):
        # A role in another account (set before these checks existed): verify must refuse it.
        account = make_account(
            tenant, account_id="123456789012", role_arn="arn:aws:iam::999999999999:role/elsewhere"
        )
    response = staff_client.post(
        "/admin/linked_accounts/awsaccount/",
        {"action": "verify_accounts", "_selected_action": [str(account.pk)]},
        follow=True,
    )
    assert "not to the linked account" in response.content.decode()
    account.refresh_from_db()
    assert account.status == AwsAccount.Status.CONNECTED  # unchanged: the refused ARN never saved


def _admin_form_data(obj, **changes):
    """What the admin's change form posts for ``obj``, with ``changes``."""
    import json

    from django.forms.models import model_to_dict

    data = {**model_to_dict(obj), **changes}
    for name, value in data.items():
        if isinstance(value, list | dict):
            data[name] = json.dumps(value)
        elif value is None:
            data[name] = ""
    return data


def test_staff_cannot_make_a_protected_bucket_a_quarantine_bucket(staff_client, tenant):
    # The API refuses it (s3av would scan and quarantine its own copies, over and over); so must the admin.
    from tests.factories import make_bucket_row

    with scope(tenant=tenant):
        protected = make_bucket_row(tenant, protected=True)
        policy = factories.make_policy(tenant, name="strict", quarantine_bucket="q-elsewhere")
    response = staff_client.post(
        f"/admin/scanning/scanpolicy/{policy.pk}/change/",
        _admin_form_data(policy, on_infected="quarantine", quarantine_bucket=protected.name),
    )
    assert response.status_code == 200  # the form again, with the error
    assert "protected bucket" in response.content.decode()
    policy.refresh_from_db()
    assert (policy.on_infected, policy.quarantine_bucket) == ("keep", "q-elsewhere")


def test_staff_cannot_attach_a_policy_to_its_own_quarantine_bucket(staff_client, tenant):
    from tests.factories import make_bucket_row

    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant)
        policy = factories.make_policy(
            tenant, name="strict", on_infected="quarantine", quarantine_bucket=bucket.name
        )
    response = staff_client.post(
        f"/admin/scanning/bucket/{bucket.pk}/change/", _admin_form_data(bucket, policy=str(policy.pk))
    )
    assert response.status_code == 200
    assert "itself" in response.content.decode()
    bucket.refresh_from_db()
    assert bucket.policy_id is None

import pytest
import yaml
from django_scopes import scope

from accounts.models import AuditEvent, Role
from linked_accounts import aws
from linked_accounts.models import AwsAccount, AwsOrganization
from scanning.buckets import protection
from scanning.models import Bucket
from tests.factories import MOTO_ACCOUNT, MOTO_ROLE, make_account, make_bucket_row

pytestmark = pytest.mark.django_db


def _account(tenant, **fields):
    with scope(tenant=tenant):
        return make_account(tenant, **fields)


def test_it_links_an_account(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    response = admin.post("/api/v1/accounts/", {"account_id": "111122223333", "name": "prod"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending" and body["account_id"] == "111122223333"
    assert body["external_id"].startswith("s3av-") and body["role_arn"] == ""
    assert admin.get(f"/api/v1/accounts/{body['id']}").json() == body


def test_it_rejects_a_bad_or_duplicate_account_id_with_a_field_error(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    assert admin.post("/api/v1/accounts/", {"account_id": "12"}, format="json").json()["account_id"]
    admin.post("/api/v1/accounts/", {"account_id": "111122223333"}, format="json")
    response = admin.post("/api/v1/accounts/", {"account_id": "111122223333"}, format="json")
    assert response.status_code == 400
    assert "already linked" in response.json()["account_id"][0]


def test_the_external_id_is_never_taken_from_the_request(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    body = admin.post(
        "/api/v1/accounts/", {"account_id": "111122223333", "external_id": "mine"}, format="json"
    ).json()
    assert body["external_id"] != "mine"
    response = admin.patch(
        f"/api/v1/accounts/{body['id']}", {"name": "x", "external_id": "mine"}, format="json"
    )
    assert response.status_code == 200 and response.json()["external_id"] == body["external_id"]
    assert response.json()["name"] == "x"


def test_it_verifies_and_discovers_on_the_local_endpoint(tenant, key_client, aws_endpoint, make_bucket):
    name = make_bucket()
    admin = key_client(tenant, Role.ADMIN)
    account = admin.post("/api/v1/accounts/", {"account_id": MOTO_ACCOUNT}, format="json").json()
    response = admin.post(f"/api/v1/accounts/{account['id']}/verify", {"role_arn": MOTO_ROLE}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "connected"
    operator = key_client(tenant, Role.OPERATOR)
    response = operator.post(f"/api/v1/accounts/{account['id']}/discover")
    assert response.status_code == 200 and response.json()["found"] >= 1
    names = [
        b["name"]
        for b in admin.get(f"/api/v1/buckets/?account={account['id']}&page_size=500").json()["results"]
    ]
    assert name in names


def test_a_refused_role_is_a_400_in_words(tenant, key_client, monkeypatch):
    def refuse(role_arn, external_id, session_name="s3av"):
        raise aws.AssumeRoleFailed(
            "s3av may not assume it: the role's trust policy does not trust s3av.", "AccessDenied"
        )

    monkeypatch.setattr(aws, "assume_role", refuse)
    admin = key_client(tenant, Role.ADMIN)
    account = _account(tenant, account_id="111122223333", connected=False)
    response = admin.post(
        f"/api/v1/accounts/{account.pk}/verify",
        {"role_arn": "arn:aws:iam::111122223333:role/x"},
        format="json",
    )
    assert response.status_code == 400
    assert "trust policy" in response.json()["role_arn"][0]
    shown = admin.get(f"/api/v1/accounts/{account.pk}").json()
    assert shown["status"] == "error" and "trust policy" in shown["last_error"]


def test_it_serves_the_templates(tenant, key_client, settings):
    settings.AWS_SERVICE_PRINCIPAL = "arn:aws:iam::000000000000:role/s3av-service"
    account = _account(tenant)
    viewer = key_client(tenant, Role.VIEWER)
    template = viewer.get(f"/api/v1/accounts/{account.pk}/template").json()
    trust = template["Resources"]["S3avRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"AWS": settings.AWS_SERVICE_PRINCIPAL}
    assert trust["Condition"]["StringEquals"]["sts:ExternalId"] == account.external_id
    # A StackSet puts one external id into every account: only an account linked under an organisation
    # gets one (its organisation's); an account linked on its own is told how (see test_organizations_api).
    assert viewer.get(f"/api/v1/accounts/{account.pk}/template?kind=stackset").status_code == 400
    with scope(tenant=tenant):
        organization = AwsOrganization.objects.create(tenant=tenant)
    member = _account(tenant, organization=organization)
    stackset = viewer.get(f"/api/v1/accounts/{member.pk}/template?kind=stackset").json()
    assert "S3avRoleStackSet" in stackset["Resources"]
    assert organization.external_id in stackset["Resources"]["S3avRoleStackSet"]["Properties"]["TemplateBody"]
    response = viewer.get(f"/api/v1/accounts/{account.pk}/template?syntax=yaml")
    assert response.status_code == 200 and response["Content-Type"] == "application/yaml"
    assert yaml.safe_load(response.content) == template
    assert viewer.get(f"/api/v1/accounts/{account.pk}/template?kind=nope").status_code == 400


def test_deleting_an_account_tears_it_down_and_reports(
    tenant, key_client, moto_account, make_bucket, s3_client
):
    name = make_bucket()
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, moto_account, name)
        protection.protect_bucket(tenant, _actor(), bucket)
    response = key_client(tenant, Role.ADMIN).delete(f"/api/v1/accounts/{moto_account.pk}")
    assert response.status_code == 200
    assert response.json()["not_removed"] == [] and len(response.json()["removed"]) == 3
    with scope(tenant=tenant):
        assert not AwsAccount.objects.filter(pk=moto_account.pk).exists()
        assert not Bucket.objects.filter(pk=bucket.pk).exists()
        assert AuditEvent.objects.filter(tenant=tenant, action="account.delete").exists()
    assert "QueueConfigurations" not in s3_client.get_bucket_notification_configuration(Bucket=name)


def _actor():
    from accounts.services import Actor

    return Actor.system("test")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("patch", "", {"name": "x"}),
        ("delete", "", None),
        ("get", "/template", None),
        ("post", "/verify", {"role_arn": "arn:aws:iam::111122223333:role/x"}),
        ("post", "/discover", None),
    ],
)
def test_another_tenant_gets_404(tenant, outsider_tenant, key_client, method, suffix, body):
    account = _account(tenant)
    outsider = key_client(outsider_tenant, Role.ADMIN)
    response = getattr(outsider, method)(f"/api/v1/accounts/{account.pk}{suffix}", body, format="json")
    assert response.status_code == 404
    assert str(account.pk) not in str(outsider.get("/api/v1/accounts/").json())


@pytest.mark.parametrize(
    ("role", "method", "suffix", "body"),
    [
        (Role.VIEWER, "post", "", {"account_id": "111122223333"}),
        (Role.OPERATOR, "post", "", {"account_id": "111122223333"}),
        (Role.VIEWER, "patch", "/{id}", {"name": "x"}),
        (Role.OPERATOR, "delete", "/{id}", None),
        (Role.OPERATOR, "post", "/{id}/verify", {"role_arn": "arn:aws:iam::111122223333:role/x"}),
        (Role.VIEWER, "post", "/{id}/discover", None),
    ],
)
def test_a_role_too_low_gets_403(tenant, key_client, role, method, suffix, body):
    account = _account(tenant)
    client = key_client(tenant, role)
    path = "/api/v1/accounts" + (suffix.replace("{id}", str(account.pk)) if suffix else "/")
    assert getattr(client, method)(path, body, format="json").status_code == 403


def test_the_account_list_costs_a_fixed_number_of_queries(tenant, key_client, django_assert_max_num_queries):
    for _ in range(5):
        _account(tenant)
    viewer = key_client(tenant, Role.VIEWER)
    with django_assert_max_num_queries(4):
        response = viewer.get("/api/v1/accounts/")
    assert len(response.json()["results"]) == 5

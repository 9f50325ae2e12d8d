"""Organisation links: one StackSet deployment, many accounts, each linked and verified as it is."""

import json

import pytest
from django_scopes import scope

from accounts.models import AuditEvent, Role
from linked_accounts import aws
from linked_accounts.models import AwsAccount, AwsOrganization
from tests.factories import make_account

pytestmark = pytest.mark.django_db

MEMBERS = ["111111111111", "222222222222", "333333333333"]


class FakeIam:
    """Roles deployed from templates, answering AssumeRole the way their trust policies would."""

    def __init__(self):
        self.trusted: dict[str, str] = {}
        self.calls: list[tuple[str, str | None]] = []

    def deploy_stackset(self, template, account_ids):
        member = json.loads(template["Resources"]["S3avRoleStackSet"]["Properties"]["TemplateBody"])
        for account_id in account_ids:
            self.deploy(member, account_id)

    def deploy(self, role_template, account_id):
        trust = role_template["Resources"]["S3avRole"]["Properties"]["AssumeRolePolicyDocument"]
        external_id = trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"]
        self.trusted[f"arn:aws:iam::{account_id}:role/s3av-scanner"] = external_id

    def assume_role(self, role_arn, external_id, session_name="s3av"):
        self.calls.append((role_arn, external_id))
        if role_arn not in self.trusted or external_id != self.trusted[role_arn]:
            raise aws.AssumeRoleFailed(aws.explain_assume_role_error(_denied(), role_arn), "AccessDenied")
        return {"AccessKeyId": "ASIAFAKE", "SecretAccessKey": "s", "SessionToken": "t"}


def _denied():
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")


@pytest.fixture
def iam(monkeypatch, settings):
    settings.AWS_REFUSE_ROLE_WITHOUT_EXTERNAL_ID = True  # the confused-deputy check stays on
    fake = FakeIam()
    monkeypatch.setattr(aws, "assume_role", fake.assume_role)
    aws._cache.clear()
    yield fake
    aws._cache.clear()


def _organization(client, name="acme"):
    response = client.post("/api/v1/organizations/", {"name": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_accounts_one_stackset_deployed_to_each_verify_without_editing_it(tenant, key_client, iam):
    admin = key_client(tenant, Role.ADMIN)
    organization = _organization(admin)
    assert organization["external_id"].startswith("s3av-")
    stackset = admin.get(f"/api/v1/organizations/{organization['id']}/template").json()
    iam.deploy_stackset(stackset, MEMBERS)  # one deployment reaches every account of the OUs

    for account_id in MEMBERS:
        body = {"account_id": account_id, "name": f"member {account_id}", "organization": organization["id"]}
        account = admin.post("/api/v1/accounts/", body, format="json").json()
        assert account["organization"] == organization["id"]
        assert account["external_id"] == organization["external_id"]
        response = admin.post(
            f"/api/v1/accounts/{account['id']}/verify",
            {"role_arn": f"arn:aws:iam::{account_id}:role/s3av-scanner"},
            format="json",
        )
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "connected"
        # The same StackSet is what the account's own template page offers.
        assert admin.get(f"/api/v1/accounts/{account['id']}/template?kind=stackset").json() == stackset

    # Verified with the shared id, and refused without it (the confused-deputy check ran).
    role = f"arn:aws:iam::{MEMBERS[0]}:role/s3av-scanner"
    assert (role, organization["external_id"]) in iam.calls and (role, None) in iam.calls
    shown = admin.get(f"/api/v1/organizations/{organization['id']}").json()
    assert len(shown["accounts"]) == len(MEMBERS)


def test_a_stackset_for_an_account_linked_on_its_own_is_refused_in_words(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    account = admin.post("/api/v1/accounts/", {"account_id": "444444444444"}, format="json").json()
    response = admin.get(f"/api/v1/accounts/{account['id']}/template?kind=stackset")
    assert response.status_code == 400
    assert "/api/v1/organizations/" in response.json()["kind"][0]
    assert admin.get(f"/api/v1/accounts/{account['id']}/template").status_code == 200


def test_organisations_and_accounts_never_share_an_external_id(tenant, outsider_tenant, key_client):
    admin, outsider = key_client(tenant, Role.ADMIN), key_client(outsider_tenant, Role.ADMIN)
    ids = {_organization(admin)["external_id"], _organization(admin)["external_id"]}
    ids.add(_organization(outsider)["external_id"])
    ids.add(
        admin.post("/api/v1/accounts/", {"account_id": "555555555555"}, format="json").json()["external_id"]
    )
    assert len(ids) == 4


def test_the_management_account_gets_the_same_role_as_one_stack(tenant, key_client, iam):
    admin = key_client(tenant, Role.ADMIN)
    organization = _organization(admin)
    single = admin.get(f"/api/v1/organizations/{organization['id']}/template?kind=account&syntax=yaml")
    assert single.status_code == 200 and single["Content-Type"] == "application/yaml"
    import yaml

    iam.deploy(yaml.safe_load(single.content), "999999999999")
    body = {"account_id": "999999999999", "organization": organization["id"]}
    account = admin.post("/api/v1/accounts/", body, format="json").json()
    response = admin.post(
        f"/api/v1/accounts/{account['id']}/verify",
        {"role_arn": "arn:aws:iam::999999999999:role/s3av-scanner"},
        format="json",
    )
    assert response.status_code == 200, response.content


def test_scanning_sessions_use_the_organisations_external_id(tenant, iam):
    with scope(tenant=tenant):
        organization = AwsOrganization.objects.create(tenant=tenant, name="acme")
        account = make_account(tenant, MEMBERS[0], organization=organization)
    iam.trusted[account.role_arn] = organization.external_id
    aws.credentials_for(account)
    assert iam.calls == [(account.role_arn, organization.external_id)]


def test_linking_under_another_tenants_or_a_missing_organisation_is_a_field_error(
    tenant, outsider_tenant, key_client
):
    theirs = _organization(key_client(outsider_tenant, Role.ADMIN))
    admin = key_client(tenant, Role.ADMIN)
    for organization in [theirs["id"], "00000000-0000-0000-0000-000000000000", "nope"]:
        body = {"account_id": "666666666666", "organization": organization}
        response = admin.post("/api/v1/accounts/", body, format="json")
        assert response.status_code == 400 and response.json()["organization"], organization
    with scope(tenant=tenant):
        assert not AwsAccount.objects.filter(tenant=tenant).exists()


def test_an_organisation_with_linked_accounts_is_not_deleted(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    organization = _organization(admin)
    body = {"account_id": "777777777777", "organization": organization["id"]}
    account = admin.post("/api/v1/accounts/", body, format="json").json()
    response = admin.delete(f"/api/v1/organizations/{organization['id']}")
    assert response.status_code == 400 and "delete them first" in response.json()["non_field_errors"][0]
    assert admin.delete(f"/api/v1/accounts/{account['id']}").status_code == 200
    assert admin.delete(f"/api/v1/organizations/{organization['id']}").status_code == 204
    assert admin.get(f"/api/v1/organizations/{organization['id']}").status_code == 404
    with scope(tenant=tenant):
        actions = set(AuditEvent.objects.filter(tenant=tenant).values_list("action", flat=True))
    assert {"organization.create", "organization.delete"} <= actions


def test_it_renames_an_organisation_and_audits_it(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    organization = _organization(admin)
    response = admin.patch(
        f"/api/v1/organizations/{organization['id']}",
        {"name": "acme prod", "external_id": "x"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["name"] == "acme prod"
    assert response.json()["external_id"] == organization["external_id"]
    too_long = admin.patch(f"/api/v1/organizations/{organization['id']}", {"name": "x" * 201}, format="json")
    assert too_long.status_code == 400 and too_long.json()["name"]
    with scope(tenant=tenant):
        assert AuditEvent.objects.filter(tenant=tenant, action="organization.update").count() == 1


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("get", "", None), ("patch", "", {"name": "x"}), ("delete", "", None), ("get", "/template", None)],
)
def test_another_tenant_gets_404(tenant, outsider_tenant, key_client, method, suffix, body):
    organization = _organization(key_client(tenant, Role.ADMIN))
    outsider = key_client(outsider_tenant, Role.ADMIN)
    path = f"/api/v1/organizations/{organization['id']}{suffix}"
    assert getattr(outsider, method)(path, body, format="json").status_code == 404
    assert outsider.get("/api/v1/organizations/").json()["results"] == []


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_a_role_too_low_gets_403_on_writes(tenant, key_client, role):
    organization = _organization(key_client(tenant, Role.ADMIN))
    client = key_client(tenant, role)
    path = f"/api/v1/organizations/{organization['id']}"
    assert client.post("/api/v1/organizations/", {"name": "x"}, format="json").status_code == 403
    assert client.patch(path, {"name": "x"}, format="json").status_code == 403
    assert client.delete(path).status_code == 403
    assert client.get(path).status_code == 200 and client.get(f"{path}/template").status_code == 200


def test_the_organisation_list_costs_a_fixed_number_of_queries(
    tenant, key_client, django_assert_max_num_queries
):
    admin = key_client(tenant, Role.ADMIN)
    for n in range(3):
        organization = _organization(admin, f"org {n}")
        for m in range(2):
            body = {"account_id": f"{n}{m}0000000000", "organization": organization["id"]}
            admin.post("/api/v1/accounts/", body, format="json")
    viewer = key_client(tenant, Role.VIEWER)
    with django_assert_max_num_queries(5):
        response = viewer.get("/api/v1/organizations/")
    assert [len(o["accounts"]) for o in response.json()["results"]] == [2, 2, 2]
    with django_assert_max_num_queries(4):
        assert len(viewer.get("/api/v1/accounts/").json()["results"]) == 6

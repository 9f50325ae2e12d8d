"""The linked-accounts pages: the wizard (account id, external id, templates, verify, discover), an
account's page, removal with its tear-down report; roles, outsiders and bad input."""

from __future__ import annotations

import json

import pytest
import yaml
from django_scopes import scope

from accounts.models import AuditEvent, Role
from linked_accounts.models import AwsAccount, AwsOrganization
from scanning.buckets import protection
from scanning.models import Bucket
from tests.factories import MOTO_ACCOUNT, MOTO_ROLE, make_account, make_bucket_row
from tests.fixtures.linked_accounts import sts_credentials

pytestmark = pytest.mark.django_db

ROLE = "arn:aws:iam::111122223333:role/s3av-scanner"


def _account(tenant, **fields):
    with scope(tenant=tenant):
        return make_account(tenant, **fields)


def _body(response) -> str:
    return response.content.decode()


# --- the wizard ----------------------------------------------------------------------------------------


def test_it_links_an_account_and_shows_its_external_id_and_the_template(tenant, session_client):
    client = session_client(tenant, Role.ADMIN)
    response = client.post(
        "/linked-accounts/new", {"account_id": " 111122223333 ", "name": "prod", "deploy": "stack"}
    )
    with scope(tenant=tenant):
        account = AwsAccount.objects.get(tenant=tenant)
    assert response.status_code == 302
    assert response["Location"] == f"/linked-accounts/{account.pk}/"
    assert account.account_id == "111122223333" and account.name == "prod"
    page = _body(client.get(response["Location"]))
    assert account.external_id in page
    assert f"/linked-accounts/{account.pk}/template/account.yaml" in page
    assert "StackSet template" not in page  # linked on its own: a stack, not a StackSet
    assert 'name="role_arn"' in page

    download = client.get(f"/linked-accounts/{account.pk}/template/account.yaml")
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="s3av-111122223333-account.yaml"'
    template = yaml.safe_load(download.content)
    trust = template["Resources"]["S3avRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": account.external_id}}
    as_json = client.get(f"/linked-accounts/{account.pk}/template/account.json")
    assert json.loads(as_json.content) == template


def test_a_stackset_link_makes_an_organisation_whose_stackset_carries_its_external_id(tenant, session_client):
    client = session_client(tenant, Role.ADMIN)
    response = client.post(
        "/linked-accounts/new",
        {
            "account_id": "111122223333",
            "deploy": "stackset",
            "organization": "new",
            "organization_name": "Acme org",
        },
    )
    assert response.status_code == 302
    with scope(tenant=tenant):
        organization = AwsOrganization.objects.get(tenant=tenant)
        account = AwsAccount.objects.get(tenant=tenant)
    assert organization.name == "Acme org" and account.organization_id == organization.pk
    page = _body(client.get(response["Location"]))
    assert organization.external_id in page and account.external_id not in page
    stackset = client.get(f"/linked-accounts/{account.pk}/template/stackset.yaml")
    assert "AWS::CloudFormation::StackSet" in stackset.content.decode()
    assert organization.external_id in stackset.content.decode()

    # A second account of the same organisation shares its external id.
    client.post(
        "/linked-accounts/new",
        {"account_id": "444455556666", "deploy": "stackset", "organization": str(organization.pk)},
    )
    with scope(tenant=tenant):
        second = AwsAccount.objects.get(tenant=tenant, account_id="444455556666")
        assert second.role_external_id == organization.external_id


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"account_id": "1234", "deploy": "stack"}, "account_id", "An AWS account id is 12 digits."),
        ({"account_id": "", "deploy": "stack"}, "account_id", "This field is required."),
        ({"account_id": "111122223333", "deploy": "stackset"}, "organization", "Choose the organisation"),
        ({"account_id": "111122223333", "deploy": "elsewhere"}, "deploy", "Select a valid choice"),
        (
            {"account_id": "1111\x0022223333", "deploy": "stack"},
            "account_id",
            "Null characters are not allowed.",
        ),
    ],
)
def test_bad_input_on_the_wizard_is_answered_next_to_the_field(
    tenant, session_client, fields, field, message
):
    response = session_client(tenant, Role.ADMIN).post("/linked-accounts/new", fields)
    assert response.status_code == 200
    form = response.context["form"]
    assert any(message in error for error in form.errors[field])
    assert message.replace("'", "&#x27;") in _body(response)
    with scope(tenant=tenant):
        assert not AwsAccount.objects.filter(tenant=tenant).exists()


def test_linking_an_account_twice_says_it_is_linked_already(tenant, session_client):
    _account(tenant, account_id="111122223333")
    response = session_client(tenant, Role.ADMIN).post(
        "/linked-accounts/new", {"account_id": "111122223333", "deploy": "stack"}
    )
    assert response.status_code == 200
    assert "Account 111122223333 is already linked." in response.context["form"].errors["account_id"]


def test_the_stackset_of_an_account_linked_on_its_own_is_not_offered(tenant, session_client):
    account = _account(tenant, connected=False)
    client = session_client(tenant, Role.VIEWER)
    assert client.get(f"/linked-accounts/{account.pk}/template/stackset.yaml").status_code == 404
    assert client.get(f"/linked-accounts/{account.pk}/template/account.xml").status_code == 404
    assert client.get(f"/linked-accounts/{account.pk}/template/account.json").status_code == 200


# --- verify ------------------------------------------------------------------------------------------


def test_it_verifies_the_role_on_the_local_sts(tenant, session_client, aws_endpoint):
    account = _account(tenant, account_id=MOTO_ACCOUNT, connected=False)
    client = session_client(tenant, Role.ADMIN)
    response = client.post(f"/linked-accounts/{account.pk}/verify", {"role_arn": MOTO_ROLE})
    assert response.status_code == 302
    assert response["Location"] == f"/linked-accounts/{account.pk}/#discover"
    account.refresh_from_db()
    assert account.status == AwsAccount.Status.CONNECTED and account.role_arn == MOTO_ROLE
    page = _body(client.get(response["Location"]))
    assert "The role works. Next: discover the account&#x27;s buckets." in page
    assert "Discover buckets</button>" in page


def test_a_refused_role_is_explained_in_words(tenant, session_client, stubbed_sts, settings):
    account = _account(tenant, account_id="111122223333", connected=False)
    stubbed_sts.add_client_error(
        "assume_role",
        service_error_code="AccessDenied",
        service_message="not authorized",
        http_status_code=403,
    )
    response = session_client(tenant, Role.ADMIN).post(
        f"/linked-accounts/{account.pk}/verify", {"role_arn": ROLE}
    )
    assert response.status_code == 200
    page = _body(response)
    assert "AWS would not let s3av assume this role." in page
    assert "The role may not exist (yet)" in page
    assert settings.AWS_SERVICE_PRINCIPAL in page  # what the trust policy must name
    assert f"it must be {account.external_id}" in page  # and the external id it must require
    account.refresh_from_db()
    assert account.status == AwsAccount.Status.ERROR and account.last_error


def test_a_role_that_works_without_the_external_id_is_refused_with_the_reason(
    tenant, session_client, stubbed_sts
):
    account = _account(tenant, account_id="111122223333", connected=False)
    for _ in range(2):  # with the external id, then without: both work, so the role trusts anyone
        stubbed_sts.add_response("assume_role", {"Credentials": sts_credentials()})
    response = session_client(tenant, Role.ADMIN).post(
        f"/linked-accounts/{account.pk}/verify", {"role_arn": ROLE}
    )
    assert response.status_code == 200
    page = _body(response)
    assert "The role works without the external id, so s3av refuses it." in page
    assert "confused deputy" in page


@pytest.mark.parametrize(
    ("role_arn", "message"),
    [
        ("arn:aws:iam::999988887777:role/s3av-scanner", "belongs to account 999988887777"),
        ("arn:aws:s3:::a-bucket", "That is not an IAM role ARN"),
        ("", "This field is required."),
    ],
)
def test_a_role_arn_that_cannot_be_right_is_refused_next_to_the_field(
    tenant, session_client, role_arn, message
):
    account = _account(tenant, account_id="111122223333", connected=False)
    response = session_client(tenant, Role.ADMIN).post(
        f"/linked-accounts/{account.pk}/verify", {"role_arn": role_arn}
    )
    assert response.status_code == 200
    assert any(message in error for error in response.context["verify_form"].errors["role_arn"])
    account.refresh_from_db()
    assert account.status == AwsAccount.Status.PENDING  # nothing was tried


# --- discover and the account's buckets --------------------------------------------------------------


def test_an_operator_discovers_the_accounts_buckets(tenant, session_client, moto_account, make_bucket):
    name = make_bucket(versioned=True)
    client = session_client(tenant, Role.OPERATOR)
    response = client.post(f"/linked-accounts/{moto_account.pk}/discover")
    assert response.status_code == 302
    page = _body(client.get(response["Location"]))
    assert "Found " in page and " new" in page
    assert name in page
    with scope(tenant=tenant):
        bucket = Bucket.objects.get(tenant=tenant, name=name)
    assert bucket.versioning == "Enabled"
    assert f"/buckets/{bucket.pk}/" in page


def test_discovering_before_the_role_is_verified_says_what_to_do(tenant, session_client):
    account = _account(tenant, connected=False)
    client = session_client(tenant, Role.ADMIN)
    response = client.post(f"/linked-accounts/{account.pk}/discover", follow=True)
    assert "Verify the account&#x27;s role before discovering its buckets." in _body(response)


def test_the_list_shows_status_bucket_counts_and_the_last_error(tenant, session_client):
    ok = _account(tenant, name="prod")
    broken = _account(tenant, name="dev", status=AwsAccount.Status.ERROR, last_error="The role is gone.")
    with scope(tenant=tenant):
        make_bucket_row(tenant, ok, protected=True)
        make_bucket_row(tenant, ok)
    page = _body(session_client(tenant, Role.VIEWER).get("/linked-accounts/"))
    assert "prod" in page and "dev" in page and "The role is gone." in page
    assert "Connected" in page and "Error" in page
    assert f"/linked-accounts/{broken.pk}/" in page


def test_the_list_costs_the_same_queries_for_one_account_or_many(
    tenant, session_client, django_assert_num_queries
):
    client = session_client(tenant, Role.ADMIN)
    first = _account(tenant)
    with scope(tenant=tenant):
        make_bucket_row(tenant, first)
    client.get("/linked-accounts/")  # session and membership lookups warm
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        client.get("/linked-accounts/")
    for _ in range(15):
        account = _account(tenant)
        with scope(tenant=tenant):
            make_bucket_row(tenant, account, protected=True)
    with django_assert_num_queries(len(one)):
        response = client.get("/linked-accounts/")
    assert len(response.context["accounts"]) == 16


# --- removal -----------------------------------------------------------------------------------------


def test_removing_an_account_tears_it_down_and_shows_the_report(
    tenant, session_client, moto_account, make_bucket
):
    name = make_bucket()
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, moto_account, name=name)
        protection.protect_bucket(tenant, aws_actor(), bucket, scan_existing=False)
    client = session_client(tenant, Role.ADMIN)
    confirm = _body(client.get(f"/linked-accounts/{moto_account.pk}/remove"))
    assert f"Remove account {MOTO_ACCOUNT}?" in confirm
    assert name in confirm and "deletes its queues" in confirm
    response = client.post(f"/linked-accounts/{moto_account.pk}/remove")
    assert response.status_code == 200
    page = _body(response)
    assert "Tear-down report" in page
    assert f"event notification s3av-{bucket.pk} on s3://{name}" in page
    assert f"s3av-{bucket.pk.hex}" in page  # its queue
    with scope(tenant=tenant):
        assert not AwsAccount.objects.filter(pk=moto_account.pk).exists()
        assert AuditEvent.objects.filter(tenant=tenant, action="account.delete").exists()


def aws_actor():
    from accounts.services import Actor

    return Actor.system("test")


# --- roles and outsiders -----------------------------------------------------------------------------


def test_a_viewer_sees_no_forms_or_buttons(tenant, session_client):
    account = _account(tenant)
    client = session_client(tenant, Role.VIEWER)
    listing = _body(client.get("/linked-accounts/"))
    assert "Link an account" not in listing
    page = _body(client.get(f"/linked-accounts/{account.pk}/"))
    assert "<form" not in page.split("<main", 1)[1]
    assert "Remove this account" not in page and "Discover buckets</button>" not in page
    assert account.external_id in page  # reading is allowed


@pytest.mark.parametrize(
    ("role", "path", "allowed"),
    [
        (Role.VIEWER, "new", False),
        (Role.OPERATOR, "new", False),
        (Role.VIEWER, "{id}/verify", False),
        (Role.OPERATOR, "{id}/verify", False),
        (Role.VIEWER, "{id}/discover", False),
        (Role.OPERATOR, "{id}/discover", True),
        (Role.VIEWER, "{id}/rename", False),
        (Role.OPERATOR, "{id}/remove", False),
    ],
)
def test_writes_need_the_apis_roles(tenant, session_client, role, path, allowed):
    account = _account(tenant, connected=False)
    url = "/linked-accounts/" + path.format(id=account.pk)
    response = session_client(tenant, role).post(url, {"account_id": "111122223333", "role_arn": ROLE})
    assert (response.status_code != 403) is allowed
    with scope(tenant=tenant):
        assert AwsAccount.objects.filter(tenant=tenant).count() == 1
    account.refresh_from_db()
    assert account.role_arn == ""


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "{id}/"),
        ("get", "{id}/template/account.yaml"),
        ("post", "{id}/verify"),
        ("post", "{id}/discover"),
        ("post", "{id}/rename"),
        ("get", "{id}/remove"),
        ("post", "{id}/remove"),
    ],
)
def test_another_tenants_account_is_not_found(tenant, outsider_tenant, session_client, method, path):
    theirs = _account(outsider_tenant)
    client = session_client(tenant, Role.ADMIN)
    response = getattr(client, method)("/linked-accounts/" + path.format(id=theirs.pk), {"role_arn": ROLE})
    assert response.status_code == 404
    assert theirs.account_id not in _body(response)
    with scope(tenant=outsider_tenant):
        assert AwsAccount.objects.filter(pk=theirs.pk).exists()


def test_the_pages_need_a_role_and_a_sign_in(tenant, client, session_client):
    assert session_client(tenant, Role.NONE).get("/linked-accounts/").status_code == 403
    response = client.get("/linked-accounts/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- organisations -----------------------------------------------------------------------------------


def _organization(tenant, name="Acme org"):
    from accounts.services import Actor
    from linked_accounts import services

    with scope(tenant=tenant):
        return services.create_organization(tenant, Actor.system("test"), name)


def test_the_list_offers_each_organisations_stackset_with_its_external_id(tenant, session_client):
    organization = _organization(tenant)
    client = session_client(tenant, Role.VIEWER)
    page = _body(client.get("/linked-accounts/"))
    assert "Acme org" in page and organization.external_id in page
    stackset = client.get(f"/linked-accounts/organizations/{organization.pk}/template/stackset.yaml")
    assert stackset.status_code == 200
    body = yaml.safe_load(stackset.content)
    member = json.loads(body["Resources"]["S3avRoleStackSet"]["Properties"]["TemplateBody"])
    trust = member["Resources"]["S3avRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Condition"]["StringEquals"]["sts:ExternalId"] == organization.external_id
    single = client.get(f"/linked-accounts/organizations/{organization.pk}/template/account.json")
    assert organization.external_id in single.content.decode()


def test_an_organisation_is_deleted_only_without_linked_accounts(tenant, session_client):
    organization = _organization(tenant)
    with scope(tenant=tenant):
        account = make_account(tenant, organization=organization)
    client = session_client(tenant, Role.ADMIN)
    assert "Delete organisation Acme org?" in _body(
        client.get(f"/linked-accounts/organizations/{organization.pk}/delete")
    )
    refused = client.post(f"/linked-accounts/organizations/{organization.pk}/delete", follow=True)
    assert "1 linked account(s) use this organisation&#x27;s external id; delete them first" in _body(refused)
    with scope(tenant=tenant):
        account.delete()
    client.post(f"/linked-accounts/organizations/{organization.pk}/delete")
    with scope(tenant=tenant):
        assert not AwsOrganization.objects.filter(pk=organization.pk).exists()


def test_organisations_keep_to_their_tenant_and_to_admins(tenant, outsider_tenant, session_client):
    theirs = _organization(outsider_tenant, "Their org")
    mine = _organization(tenant)
    admin = session_client(tenant, Role.ADMIN)
    assert admin.get(f"/linked-accounts/organizations/{theirs.pk}/template/stackset.yaml").status_code == 404
    assert admin.post(f"/linked-accounts/organizations/{theirs.pk}/delete").status_code == 404
    assert "Their org" not in _body(admin.get("/linked-accounts/"))
    operator = session_client(tenant, Role.OPERATOR)
    assert operator.post(f"/linked-accounts/organizations/{mine.pk}/delete").status_code == 403
    with scope(tenant=outsider_tenant):
        assert AwsOrganization.objects.filter(pk=theirs.pk).exists()
    with scope(tenant=tenant):
        assert AwsOrganization.objects.filter(pk=mine.pk).exists()

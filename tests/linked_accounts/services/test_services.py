from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import ANY
from django_scopes import scope

from accounts.models import AuditEvent
from accounts.services import Actor, ServiceError
from linked_accounts import aws, services
from linked_accounts.models import AwsAccount
from scanning.buckets import discovery
from scanning.models import Bucket
from tests.factories import MOTO_ACCOUNT, MOTO_ROLE, make_account
from tests.fixtures.linked_accounts import sts_credentials

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")
ROLE = "arn:aws:iam::111122223333:role/s3av-scanner"


def _ok(stubber, external_id):
    expected = {"RoleArn": ROLE, "RoleSessionName": ANY, "DurationSeconds": 3600}
    if external_id:
        expected["ExternalId"] = external_id
    stubber.add_response("assume_role", {"Credentials": sts_credentials()}, expected)


def _denied(stubber):
    stubber.add_client_error(
        "assume_role",
        service_error_code="AccessDenied",
        service_message="not authorized",
        http_status_code=403,
    )


def test_it_links_an_account_with_a_generated_external_id(tenant):
    with scope(tenant=tenant):
        account = services.link_account(tenant, ACTOR, "111122223333", "prod")
        assert account.status == AwsAccount.Status.PENDING
        assert account.external_id.startswith("s3av-") and len(account.external_id) > 20
        assert AuditEvent.objects.filter(tenant=tenant, action="account.link").count() == 1
        with pytest.raises(ServiceError, match="already linked"):
            services.link_account(tenant, ACTOR, "111122223333")
        with pytest.raises(ServiceError, match="12 digits"):
            services.link_account(tenant, ACTOR, "1234")


def test_it_refuses_a_role_that_works_without_the_external_id(tenant, stubbed_sts):
    with scope(tenant=tenant):
        account = make_account(tenant, "111122223333", connected=False)
        _ok(stubbed_sts, account.external_id)
        _ok(stubbed_sts, None)  # the confused deputy: the role trusts us without the external id
        with pytest.raises(ServiceError, match="without the external id"):
            services.verify_account(tenant, ACTOR, account, ROLE)
        account.refresh_from_db()
        assert account.status == AwsAccount.Status.ERROR
        assert "sts:ExternalId" in account.last_error
        assert account.role_arn == ROLE


def test_it_accepts_a_role_that_requires_the_external_id(tenant, stubbed_sts):
    with scope(tenant=tenant):
        account = make_account(tenant, "111122223333", connected=False)
        _ok(stubbed_sts, account.external_id)
        _denied(stubbed_sts)
        services.verify_account(tenant, ACTOR, account, ROLE)
        account.refresh_from_db()
        assert account.status == AwsAccount.Status.CONNECTED
        assert account.last_error == ""
        assert account.last_checked_at is not None


def test_the_refusal_check_can_be_turned_off_for_endpoints_without_iam(tenant, stubbed_sts, settings):
    settings.AWS_REFUSE_ROLE_WITHOUT_EXTERNAL_ID = False
    with scope(tenant=tenant):
        account = make_account(tenant, "111122223333", connected=False)
        _ok(stubbed_sts, account.external_id)  # and no second call
        services.verify_account(tenant, ACTOR, account, ROLE)
        assert account.status == AwsAccount.Status.CONNECTED


def test_it_explains_a_trust_policy_mismatch_in_words(tenant, stubbed_sts):
    with scope(tenant=tenant):
        account = make_account(tenant, "111122223333", connected=False)
        _denied(stubbed_sts)
        with pytest.raises(ServiceError) as caught:
            services.verify_account(tenant, ACTOR, account, ROLE)
        assert "trust policy" in caught.value.message
        assert "Traceback" not in caught.value.message and "botocore" not in caught.value.message
        account.refresh_from_db()
        assert account.status == AwsAccount.Status.ERROR
        assert account.last_error == caught.value.message


def test_it_refuses_a_role_of_another_account_before_calling_aws(tenant, stubbed_sts):
    with scope(tenant=tenant):
        account = make_account(tenant, "999988887777", connected=False)
        with pytest.raises(ServiceError, match="belongs to account 111122223333") as caught:
            services.verify_account(tenant, ACTOR, account, ROLE)
        assert caught.value.field == "role_arn"
        with pytest.raises(ServiceError, match="not an IAM role ARN"):
            services.verify_account(tenant, ACTOR, account, "arn:aws:s3:::bucket")


def test_it_verifies_against_the_local_endpoint(tenant, aws_endpoint):
    with scope(tenant=tenant):
        account = services.link_account(tenant, ACTOR, MOTO_ACCOUNT)
        services.verify_account(tenant, ACTOR, account, MOTO_ROLE)
        assert account.status == AwsAccount.Status.CONNECTED


def test_it_caches_credentials_until_shortly_before_they_expire(tenant, monkeypatch):
    calls = []

    def fake_assume(role_arn, external_id, session_name="s3av"):
        calls.append(external_id)
        creds = sts_credentials()
        creds["Expiration"] = datetime.now(UTC) + timedelta(seconds=aws.REFRESH_MARGIN_SECONDS + 60)
        return creds

    monkeypatch.setattr(aws, "assume_role", fake_assume)
    with scope(tenant=tenant):
        account = make_account(tenant, "111122223333")
    aws.forget_credentials(account)
    aws.credentials_for(account)
    aws.credentials_for(account)
    assert len(calls) == 1
    monkeypatch.setattr(aws.time, "time", lambda: datetime.now(UTC).timestamp() + 120)
    aws.credentials_for(account)
    assert len(calls) == 2  # inside the refresh margin: assumed again
    assert calls == [account.external_id, account.external_id]
    aws.forget_credentials(account)


def test_it_discovers_buckets_and_marks_missing_ones(tenant, moto_account, s3_client, make_bucket):
    plain = make_bucket()
    versioned = make_bucket(versioned=True)
    encrypted = make_bucket()
    s3_client.put_bucket_encryption(
        Bucket=encrypted,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    with scope(tenant=tenant):
        summary = discovery.discover_buckets(tenant, ACTOR, moto_account)
        assert summary["found"] >= 3
        rows = {
            b.name: b for b in Bucket.objects.filter(tenant=tenant, name__in=[plain, versioned, encrypted])
        }
        assert set(rows) == {plain, versioned, encrypted}
        assert rows[versioned].versioning == "Enabled"
        assert rows[plain].versioning == ""
        assert rows[encrypted].encryption == "AES256"
        assert rows[plain].region == "us-east-1"
        assert all(b.missing_since is None for b in rows.values())

        s3_client.delete_bucket(Bucket=plain)
        summary = discovery.discover_buckets(tenant, ACTOR, moto_account)
        assert summary["newly_missing"] >= 1
        gone = Bucket.objects.get(tenant=tenant, name=plain)
        assert gone.missing_since is not None  # marked, not deleted
        assert Bucket.objects.get(tenant=tenant, name=versioned).missing_since is None
        assert AuditEvent.objects.filter(tenant=tenant, action="account.discover").count() == 2


def test_discovery_needs_a_verified_account(tenant):
    with scope(tenant=tenant):
        account = make_account(tenant, connected=False)
        with pytest.raises(ServiceError, match="Verify"):
            discovery.discover_buckets(tenant, ACTOR, account)


def test_it_refuses_another_tenants_account(tenant, outsider_tenant):
    with scope(tenant=outsider_tenant):
        theirs = make_account(outsider_tenant)
    with scope(tenant=tenant), pytest.raises(ServiceError, match="No such account"):
        services.verify_account(tenant, ACTOR, theirs, theirs.role_arn)


def test_it_reuses_a_client_until_the_credentials_change(tenant, monkeypatch):
    keys = iter(["AKIAFIRST", "AKIASECOND"])

    def fake_assume(role_arn, external_id, session_name="s3av"):
        creds = sts_credentials()
        creds["AccessKeyId"] = next(keys)
        creds["Expiration"] = datetime.now(UTC) + timedelta(hours=1)
        return creds

    monkeypatch.setattr(aws, "assume_role", fake_assume)
    with scope(tenant=tenant):
        account = make_account(tenant, "111122224444")
    aws.forget_credentials(account)
    first = aws.client_for(account, "s3", "us-east-1")
    assert aws.client_for(account, "s3", "us-east-1") is first
    assert aws.client_for(account, "s3", "eu-west-1") is not first
    aws.forget_credentials(account)  # e.g. the role was verified again
    renewed = aws.client_for(account, "s3", "us-east-1")
    assert renewed is not first
    assert renewed._request_signer._credentials.access_key == "AKIASECOND"
    aws.forget_credentials(account)

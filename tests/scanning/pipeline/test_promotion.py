"""The two-bucket system: Clean objects promoted from staging, everything else kept back."""

from __future__ import annotations

import pytest
from django_scopes import scope

from scanning.models import ScanPolicy, Verdict
from scanning.pipeline import services
from scanning.s3 import ops as s3ops
from tests import factories
from tests.fixtures.scanning import EICAR, assert_gone_for_good

pytestmark = pytest.mark.django_db


def _scan(tenant, bucket, key, etag, size=None):
    with scope(tenant=tenant):
        dedupe = services.dedupe_key_for(bucket, key, None, etag, False)
        return services.run_scan(
            tenant, bucket, key, version_id=None, etag=etag, size=size, trigger="event", dedupe_key=dedupe
        )


def _destination(tenant, make_bucket, account_id="210987654321", versioned=False):
    """A bucket of the same tenant in another linked account."""
    name = make_bucket(versioned=versioned)
    with scope(tenant=tenant):
        account = factories.make_account(tenant, account_id, role_arn=f"arn:aws:iam::{account_id}:role/s3av")
        return factories.make_bucket_row(tenant, account, name)


def _policy(tenant, bucket, **fields):
    with scope(tenant=tenant):
        ScanPolicy.objects.filter(pk=bucket.policy_id).update(**fields)
        bucket.refresh_from_db()
        bucket.policy.refresh_from_db()


def _tags(s3_client, bucket, key):
    return {t["Key"]: t["Value"] for t in s3_client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def _tags_as_owner(bucket, key):
    # moto keeps tags per account: read them with the destination account's own role.
    from linked_accounts import aws

    client = aws.client_for(bucket.account, "s3", bucket.region)
    return _tags(client, bucket.name, key)


def test_a_clean_object_is_promoted_across_accounts_with_tags_and_metadata(
    tenant, make_linked_bucket, make_bucket, s3_client
):
    staging = make_linked_bucket(tenant)
    production = _destination(tenant, make_bucket)
    _policy(
        tenant,
        staging,
        promote_to_bucket=production,
        promote_prefix="released/",
        delete_staging_after_promote=True,
    )
    etag = s3_client.put_object(
        Bucket=staging.name,
        Key="in/report.pdf",
        Body=b"%PDF-1.4 quarterly\n" * 100,
        ContentType="application/pdf",
        Metadata={"owner": "finance"},
        Tagging="team=finance",
    )["ETag"]
    result = _scan(tenant, staging, "in/report.pdf", etag)
    assert result.verdict == Verdict.CLEAN
    assert result.action == "tagged+promoted"
    assert result.action_status == "done"
    head = s3_client.head_object(Bucket=production.name, Key="released/in/report.pdf")
    assert head["ContentType"] == "application/pdf"
    assert head["Metadata"] == {"owner": "finance"}
    assert head["ETag"] == etag
    tags = _tags_as_owner(production, "released/in/report.pdf")
    assert tags["team"] == "finance"
    assert tags["scan-result"] == "Clean"
    assert "Contents" not in s3_client.list_objects_v2(Bucket=staging.name)  # staging copy deleted


def test_the_staging_copy_stays_unless_asked(tenant, make_linked_bucket, make_bucket, s3_client):
    staging = make_linked_bucket(tenant)
    production = _destination(tenant, make_bucket)
    _policy(tenant, staging, promote_to_bucket=production)
    etag = s3_client.put_object(Bucket=staging.name, Key="a.txt", Body=b"fine")["ETag"]
    assert _scan(tenant, staging, "a.txt", etag).action == "tagged+promoted"
    assert s3_client.head_object(Bucket=staging.name, Key="a.txt")["ETag"] == etag
    assert s3_client.head_object(Bucket=production.name, Key="a.txt")["ETag"] == etag


@pytest.mark.parametrize("body", [EICAR], ids=["infected"])
def test_an_infected_object_is_never_promoted_and_is_quarantined(
    tenant, make_linked_bucket, make_bucket, s3_client, body
):
    quarantine = make_bucket()
    staging = make_linked_bucket(tenant, on_infected="quarantine", quarantine_bucket=quarantine)
    production = _destination(tenant, make_bucket)
    _policy(tenant, staging, promote_to_bucket=production, delete_staging_after_promote=True)
    etag = s3_client.put_object(Bucket=staging.name, Key="bad.com", Body=body)["ETag"]
    result = _scan(tenant, staging, "bad.com", etag)
    assert result.verdict == Verdict.INFECTED
    assert "promoted" not in result.action
    assert "quarantined" in result.action
    assert "Contents" not in s3_client.list_objects_v2(Bucket=production.name)
    assert [o["Key"] for o in s3_client.list_objects_v2(Bucket=quarantine)["Contents"]] == [
        f"quarantine/{staging.name}/{result.pk}/bad.com"
    ]


def test_unscannable_and_error_objects_are_never_promoted(tenant, make_linked_bucket, make_bucket, s3_client):
    staging = make_linked_bucket(tenant, max_object_size=10)
    production = _destination(tenant, make_bucket)
    _policy(tenant, staging, promote_to_bucket=production)
    etag = s3_client.put_object(Bucket=staging.name, Key="big.bin", Body=b"x" * 100)["ETag"]
    result = _scan(tenant, staging, "big.bin", etag)
    assert result.verdict == Verdict.UNSCANNABLE
    assert "promoted" not in result.action
    assert "Contents" not in s3_client.list_objects_v2(Bucket=production.name)


def test_a_destination_of_another_tenant_is_refused(
    tenant, outsider_tenant, make_linked_bucket, make_bucket, s3_client
):
    staging = make_linked_bucket(tenant)
    theirs = _destination(outsider_tenant, make_bucket)
    _policy(tenant, staging, promote_to_bucket_id=theirs.pk)
    etag = s3_client.put_object(Bucket=staging.name, Key="a.txt", Body=b"fine")["ETag"]
    result = _scan(tenant, staging, "a.txt", etag)
    assert result.verdict == Verdict.CLEAN
    assert result.action_status == "failed"
    assert "not this tenant's" in result.action_detail
    assert "Contents" not in s3_client.list_objects_v2(Bucket=theirs.name)


def test_promotion_within_one_bucket_does_not_promote_its_own_copies(tenant, make_linked_bucket, s3_client):
    bucket = make_linked_bucket(tenant)
    _policy(tenant, bucket, promote_to_bucket=bucket, promote_prefix="clean/")
    etag = s3_client.put_object(Bucket=bucket.name, Key="upload.txt", Body=b"fine")["ETag"]
    assert _scan(tenant, bucket, "upload.txt", etag).action == "tagged+promoted"
    copy_etag = s3_client.head_object(Bucket=bucket.name, Key="clean/upload.txt")["ETag"]
    assert _scan(tenant, bucket, "clean/upload.txt", copy_etag).action == "tagged"
    keys = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket.name)["Contents"])
    assert keys == ["clean/upload.txt", "upload.txt"]


def test_large_objects_are_promoted_with_a_multipart_copy(
    tenant, make_linked_bucket, make_bucket, s3_client, monkeypatch
):
    # The 5 GB CopyObject limit, scaled down so a 6 MiB object takes the multipart path.
    monkeypatch.setattr(s3ops, "COPY_OBJECT_LIMIT", 5 * s3ops.MiB)
    staging = make_linked_bucket(tenant)
    production = _destination(tenant, make_bucket)
    _policy(tenant, staging, promote_to_bucket=production)
    body = bytes(range(256)) * (6 * 4096)
    etag = s3_client.put_object(
        Bucket=staging.name, Key="big.bin", Body=body, ContentType="application/x-big"
    )["ETag"]
    assert _scan(tenant, staging, "big.bin", etag).action == "tagged+promoted"
    head = s3_client.head_object(Bucket=production.name, Key="big.bin")
    assert head["ETag"].strip('"').endswith("-1")  # a multipart upload made it
    assert head["ContentLength"] == len(body)
    assert head["ContentType"] == "application/x-big"
    assert _tags_as_owner(production, "big.bin")["scan-result"] == "Clean"


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_deleting_the_staging_copy_removes_the_staged_version_for_good(
    tenant, make_linked_bucket, make_bucket, s3_client, versioned
):
    staging = make_linked_bucket(tenant, versioned=versioned)
    production = _destination(tenant, make_bucket, versioned=versioned)
    _policy(tenant, staging, promote_to_bucket=production, delete_staging_after_promote=True)
    put = s3_client.put_object(Bucket=staging.name, Key="in/a.txt", Body=b"fine")
    result = _scan(tenant, staging, "in/a.txt", put["ETag"], size=4)  # an event that names no version
    assert result.action == "tagged+promoted"
    assert s3_client.get_object(Bucket=production.name, Key="in/a.txt")["Body"].read() == b"fine"
    assert_gone_for_good(s3_client, staging.name, "in/a.txt", put.get("VersionId"))
    assert result.version_id == (put.get("VersionId") or "")

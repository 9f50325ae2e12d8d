"""The optional read gate: a bucket policy statement that denies reading objects not scanned Clean.

The statement denies ``s3:GetObject`` and ``s3:GetObjectVersion`` on every object of the bucket unless
the object's verdict tag (the bucket policy's ``tag_result_key``, ``scan-result`` by default) is
``Clean`` or ``InfectedAllowed`` (an operator's release of a false positive), to every principal except
the linked account's s3av role, which must read unscanned objects to scan them. An object that has not
been scanned yet has no tag, so it is unreadable until its verdict arrives: uploads become readable
within seconds, once scanned.

Two more statements keep the verdict tag honest: ``tag_guard`` (nobody but s3av's role may send the
verdict tag key) and ``copy_guard`` (nobody but s3av's role may copy objects in from another bucket,
which would bring that bucket's tags along). Applying the gate merges all three (found by their
``Sid``) into the bucket's existing policy; the rest of the policy is kept as it is. The role needs
``s3:GetBucketPolicy`` and ``s3:PutBucketPolicy`` for this, which the template grants only with
``EnableReadGate=true``. A Deny in a bucket policy also binds the
account's administrators; they can still remove the statement (``DeleteBucketPolicy`` or an edit).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.db import transaction

from accounts.models import Tenant
from accounts.services import Actor, ServiceError, get_owned, record
from linked_accounts import aws
from linked_accounts.models import AwsAccount
from scanning.models import Bucket, ScanPolicy, Verdict

SID = "S3avDenyReadUnlessClean"
TAG_GUARD_SID = "S3avDenyVerdictTagWrites"
COPY_GUARD_SID = "S3avDenyCopyFromOtherBuckets"


def statement(bucket: Bucket) -> dict[str, Any]:
    tag_key = _tag_key(bucket)
    partition = aws.partition_of(bucket.account)
    return {
        "Sid": SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:GetObject", "s3:GetObjectVersion"],
        "Resource": f"arn:{partition}:s3:::{bucket.name}/*",
        # Both conditions must hold for the Deny to apply: the tag is not an allowed verdict (a missing
        # tag counts as not equal) and the caller is not s3av's role.
        "Condition": {
            "StringNotEquals": {
                f"s3:ExistingObjectTag/{tag_key}": [Verdict.CLEAN.value, Verdict.INFECTED_ALLOWED.value],
            },
            "ArnNotEquals": {"aws:PrincipalArn": bucket.account.role_arn},
        },
    }


def tag_guard(bucket: Bucket) -> dict[str, Any]:
    """Deny writing the verdict tag to everyone but s3av's role.

    Without it the read gate trusts a tag any uploader could set (``x-amz-tagging: scan-result=Clean``
    on the upload, or PutObjectTagging afterwards). A consequence to know: with the gate on, the
    customer's own tag edits must leave the verdict tag out of the request.
    """
    return {
        "Sid": TAG_GUARD_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectVersionTagging"],
        "Resource": f"arn:{aws.partition_of(bucket.account)}:s3:::{bucket.name}/*",
        "Condition": {
            "ForAnyValue:StringEquals": {"s3:RequestObjectTagKeys": [_tag_key(bucket)]},
            "ArnNotEquals": {"aws:PrincipalArn": bucket.account.role_arn},
        },
    }


def copy_guard(bucket: Bucket) -> dict[str, Any]:
    """Deny copying objects in from any other bucket to everyone but s3av's role.

    A CopyObject keeps the source's tags by default (``x-amz-tagging-directive: COPY``) without naming
    any, so the tag guard cannot see them, and S3 has no condition key for the tagging directive nor
    for the source object's tags on a write. An object tagged ``scan-result=Clean`` in a bucket of the
    caller's own would then arrive readable before s3av scanned it. ``s3:x-amz-copy-source`` (a
    documented condition key of ``s3:PutObject``, which authorises CopyObject and UploadPartCopy)
    names the source as ``bucket/key`` (SDKs may send ``/bucket/key``): copies within this bucket stay
    allowed, because here only s3av's role can write the verdict tag. ``Null: false`` keeps ordinary
    uploads (no copy source) out of this statement.
    """
    return {
        "Sid": COPY_GUARD_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:PutObject"],
        "Resource": f"arn:{aws.partition_of(bucket.account)}:s3:::{bucket.name}/*",
        "Condition": {
            "Null": {"s3:x-amz-copy-source": "false"},
            "StringNotLike": {"s3:x-amz-copy-source": [f"{bucket.name}/*", f"/{bucket.name}/*"]},
            "ArnNotEquals": {"aws:PrincipalArn": bucket.account.role_arn},
        },
    }


def statements(bucket: Bucket) -> list[dict[str, Any]]:
    """The read gate and the two statements that keep its tag honest (in the order they are merged)."""
    return [statement(bucket), tag_guard(bucket), copy_guard(bucket)]


def _tag_key(bucket: Bucket) -> str:
    # Read without creating the default policy: showing the statement must not write.
    policy = bucket.policy or ScanPolicy.objects.filter(tenant_id=bucket.tenant_id, is_default=True).first()
    if policy is not None:
        return policy.tag_result_key
    return str(ScanPolicy._meta.get_field("tag_result_key").get_default())


def merge(policy: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``policy`` with s3av's statement replaced by ``new`` (or added); other statements unchanged."""
    merged = dict(policy or {"Version": "2012-10-17"})
    statements = merged.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    merged["Statement"] = [s for s in statements if s.get("Sid") != new.get("Sid")] + [new]
    return merged


def apply(tenant: Tenant, actor: Actor, bucket: Bucket) -> dict[str, Any]:
    """Merge the read-gate statement into the bucket policy; return the statement."""
    get_owned(Bucket, tenant, bucket)
    if bucket.account.status != AwsAccount.Status.CONNECTED or not bucket.account.role_arn:
        raise ServiceError("Verify the bucket's account before changing its policy.")
    gate, *guards = statements(bucket)
    try:
        s3 = aws.client_for(bucket.account, "s3", bucket.region)
        try:
            current = json.loads(s3.get_bucket_policy(Bucket=bucket.name)["Policy"])
        except ClientError as exc:
            if aws.error_code(exc) != "NoSuchBucketPolicy":
                raise
            current = None
        merged = merge(current, gate)
        for guard in guards:
            merged = merge(merged, guard)
        s3.put_bucket_policy(Bucket=bucket.name, Policy=json.dumps(merged))
    except aws.AssumeRoleFailed as exc:
        raise ServiceError(exc.message) from None
    except (ClientError, BotoCoreError) as exc:
        code = aws.error_code(exc)
        if code in {"AccessDenied", "AccessDeniedException"}:
            raise ServiceError(
                "AWS refused to change the bucket policy: deploy the template with EnableReadGate=true."
            ) from None
        raise ServiceError(f"AWS refused to change the bucket policy: {code or 'unreachable'}.") from None
    with transaction.atomic():
        record(tenant, actor, "bucket.read_gate", bucket, {"sids": [SID, TAG_GUARD_SID, COPY_GUARD_SID]})
    return gate

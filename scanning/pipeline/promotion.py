"""The two-bucket system: promote Clean objects from a staging bucket to a destination bucket/prefix.

Called from ``services._act`` after the verdict tags are written, so the promoted copy carries them.
The copy is ``s3ops.copy_object_verified`` (CopyObject up to 5 GB, UploadPartCopy above; metadata,
content type and tags kept; size, ETag or checksum, metadata and tags checked afterwards); the staging
copy is deleted only after that check passed, and only if the policy says so.

The destination must be a Bucket row of the same tenant. It may live in another linked account of that
tenant: the copy is then made with the destination account's role, which needs read access to the
staging object (granted by the staging bucket's policy; s3av does not write it).
"""

from __future__ import annotations

import logging
from typing import Any

from accounts.models import Tenant
from accounts.services import ServiceError
from linked_accounts import aws
from scanning.models import Bucket, ScanPolicy, ScanResult, Verdict
from scanning.s3 import ops as s3ops

log = logging.getLogger(__name__)


def destination_key(policy: ScanPolicy, key: str) -> str:
    return f"{policy.promote_prefix}{key}"


def destination_for(tenant: Tenant, policy: ScanPolicy) -> Bucket | None:
    """The policy's destination bucket, refused unless it belongs to ``tenant``."""
    if policy.promote_to_bucket_id is None:
        return None
    destination = (
        Bucket.objects.select_related("account").filter(tenant=tenant, pk=policy.promote_to_bucket_id).first()
    )
    if destination is None:
        raise ServiceError(f"policy {policy.name!r} promotes to a bucket that is not this tenant's")
    return destination


def wants_promotion(policy: ScanPolicy, source: Bucket, destination: Bucket, key: str) -> bool:
    # Promoting into the same bucket: a key already under the destination prefix is a promoted copy
    # (its own event scan must not promote it again, forever), and without a prefix it would overwrite
    # itself.
    if destination.pk == source.pk:
        return bool(policy.promote_prefix) and not key.startswith(policy.promote_prefix)
    return True


def promote_if_wanted(tenant: Tenant, bucket: Bucket, policy: ScanPolicy, result: ScanResult) -> bool:
    """Copy a Clean object version to the policy's destination; True if it was promoted.

    Never for any other verdict. Raises ``s3ops.PermanentS3Error`` (the action fails and is reported)
    or ``TransientS3Error`` (the actor retries; copying again is harmless).
    """
    if result.verdict != Verdict.CLEAN:
        return False
    destination = destination_for(tenant, policy)
    if destination is None or not wants_promotion(policy, bucket, destination, result.key):
        return False
    source_client = aws.client_for(bucket.account, "s3", bucket.region)
    dest_client = (
        source_client
        if destination.account_id == bucket.account_id and destination.region == bucket.region
        else aws.client_for(destination.account, "s3", destination.region)
    )
    ref = s3ops.ObjectRef(
        bucket=bucket.name,
        key=result.key,
        version_id=result.version_id or None,
        etag=result.etag,
        size=result.size or 0,
    )
    dest_key = destination_key(policy, result.key)
    try:
        copied = s3ops.copy_object_verified(
            source_client, ref, destination.name, dest_key, dest_client=dest_client
        )
    except s3ops.PermanentS3Error as exc:
        if not isinstance(exc, s3ops.ObjectGone) or not policy.delete_staging_after_promote:
            raise
        # A redelivered message: an earlier attempt copied and deleted the staging version already.
        copied = _earlier_copy(dest_client, destination.name, dest_key, ref)
    if policy.delete_staging_after_promote:
        _delete_staging(source_client, ref)
    log.info("promoted", extra={"from": str(ref), "to": f"s3://{copied.bucket}/{copied.key}"})
    return True


def _earlier_copy(client: Any, bucket: str, key: str, ref: s3ops.ObjectRef) -> s3ops.ObjectRef:
    copied = s3ops.head_object(client, bucket, key)
    if copied.size != ref.size or ("-" not in ref.etag and copied.etag != ref.etag):
        raise s3ops.PermanentS3Error(f"{ref} is gone and s3://{bucket}/{key} is not its copy", code="Gone")
    return copied


def _delete_staging(client: Any, ref: s3ops.ObjectRef) -> None:
    try:
        s3ops.delete_version(client, ref)
    except s3ops.PermanentS3Error as exc:
        if not isinstance(exc, s3ops.ObjectGone):
            raise

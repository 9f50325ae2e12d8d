"""Stored uploads: a Clean upload of the scan API (``POST /api/v1/scan?bucket=…``) written to its bucket.

The bytes are written with ``s3ops.put_object`` (Content-MD5: S3 refuses bytes other than those
scanned), tagged Clean in the same request, and the verdict is recorded pinned to the version written,
so the bucket's own event scan of it folds into this result instead of scanning again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import IO, Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import Actor, ServiceError, record
from scanning.models import Bucket, ScanResult, Trigger, Verdict
from scanning.pipeline import promotion, services
from scanning.s3 import ops as s3ops


def store_clean_upload(
    tenant: Tenant,
    actor: Actor,
    bucket: Bucket,
    key: str,
    upload: IO[bytes],
    *,
    size: int,
    md5: bytes,
    sha256: str,
    engine: str,
    signature_version: str,
) -> ScanResult:
    """Write a scanned Clean upload to ``bucket`` at ``key``, tagged; return its recorded verdict."""
    if size > s3ops.COPY_OBJECT_LIMIT:
        raise ServiceError("Uploads over 5 GB cannot be stored from the scan API.", field="bucket")
    policy = bucket.effective_policy()
    now = timezone.now()
    tags = [
        (policy.tag_result_key, Verdict.CLEAN),
        (policy.tag_date_key, now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
    ]
    upload.seek(0)
    s3 = services.bucket_client(bucket, field="bucket")
    try:
        written = s3ops.put_object(s3, bucket.name, key, upload, size=size, md5=md5, tags=tags)
    except Exception as exc:
        failure = s3ops.to_s3_error(exc, f"s3://{bucket.name}/{key}", "writing")
        raise ServiceError(f"Storing the upload failed: {failure.message}", field="bucket") from exc
    result = _record(
        tenant, bucket, written, _written_at(s3, written), sha256, engine, signature_version, now
    )
    # The two-bucket system applies to stored uploads as to any Clean object of the staging bucket.
    try:
        if promotion.promote_if_wanted(tenant, bucket, policy, result):
            result.promoted = True
    except s3ops.S3Error as exc:
        result.action_status = ScanResult.ActionStatus.FAILED
        result.action_detail = f"promotion failed: {exc.message}"
    result.save(update_fields=["promoted", "action_status", "action_detail"])
    record(tenant, actor, "scan.store", result, {"bucket": bucket.name, "key": key, "size": size})
    return result


def _record(
    tenant: Tenant,
    bucket: Bucket,
    written: s3ops.ObjectRef,
    last_modified: datetime | None,
    sha256: str,
    engine: str,
    signature_version: str,
    now: datetime,
) -> ScanResult:
    fields: dict[str, Any] = dict(
        last_modified=last_modified,
        tenant=tenant,
        bucket=bucket,
        bucket_name=bucket.name,
        key=written.key,
        version_id=written.version_id or "",
        etag=written.etag,
        size=written.size,
        sha256=sha256,
        verdict=Verdict.CLEAN,
        engine=engine,
        signature_version=signature_version,
        stored=True,
        tagged=True,
        action_status=ScanResult.ActionStatus.DONE,
        trigger=Trigger.API,
        dedupe_key=services.dedupe_key_for(bucket, written.key, written.version_id, written.etag, False),
        scanned_at=now,
    )
    try:
        with transaction.atomic():
            return ScanResult.objects.create(**fields)
    except IntegrityError:
        # The same bytes stored again under the same key of an unversioned bucket: one object, one verdict.
        return ScanResult.objects.get(tenant=tenant, dedupe_key=fields["dedupe_key"])


def _written_at(s3: Any, written: s3ops.ObjectRef) -> datetime | None:
    """The stored object's LastModified, to the second (PutObject answers none).

    In an unversioned bucket it is what tells a later PUT of the same bytes (a new object, without this
    object's tags) from the stored object itself; without it that PUT would fold into this verdict and
    stay untagged. None when the key already holds other bytes.
    """
    try:
        current = s3ops.head_object(s3, written.bucket, written.key, written.version_id)
    except s3ops.S3Error:
        return None
    if current.etag != written.etag or current.last_modified is None:
        return None
    return current.last_modified.replace(microsecond=0)

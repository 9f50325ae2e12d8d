"""Dramatiq actors of scanning: thin wrappers that reload by id, enter the tenant scope and call services."""

from __future__ import annotations

import dramatiq
from django_scopes import scope, scopes_disabled
from dramatiq.middleware import CurrentMessage

from accounts.models import Tenant
from scanning.models import Bucket
from scanning.pipeline import services

SCAN_MAX_RETRIES = 8


def _is_final_attempt() -> bool:
    message = CurrentMessage.get_current_message()
    if message is None:
        return True
    return int(message.options.get("retries", 0)) >= SCAN_MAX_RETRIES


@dramatiq.actor(
    queue_name="scans",
    max_retries=SCAN_MAX_RETRIES,
    min_backoff=2_000,
    max_backoff=300_000,
    time_limit=3_600_000,
)
def scan_object(
    tenant_id: str,
    bucket_id: str,
    key: str,
    *,
    version_id: str | None = None,
    etag: str | None = None,
    size: int | None = None,
    trigger: str = "event",
    dedupe_key: str,
    job_id: str | None = None,
    sequencer: str | None = None,
) -> None:
    # One query for the tenant, the bucket, its account and policy (a scan's hot path).
    with scopes_disabled():
        bucket = (
            Bucket.objects.select_related("tenant", "account", "policy")
            .filter(pk=bucket_id, tenant_id=tenant_id, tenant__status=Tenant.Status.ACTIVE)
            .first()
        )
    if bucket is None:
        return
    tenant = bucket.tenant
    with scope(tenant=tenant):
        services.run_scan(
            tenant,
            bucket,
            key,
            version_id=version_id,
            etag=etag,
            trigger=trigger,
            dedupe_key=dedupe_key,
            job_id=job_id,
            final_attempt=_is_final_attempt(),
            size=size,
            sequencer=sequencer,
        )

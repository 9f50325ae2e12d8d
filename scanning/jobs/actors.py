"""Dramatiq actors of bucket scans, on the "listing" queue so a huge listing never delays event scans."""

from __future__ import annotations

import dramatiq
from django_scopes import scope, scopes_disabled
from dramatiq.middleware import CurrentMessage

from accounts.models import Tenant
from scanning.engine import clamd as engine
from scanning.jobs import services as jobs
from scanning.models import ScanJob
from scanning.s3 import ops as s3ops

LISTING_QUEUE = "listing"
LIST_MAX_RETRIES = 10


def _is_final_attempt() -> bool:
    message = CurrentMessage.get_current_message()
    return message is None or int(message.options.get("retries", 0)) >= LIST_MAX_RETRIES


@dramatiq.actor(
    queue_name=LISTING_QUEUE,
    max_retries=LIST_MAX_RETRIES,
    min_backoff=5_000,
    max_backoff=600_000,
    time_limit=900_000,
)
def list_job(job_id: str) -> None:
    """List one slice of a job, then send the next slice. Safe to run twice: the checkpoint is a
    conditional update, so a second copy stops at its first page."""
    with scopes_disabled():
        job = ScanJob.objects.filter(pk=job_id).select_related("tenant").first()
    if job is None or job.tenant.status != Tenant.Status.ACTIVE:
        return
    with scope(tenant=job.tenant):
        try:
            outcome = jobs.list_slice(job_id)
        except (s3ops.TransientS3Error, engine.EngineUnavailable) as exc:
            if not _is_final_attempt():
                raise
            jobs.fail_job(job, f"gave up listing after retries: {getattr(exc, 'message', exc)}")
            return
    if outcome == "continue":
        list_job.send(job_id)
    elif outcome == "wait":
        list_job.send_with_options(args=(job_id,), delay=jobs.BACKLOG_DELAY_MS)

"""Bucket scans: list what a bucket holds page by page, enqueue scans in batches, count what comes back.

How a job moves:

- ``start_bucket_scan`` creates the job (queued) and, after commit, sends ``list_job`` on the
  "listing" queue, so listing never waits behind scans and scans never wait behind a huge listing.
- ``list_slice`` lists pages with ``s3ops.iter_keys``. For each page it drops what the job does not cover
  (time window, policy patterns), counts as skipped what is already known (same ETag and size as a final
  result made with the current signatures: never downloaded again), records one ``ScanJobItem`` per scan
  it is about to send, sends the scans, and then checkpoints the continuation token and the counters in
  one conditional UPDATE. A slice stops after a time budget (RabbitMQ drops a consumer whose message
  stays unacknowledged past ``consumer_timeout``) or when the job has too many scans outstanding, and
  sends the next slice; a killed worker's message is redelivered and resumes from the checkpoint.
- Each scan, when it ends, marks its item done and bumps the counters (``count_scan``), exactly once
  however often the message is delivered. The job is done when listing ended and scanned + skipped
  equals listed: the count that gets there marks it done in the same statement, or the listing's end
  does when every scan came back before it. Whether a scan is still wanted (``wanted_items``) is asked
  in the query that loads the scan's bucket.
- Cancelling sets the status and deletes the items: the job's pending scans find no item and do nothing.

Crash windows: a worker killed after sending a page's scans but before the checkpoint lists that page
again on resume; its items already exist and its scans share deterministic dedupe keys, so nothing is
counted or scanned twice.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django_scopes import scopes_disabled

from accounts.models import Tenant
from accounts.services import Actor, ServiceError, get_owned, record
from linked_accounts import aws
from s3av.actors import is_final_attempt, send_on_commit, tenant_actor
from scanning.engine import clamd as engine
from scanning.models import (
    ACTIVE_JOB_STATUSES,
    MOVED_AWAY,
    Bucket,
    JobStatus,
    JobTrigger,
    ScanJob,
    ScanJobItem,
    ScanPolicy,
    ScanResult,
    Trigger,
    Verdict,
)
from scanning.pipeline import services as pipeline
from scanning.s3 import ops as s3ops

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
# One listing message runs at most this long, well inside RabbitMQ's 30-minute consumer_timeout.
SLICE_SECONDS = 240.0
# A job stops listing while this many of its scans are outstanding, so one huge bucket cannot fill the
# scan queue and delay event scans by hours; listing resumes when the backlog drains.
MAX_PENDING = 20_000
BACKLOG_DELAY_MS = 30_000
# After malware is found, the rest of the bucket is scanned at most this often.
INFECTED_RESCAN_INTERVAL = timedelta(hours=1)

_SCAN_TRIGGER = {JobTrigger.SCHEDULE: Trigger.SCHEDULE, JobTrigger.API: Trigger.API}
_VERDICT_COUNTER = {
    Verdict.CLEAN: "clean_count",
    Verdict.INFECTED: "infected",
    Verdict.INFECTED_ALLOWED: "infected",
    Verdict.UNSCANNABLE: "unscannable",
    Verdict.ERROR: "errors",
}


def s3_client_for(bucket: Bucket) -> Any:
    return aws.client_for(bucket.account, "s3", bucket.region)


def current_signature_version() -> str:
    return pipeline.engine_identity().get()[1]


# --- starting and cancelling -------------------------------------------------------------------------


def start_bucket_scan(
    tenant: Tenant,
    actor: Actor | None,
    bucket: Bucket,
    prefix: str = "",
    trigger: str = JobTrigger.MANUAL,
    *,
    key: str = "",
    version_id: str = "",
    modified_after: datetime | None = None,
    modified_before: datetime | None = None,
    all_versions: bool = False,
    signature_version: str = "",
) -> ScanJob:
    """Start a scan of what ``bucket`` (under ``prefix``, or the one object ``key``) already holds.

    Refused while a job for the same target runs. ``actor`` None means the system (a schedule, a first
    protection, a finding) started it; a person's or key's start is audited.
    """
    get_owned(Bucket, tenant, bucket, field="bucket")
    if modified_after and modified_before and modified_after >= modified_before:
        raise ServiceError("modified_after must be before modified_before.", field="modified_after")
    running = ScanJob.objects.running().for_target(bucket, prefix, key).first()
    if running is not None:
        raise ServiceError(f"A scan of this target is already running (job {running.pk}).", field="prefix")
    try:
        with transaction.atomic():
            job = ScanJob.objects.create(
                tenant=tenant,
                bucket=bucket,
                prefix=prefix,
                key=key,
                version_id=version_id,
                modified_after=modified_after,
                modified_before=modified_before,
                all_versions=all_versions,
                trigger=trigger,
                signature_version=signature_version,
                created_by=(actor.label if actor else f"system:{trigger}")[:254],
            )
    except IntegrityError:  # a concurrent start of the same target won the race
        raise ServiceError("A scan of this target is already running.", field="prefix") from None
    if actor is not None:
        record(tenant, actor, "job.start", job, {"bucket": bucket.name, "prefix": prefix, "key": key})
    send_on_commit(list_job, str(job.pk))
    return job


def cancel_job(tenant: Tenant, actor: Actor | None, job: ScanJob) -> ScanJob:
    """Stop listing and drop the job's pending scans (scans already running finish)."""
    get_owned(ScanJob, tenant, job, noun="job")
    cancelled = ScanJob.objects.filter(pk=job.pk, status__in=ACTIVE_JOB_STATUSES).update(
        status=JobStatus.CANCELLED, finished_at=timezone.now()
    )
    if not cancelled:
        job.refresh_from_db()
        raise ServiceError(f"This job is {job.status} already.")
    ScanJobItem.objects.filter(job=job).delete()
    if actor is not None:
        record(tenant, actor, "job.cancel", job)
    job.refresh_from_db()
    return job


def fail_job(job: ScanJob, message: str) -> None:
    ScanJob.objects.filter(pk=job.pk, status__in=ACTIVE_JOB_STATUSES).update(
        status=JobStatus.FAILED, error=message[:2000], finished_at=timezone.now()
    )
    ScanJobItem.objects.filter(job=job).delete()
    log.warning("job failed", extra={"job": str(job.pk), "error": message})


# --- listing -----------------------------------------------------------------------------------------


def job_dedupe_key(job: ScanJob, ref: s3ops.ObjectRef, signature_version: str) -> str:
    """Deterministic per job, object version and signature version: a resumed listing sends the same
    keys; another job (or a rescan under new signatures) gets its own scan, never an old Error."""
    raw = f"{job.bucket_id}\0{job.pk}\0{ref.key}\0{ref.version_id or ''}\0{ref.etag}\0{signature_version}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _known(job: ScanJob, refs: list[s3ops.ObjectRef], signature_version: str) -> set[tuple[Any, ...]]:
    """The (key, [version], etag, size, last modified) of refs that already have a verdict worth keeping.

    The same key and bytes with another LastModified is another object (uploaded again, its tags gone
    with the old one): it is scanned and tagged again. A result recorded before s3av kept LastModified
    (None) matches any."""
    if not refs:
        return set()
    rows = (
        ScanResult.objects.final()
        .filter(
            tenant_id=job.tenant_id,
            bucket_name=job.bucket.name,
            bucket_id=job.bucket_id,
            key__in={ref.key for ref in refs},
        )
        # A released object stays released whatever the signatures say now.
        .filter(Q(signature_version=signature_version) | Q(verdict=Verdict.INFECTED_ALLOWED))
        # Worth keeping: not an Error or Unscannable (a retry or a raised size limit may do better), and
        # not a version s3av moved away or deleted (the same bytes found again are a new upload).
        .exclude(verdict__in=[Verdict.ERROR, Verdict.UNSCANNABLE])
        .exclude(MOVED_AWAY)
        .values_list("key", "version_id", "etag", "size", "last_modified")
    )
    if job.all_versions:
        return {
            (key, _version(version), etag, size, _second(when)) for key, version, etag, size, when in rows
        }
    return {(key, etag, size, _second(when)) for key, _, etag, size, when in rows}


def _second(when: datetime | None) -> datetime | None:
    return when.replace(microsecond=0) if when is not None else None


def _version(version_id: str | None) -> str:
    # The "null" version and no version are the same object of an unversioned bucket.
    return "" if version_id in (None, "null") else str(version_id)


def _is_known(job: ScanJob, ref: s3ops.ObjectRef, known: set[tuple[Any, ...]]) -> bool:
    pin: tuple[Any, ...] = (ref.key, ref.etag, ref.size)
    if job.all_versions:
        pin = (ref.key, _version(ref.version_id), ref.etag, ref.size)
    return (*pin, _second(ref.last_modified)) in known or (*pin, None) in known


def _scan_messages(job: ScanJob, refs: Iterable[tuple[s3ops.ObjectRef, str]]) -> list[Any]:
    trigger = _SCAN_TRIGGER.get(JobTrigger(job.trigger), Trigger.MANUAL)
    return [
        pipeline.scan_object.message(
            str(job.tenant_id),
            str(job.bucket_id),
            ref.key,
            version_id=ref.version_id if job.all_versions or job.key else None,
            etag=ref.etag or None,
            size=ref.size,
            trigger=trigger,
            dedupe_key=dedupe,
            job_id=str(job.pk),
        )
        for ref, dedupe in refs
    ]


def _send(messages: list[Any]) -> None:
    # Listing runs outside any transaction (autocommit): the items these scans look for are committed.
    for message in messages:
        pipeline.scan_object.broker.enqueue(message)


def enqueue_page(job: ScanJob, page: s3ops.ListingPage, policy: ScanPolicy, signature_version: str) -> bool:
    """Enqueue one page's scans and checkpoint after it. False if another listing or a cancel got there
    first (then this listing stops)."""
    refs = [ref for ref in page.refs if job.in_window(ref.last_modified) and policy.wants(ref.key)]
    known = _known(job, refs, signature_version)
    wanted = [
        (ref, job_dedupe_key(job, ref, signature_version)) for ref in refs if not _is_known(job, ref, known)
    ]
    ScanJobItem.objects.bulk_create(
        [ScanJobItem(tenant_id=job.tenant_id, job_id=job.pk, dedupe_key=dedupe) for _, dedupe in wanted],
        ignore_conflicts=True,
        batch_size=1000,
    )
    _send(_scan_messages(job, wanted))
    last = page.next_token is None
    changes: dict[str, Any] = {
        "list_token": page.next_token or "",
        "listed": F("listed") + len(refs),
        "queued": F("queued") + len(wanted),
        "skipped": F("skipped") + len(refs) - len(wanted),
        "pages_listed": F("pages_listed") + 1,
    }
    if last:
        changes["status"] = JobStatus.SCANNING
    moved = ScanJob.objects.filter(pk=job.pk, status=JobStatus.LISTING, list_token=job.list_token).update(
        **changes
    )
    if moved:
        job.list_token = page.next_token or ""
    return bool(moved)


def list_slice(
    job_id: str,
    *,
    max_pages: int | None = None,
    slice_seconds: float = SLICE_SECONDS,
    page_size: int = PAGE_SIZE,
    max_pending: int = MAX_PENDING,
) -> str:
    """List one slice of a job. Returns "continue" (send the next slice), "wait" (too many scans
    outstanding: send it later), "done" (listing finished) or "stop" (cancelled, failed, not ours)."""
    job = ScanJob.objects.select_related("bucket__account", "bucket__policy").filter(pk=job_id).first()
    if job is None:
        return "stop"
    ScanJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.LISTING, started_at=timezone.now()
    )
    job.refresh_from_db(fields=["status", "list_token", "listed", "scanned", "skipped", "signature_version"])
    if job.status != JobStatus.LISTING:
        return "stop"
    if job.pending >= max_pending:
        return "wait"
    try:
        if not job.signature_version:
            version = current_signature_version()
            ScanJob.objects.filter(pk=job.pk, signature_version="").update(signature_version=version)
            job.refresh_from_db(fields=["signature_version"])
        if job.key:
            return _enqueue_one(job)
        policy = job.bucket.effective_policy()
        s3 = s3_client_for(job.bucket)
        started = time.monotonic()
        pages = 0
        for page in s3ops.iter_keys(
            s3,
            job.bucket.name,
            job.prefix,
            versions=job.all_versions,
            token=job.list_token or None,
            page_size=page_size,
        ):
            if not enqueue_page(job, page, policy, job.signature_version):
                # Cancelled meanwhile (drop the items this page added) or another listing moved on.
                if not ScanJob.objects.running().filter(pk=job.pk).exists():
                    ScanJobItem.objects.filter(job=job).delete()
                return "stop"
            if page.next_token is None:
                try_finish(str(job.pk))
                return "done"
            pages += 1
            if max_pages is not None and pages >= max_pages:
                return "continue"
            if time.monotonic() - started > slice_seconds:
                return "continue"
            job.refresh_from_db(fields=["listed", "scanned", "skipped"])
            if job.pending >= max_pending:
                return "wait"
        return "done"
    except (s3ops.PermanentS3Error, aws.AssumeRoleFailed) as exc:
        fail_job(job, getattr(exc, "message", str(exc)))
        return "stop"


def _enqueue_one(job: ScanJob) -> str:
    """A job of one object (the scan API's async mode): always scanned, never skipped."""
    dedupe = hashlib.sha256(f"job\0{job.pk}".encode()).hexdigest()
    ref = s3ops.ObjectRef(
        bucket=job.bucket.name, key=job.key, version_id=job.version_id or None, etag="", size=0
    )
    ScanJobItem.objects.bulk_create(
        [ScanJobItem(tenant_id=job.tenant_id, job_id=job.pk, dedupe_key=dedupe)], ignore_conflicts=True
    )
    message = _scan_messages(job, [(ref, dedupe)])[0]
    message.kwargs["size"] = None
    _send([message])
    ScanJob.objects.filter(pk=job.pk, status=JobStatus.LISTING).update(
        status=JobStatus.SCANNING, listed=1, queued=1, pages_listed=1
    )
    try_finish(str(job.pk))
    return "done"


# --- counting what comes back ------------------------------------------------------------------------


def wanted_items(job_id: str, dedupe_key: str) -> QuerySet[ScanJobItem]:
    """The item of a job's scan while the scan should still run: its job is active and the scan was not
    counted yet. The scan actor asks for it in the query that loads the bucket."""
    return ScanJobItem.objects.filter(
        job_id=uuid.UUID(str(job_id)), dedupe_key=dedupe_key, done=False, job__status__in=ACTIVE_JOB_STATUSES
    )


def scan_wanted(job_id: str, dedupe_key: str) -> bool:
    """Whether a job's scan should still run (``wanted_items`` as a statement of its own)."""
    return wanted_items(job_id, dedupe_key).exists()


def count_scan(job_id: str, dedupe_key: str, result: ScanResult | None) -> bool:
    """Count one finished scan toward its job, once. Returns whether it counted.

    The job is finished here only when the counters say every listed object is accounted for (the
    listing's own end finishes a job whose scans all came back before it)."""
    counter = "skipped"
    if result is not None and result.verdict:
        counter = _VERDICT_COUNTER.get(Verdict(result.verdict), "errors")
    job_uuid = uuid.UUID(str(job_id))
    if connection.vendor == "postgresql":
        status = _count_in_one_statement(job_uuid, dedupe_key, counter, result)
        if status == JobStatus.DONE:
            _finished(job_id)  # by this count: a job counted done is never counted again (no items)
        return status is not None
    counts = _count_in_a_transaction(job_uuid, dedupe_key, counter, result)
    if counts is None:
        return False
    status, listed, accounted = counts
    if status == JobStatus.SCANNING and accounted >= listed:
        try_finish(job_id)
    return True


_COUNTED = {"skipped", *_VERDICT_COUNTER.values()}


def _count_in_one_statement(
    job_id: uuid.UUID, dedupe_key: str, counter: str, result: ScanResult | None
) -> str | None:
    """Mark the item done, bump the job's counters and, when this count accounts for the last listed
    object of a job whose listing ended, mark it done: one statement (all threads of all workers update
    the one job row: one short row lock per scan). Returns the job's status after it, None if the item
    was counted already."""
    assert counter in _COUNTED  # noqa: S101 - names a column in the SQL below; never from input
    job_table, item_table = ScanJob._meta.db_table, ScanJobItem._meta.db_table
    bump = f"{counter} = {counter} + 1"
    params: list[Any] = [job_id, dedupe_key]
    if counter != "skipped":
        bump = f"scanned = scanned + 1, {bump}, result_id = %s"
        params.append(result.pk if result is not None else None)
    # SET reads the row as it was before this statement: + 1 is this count. try_finish's condition.
    last = "status = %s AND scanned + skipped + 1 >= listed"
    finish = f"status = CASE WHEN {last} THEN %s ELSE status END"
    finish += f", finished_at = CASE WHEN {last} THEN %s ELSE finished_at END"
    params += [JobStatus.SCANNING, JobStatus.DONE, JobStatus.SCANNING, timezone.now(), job_id]
    sql = (
        f"WITH marked AS (UPDATE {item_table} SET done = true"  # noqa: S608 - names only, values bound
        f" WHERE job_id = %s AND dedupe_key = %s AND NOT done RETURNING 1)"
        f" UPDATE {job_table} SET {bump}, {finish} WHERE id = %s AND EXISTS (SELECT 1 FROM marked)"
        f" RETURNING status"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return str(row[0]) if row else None


def _count_in_a_transaction(
    job_id: uuid.UUID, dedupe_key: str, counter: str, result: ScanResult | None
) -> tuple[str, int, int] | None:
    with transaction.atomic():
        item = ScanJobItem.objects.filter(job_id=job_id, dedupe_key=dedupe_key, done=False)
        if not item.update(done=True):
            return None
        changes: dict[str, Any] = {counter: F(counter) + 1}
        if counter != "skipped":
            changes.update(scanned=F("scanned") + 1, result=result)
        ScanJob.objects.filter(pk=job_id).update(**changes)
        row = ScanJob.objects.filter(pk=job_id).values_list("status", "listed", "scanned", "skipped").first()
    if row is None:
        return None
    return (row[0], row[1], row[2] + row[3])


def try_finish(job_id: str) -> bool:
    """Mark the job done if listing ended and every listed object is accounted for."""
    finished = (
        ScanJob.objects.filter(pk=job_id, status=JobStatus.SCANNING)
        .alias(accounted=F("scanned") + F("skipped"))
        .filter(accounted__gte=F("listed"))
        .update(status=JobStatus.DONE, finished_at=timezone.now())
    )
    if finished:
        _finished(job_id)
    return bool(finished)


def _finished(job_id: str) -> None:
    ScanJobItem.objects.filter(job_id=uuid.UUID(str(job_id))).delete()
    log.info("job done", extra={"job": job_id})


def scan_finished(
    tenant: Tenant, bucket: Bucket, job_id: str | None, dedupe_key: str, result: ScanResult | None
) -> None:
    """A scan ended (``pipeline.JobHooks``): a job's scan is counted, and malware found may start a
    scan of the rest of the bucket."""
    if job_id:
        count_scan(job_id, dedupe_key, result)
    if result is not None and result.verdict == Verdict.INFECTED:
        scan_rest_after_infected(tenant, bucket, job_id)


JOB_HOOKS = pipeline.JobHooks(scan_wanted=scan_wanted, scan_finished=scan_finished, wanted_items=wanted_items)


def scan_rest_after_infected(tenant: Tenant, bucket: Bucket, job_id: str | None) -> ScanJob | None:
    """If the policy says so, scan the rest of a bucket where malware was just found (known objects are
    skipped, so this reads only what was never scanned)."""
    if not bucket.effective_policy().scan_bucket_on_infected:
        return None
    whole = ScanJob.objects.filter(bucket=bucket, prefix="", key="")
    if job_id and whole.filter(pk=job_id).exists():
        return None  # this finding came from a scan of the whole bucket already
    if whole.running().exists():
        return None
    recent = timezone.now() - INFECTED_RESCAN_INTERVAL
    if whole.filter(trigger=JobTrigger.INFECTED, created_at__gte=recent).exists():
        return None
    try:
        return start_bucket_scan(tenant, None, bucket, "", JobTrigger.INFECTED)
    except ServiceError:
        return None


# --- the listing actor -------------------------------------------------------------------------------

LISTING_QUEUE = "listing"
LIST_MAX_RETRIES = 10


def _job_and_tenant(job_id: str) -> tuple[Tenant, tuple[Any, ...]] | None:
    """The job with its tenant, for a listing message: it names the job only (the job knows its
    tenant), as every release has sent it, so messages queued before an upgrade run as they did."""
    with scopes_disabled():
        job = (
            ScanJob.objects.select_related("tenant")
            .filter(pk=job_id, tenant__status=Tenant.Status.ACTIVE)
            .first()
        )
    return None if job is None else (job.tenant, (job,))


@tenant_actor(
    load=_job_and_tenant,
    queue_name=LISTING_QUEUE,
    max_retries=LIST_MAX_RETRIES,
    min_backoff=5_000,
    max_backoff=600_000,
    time_limit=900_000,
)
def list_job(tenant: Tenant, job: ScanJob) -> None:
    """List one slice of a job, then send the next slice. Safe to run twice: the checkpoint is a
    conditional update, so a second copy stops at its first page. On the "listing" queue, so a huge
    listing never delays event scans."""
    job_id = str(job.pk)
    try:
        outcome = list_slice(job_id)
    except (s3ops.TransientS3Error, engine.EngineUnavailable) as exc:
        if not is_final_attempt():
            raise
        fail_job(job, f"gave up listing after retries: {getattr(exc, 'message', exc)}")
        return
    if outcome == "continue":
        list_job.send(job_id)
    elif outcome == "wait":
        list_job.send_with_options(args=(job_id,), delay=BACKLOG_DELAY_MS)

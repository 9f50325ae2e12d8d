"""Cron schedules of bucket scans, and rescans when the signature database changes.

``run_scheduler`` calls ``tick`` about every half minute. Several scheduler processes may run: a
schedule's firing is claimed by a conditional update of its ``next_run_at``, and a job is never started
for a target (bucket and prefix) while another runs there (``ScanJob``'s partial unique constraint).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from accounts.models import Tenant
from accounts.services import Actor, ServiceError, get_owned, record
from scanning.buckets.discovery import discover_all_accounts
from scanning.fleet import agents as fleet
from scanning.fleet import signatures as signature_updates
from scanning.jobs import services as jobs
from scanning.models import Bucket, JobTrigger, ScanJob, ScanPolicy, ScanResult, Schedule

log = logging.getLogger(__name__)

SIGNATURE_CHECK_EVERY = timedelta(minutes=10)
# Linked accounts' buckets are discovered again this often (new buckets appear, removed ones are marked).
DISCOVERY_EVERY = timedelta(hours=6)
# Lost agents, stale signatures, silent engines (scanning/fleet/agents.py).
FLEET_CHECK_EVERY = timedelta(minutes=1)
# How often S3AV_HEARTBEAT_FILE is touched while a tick is busy with a signature update.
HEARTBEAT_FILE_EVERY = 10.0


# --- writes ------------------------------------------------------------------------------------------


def _check_bucket(tenant: Tenant, bucket: Bucket) -> None:
    get_owned(Bucket, tenant, bucket, field="bucket")


@transaction.atomic
def create_schedule(
    tenant: Tenant, actor: Actor, bucket: Bucket, cron: str, prefix: str = "", enabled: bool = True
) -> Schedule:
    _check_bucket(tenant, bucket)
    schedule = Schedule(
        tenant=tenant,
        bucket=bucket,
        prefix=prefix,
        cron=cron.strip(),
        enabled=enabled,
        created_by=actor.label,
    )
    schedule.full_clean()
    schedule.next_run_at = schedule.next_after(timezone.now())
    schedule.save()
    record(tenant, actor, "schedule.create", schedule, {"cron": schedule.cron, "prefix": prefix})
    return schedule


@transaction.atomic
def update_schedule(tenant: Tenant, actor: Actor, schedule: Schedule, **changes: Any) -> Schedule:
    get_owned(Schedule, tenant, schedule)
    unknown = set(changes) - {"bucket", "prefix", "cron", "enabled"}
    if unknown:
        raise ServiceError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    if "bucket" in changes:
        _check_bucket(tenant, changes["bucket"])
    for name, value in changes.items():
        setattr(schedule, name, value.strip() if name == "cron" else value)
    schedule.full_clean()
    if "cron" in changes or "enabled" in changes:
        schedule.next_run_at = schedule.next_after(timezone.now())
    schedule.save()
    record(tenant, actor, "schedule.update", schedule, {k: str(v) for k, v in changes.items()})
    return schedule


@transaction.atomic
def delete_schedule(tenant: Tenant, actor: Actor, schedule: Schedule) -> None:
    get_owned(Schedule, tenant, schedule)
    record(tenant, actor, "schedule.delete", schedule, {"cron": schedule.cron})
    schedule.delete()


# --- the scheduler -----------------------------------------------------------------------------------


@dataclass
class TickReport:
    fired: list[str] = field(default_factory=list)  # job ids started by schedules
    busy: int = 0  # schedules due whose target was still being scanned
    failed: int = 0  # schedules or policies whose work raised (logged; the others went on)
    rescans: list[str] = field(default_factory=list)  # job ids started for new signatures
    discovery: bool = False  # whether periodic bucket discovery was sent
    signatures: str = ""  # the signature update's status when one ran this tick
    alerts: list[str] = field(default_factory=list)  # operational alerts raised (lost agents, ...)


def run_due_schedules(now: datetime | None = None) -> TickReport:
    now = now or timezone.now()
    report = TickReport()
    with scopes_disabled():
        due = list(
            Schedule.objects.filter(enabled=True, next_run_at__lte=now, tenant__status=Tenant.Status.ACTIVE)
            .select_related("tenant", "bucket__account")
            .order_by("next_run_at")[:500]
        )
    for schedule in due:
        # One tenant's bad row (a cron that no longer parses, a date out of range) must not stop the
        # other tenants' schedules: log it and carry on.
        try:
            with transaction.atomic(), scope(tenant=schedule.tenant):
                _fire(schedule, now, report)
        except Exception:
            report.failed += 1
            log.exception(
                "schedule failed", extra={"schedule": str(schedule.pk), "tenant": str(schedule.tenant_id)}
            )
    return report


def _fire(schedule: Schedule, now: datetime, report: TickReport) -> None:
    # Claim this firing: of several schedulers exactly one moves next_run_at on.
    claimed = Schedule.objects.filter(pk=schedule.pk, next_run_at=schedule.next_run_at).update(
        next_run_at=schedule.next_after(now), last_run_at=now
    )
    if not claimed:
        return
    if ScanJob.objects.running().for_target(schedule.bucket, schedule.prefix).exists():
        report.busy += 1
        log.info("schedule skipped: target busy", extra={"schedule": str(schedule.pk)})
        return
    try:
        with transaction.atomic():
            job = jobs.start_bucket_scan(
                schedule.tenant, None, schedule.bucket, schedule.prefix, JobTrigger.SCHEDULE
            )
            Schedule.objects.filter(pk=schedule.pk).update(last_job=job)
    except ServiceError:
        report.busy += 1
        return
    report.fired.append(str(job.pk))


def rescan_after_signature_change(
    now: datetime | None = None, signature_version: str | None = None
) -> list[str]:
    """For protected buckets whose policy asks for it, rescan objects modified in the last N days once
    per new signature version, if the bucket has verdicts in that window made with older signatures."""
    now = now or timezone.now()
    current = signature_version or jobs.current_signature_version()
    started: list[str] = []
    if current.endswith("-reloading"):
        # clamd has not loaded the set on disk yet (scanning/pipeline/scanner.py): rescan once it runs it, not
        # for the set in between too.
        return started
    with scopes_disabled():
        policies = list(
            ScanPolicy.objects.filter(
                rescan_days_on_signature_change__gt=0, tenant__status=Tenant.Status.ACTIVE
            ).select_related("tenant")
        )
    for policy in policies:
        # Each tenant's policy on its own: one bad row (say, a window reaching before year 1) is logged
        # and the other tenants' rescans go on.
        try:
            with transaction.atomic(), scope(tenant=policy.tenant):
                started.extend(_rescan_policy(policy, now, current))
        except Exception:
            log.exception(
                "signature-change rescan failed",
                extra={"policy": str(policy.pk), "tenant": str(policy.tenant_id)},
            )
    return started


def _rescan_policy(policy: ScanPolicy, now: datetime, current: str) -> list[str]:
    started: list[str] = []
    covered = Q(policy=policy) | (Q(policy__isnull=True) if policy.is_default else Q(pk__in=[]))
    buckets = Bucket.objects.filter(tenant=policy.tenant, protected=True).filter(covered)
    window = now - timedelta(days=policy.rescan_days_on_signature_change)
    for bucket in buckets.select_related("account"):
        if ScanJob.objects.filter(
            bucket=bucket, trigger=JobTrigger.SIGNATURES, signature_version=current
        ).exists():
            continue
        stale = (
            ScanResult.objects.final()
            .filter(tenant=policy.tenant, bucket=bucket, scanned_at__gte=window)
            .exclude(signature_version=current)
            .exists()
        )
        if not stale:
            continue
        try:
            job = jobs.start_bucket_scan(
                policy.tenant,
                None,
                bucket,
                "",
                JobTrigger.SIGNATURES,
                modified_after=window,
                signature_version=current,
            )
        except ServiceError:
            continue  # a scan of the bucket runs; the next check tries again
        started.append(str(job.pk))
    return started


class Scheduler:
    """What one ``run_scheduler`` process does each tick."""

    def __init__(self) -> None:
        self.last_signature_check: datetime | None = None
        self.last_discovery: datetime | None = None
        self.last_signature_update: datetime | None = None
        self.last_fleet_check: datetime | None = None

    def tick(self, now: datetime | None = None) -> TickReport:
        now = now or timezone.now()
        if settings.HEARTBEAT_FILE:
            Path(settings.HEARTBEAT_FILE).touch()  # the loop runs: a container's liveness check
        report = run_due_schedules(now)
        if self._signature_update_due(now):
            self.last_signature_update = now
            report.signatures = self._update_signatures()
            if report.signatures == "updated":
                self.last_signature_check = None  # rescans for the new signatures in this tick
        if self.last_fleet_check is None or now - self.last_fleet_check >= FLEET_CHECK_EVERY:
            self.last_fleet_check = now
            report.alerts = self._check_fleet(now)
        if self.last_signature_check is None or now - self.last_signature_check >= SIGNATURE_CHECK_EVERY:
            self.last_signature_check = now
            try:
                report.rescans = rescan_after_signature_change(now)
            except Exception:  # clamd down: schedules keep firing; the next check tries again
                log.exception("signature check failed")
        if self.last_discovery is None or now - self.last_discovery >= DISCOVERY_EVERY:
            self.last_discovery = now
            try:
                discover_all_accounts.send()
                report.discovery = True
            except Exception:  # broker down: the next tick tries again
                self.last_discovery = None
                log.exception("could not send bucket discovery")
        return report

    def _signature_update_due(self, now: datetime) -> bool:
        if not settings.SIGNATURES_SOURCE:
            return False
        last = self.last_signature_update
        return last is None or now - last >= timedelta(seconds=settings.SIGNATURES_INTERVAL)

    def _update_signatures(self) -> str:
        try:
            with _heartbeat_file_kept_fresh():
                record = signature_updates.update_signatures()
        except Exception:  # the database or the disk: the next interval tries again
            log.exception("signature update failed")
            return "failed"
        return record.status if record is not None else ""

    def _check_fleet(self, now: datetime) -> list[str]:
        try:
            fleet.forget_old_agents(now)
            return [kind for kind, _ in fleet.check_fleet(now)]
        except Exception:  # the next check tries again
            log.exception("fleet check failed")
            return []


@contextlib.contextmanager
def _heartbeat_file_kept_fresh() -> Iterator[None]:
    """Touch S3AV_HEARTBEAT_FILE meanwhile. An update may take minutes (a full download, the test load
    and the reload of the official databases), each step bounded by its own timeout; a liveness check on
    the file's age must not kill the scheduler in the middle of it."""
    path = settings.HEARTBEAT_FILE
    if not path:
        yield
        return
    done = threading.Event()

    def touch() -> None:
        while not done.wait(HEARTBEAT_FILE_EVERY):
            with contextlib.suppress(OSError):
                Path(path).touch()

    thread = threading.Thread(target=touch, name="s3av-heartbeat-file", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)

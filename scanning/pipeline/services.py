"""Write operations of scanning: request a scan, run it, act on the verdict, triage.

Each public function takes the tenant and the acting identity first and writes the audit event
where a person or key acted. Slow S3 and clamd work happens outside database transactions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NoReturn

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Exists, Q, QuerySet, Value, When
from django.utils import timezone
from django_scopes import scopes_disabled
from dramatiq.middleware import CurrentMessage

from accounts.models import Tenant
from accounts.services import Actor, ServiceError, get_owned, record
from linked_accounts.aws import AssumeRoleFailed, client_for
from s3av.actors import enqueue_on_commit, is_final_attempt, tenant_actor
from scanning.engine import clamd as engine
from scanning.fleet.stats import STATS
from scanning.models import (
    ACTION_FLAGS,
    MOVED_AWAY,
    POLICY_ACTION_FLAGS,
    Bucket,
    InfectedAction,
    ProblemAction,
    Resolution,
    ScanPolicy,
    ScanResult,
    TriageAction,
    Trigger,
    Verdict,
)
from scanning.notifications import actors as notifications
from scanning.pipeline import promotion, scanner, usage
from scanning.s3 import ops as s3ops

log = logging.getLogger(__name__)


class ScanInProgress(Exception):
    """Another worker holds a live claim on this scan; try again later."""


def dedupe_key_for(bucket: Bucket, key: str, version_id: str | None, etag: str | None, force: bool) -> str:
    if force or not etag:
        # Nothing pins the bytes (or a person asked again): this is a scan of its own.
        return uuid.uuid4().hex
    raw = f"{bucket.pk}\0{key}\0{version_id or ''}\0{etag.strip(chr(34))}"
    return hashlib.sha256(raw.encode()).hexdigest()


def request_scan(
    tenant: Tenant,
    actor: Actor | None,
    bucket: Bucket,
    key: str,
    *,
    version_id: str | None = None,
    etag: str | None = None,
    size: int | None = None,
    trigger: str = Trigger.EVENT,
    job_id: str | None = None,
    force: bool = False,
    sequencer: str | None = None,
) -> str:
    """Enqueue a scan of one object version after the current transaction commits.

    Requests for the same (bucket, key, version id, ETag) share a dedupe key and so end in one scan;
    the S3 event's ``sequencer`` then tells the same bytes uploaded again from a redelivered event.
    Returns the dedupe key.
    """
    get_owned(Bucket, tenant, bucket, field="bucket")
    dedupe = dedupe_key_for(bucket, key, version_id, etag, force)
    message = scan_object.message(
        str(tenant.pk),
        str(bucket.pk),
        key,
        version_id=version_id,
        etag=etag,
        size=size,
        trigger=trigger,
        dedupe_key=dedupe,
        job_id=job_id,
        **({"sequencer": sequencer} if sequencer else {}),
    )
    enqueue_on_commit(message, scan_object.broker)
    if actor is not None and trigger in {Trigger.MANUAL, Trigger.API}:
        record(tenant, actor, "scan.request", bucket, {"key": key, "version_id": version_id})
    return dedupe


# --- running a scan ----------------------------------------------------------------------------------


def clamd_client(address: str | None = None, timeout: float = 30.0) -> engine.ClamdClient:
    """The deployment's clamd (or the one at ``address``), with its timeouts and stream limit."""
    return engine.ClamdClient(
        address or settings.CLAMD_ADDRESS,
        timeout=timeout,
        scan_timeout=settings.CLAMD_TIMEOUT,
        stream_max_length=settings.MAX_OBJECT_SIZE,
    )


_identity: scanner.EngineIdentity | None = None


def engine_identity() -> scanner.EngineIdentity:
    global _identity
    if _identity is None:
        _identity = scanner.EngineIdentity(clamd_client(), db_dir=str(settings.CLAMAV_DB_DIR))
    return _identity


def forget_engine_identity() -> None:
    """After a signature update: what this process records next names the new set."""
    global _identity
    _identity = None


def _claim(
    tenant: Tenant, bucket: Bucket, key: str, dedupe_key: str, trigger: str, job_id: str | None
) -> ScanResult:
    """Create or take over the claim row for this scan. Raises ScanInProgress if another worker has it."""
    lease = ScanResult.lease(settings.SCAN_LEASE_SECONDS)
    claim = ScanResult(
        tenant=tenant,
        bucket=bucket,
        bucket_name=bucket.name,
        key=key,
        dedupe_key=dedupe_key,
        trigger=trigger,
        claimed_until=lease,
        attempts=1,
    )
    try:
        # A savepoint only inside a transaction: in autocommit (the actor) a failed INSERT breaks
        # nothing, and the savepoint would cost two more statements per scan.
        with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
            claim.save(force_insert=True)
        return claim
    except IntegrityError:
        pass
    existing = ScanResult.objects.get(tenant=tenant, dedupe_key=dedupe_key)
    if existing.is_final:
        return existing
    # Take over only a claim whose lease ran out (its worker died); the conditional update makes
    # exactly one of several redelivered copies win.
    taken = (
        ScanResult.objects.filter(pk=existing.pk, verdict="", claimed_until=existing.claimed_until)
        .filter(claimed_until__lt=timezone.now())
        .update(claimed_until=lease, attempts=existing.attempts + 1)
    )
    if existing.claimed_until is None:
        taken = ScanResult.objects.filter(pk=existing.pk, verdict="", claimed_until__isnull=True).update(
            claimed_until=lease, attempts=existing.attempts + 1
        )
    if not taken:
        raise ScanInProgress(f"scan {existing.pk} is claimed until {existing.claimed_until}")
    existing.refresh_from_db()
    return existing


def _other_verdicts(request: ScanRequest, result: ScanResult) -> bool:
    """One look at the key's other results once this scan has an outcome: whether a newer verdict of
    the same version exists (then this one must not overwrite its tags or act). Raises _Moot with the
    release when these bytes are an operator's released false positive (the release's own copy event,
    or a duplicate of it): recording and acting on them would quarantine them again.

    Asked after the read, not before it: a newer verdict recorded while this scan ran counts, and a
    released object's copy event costs one read and scan that is then dropped (releases are rare)."""
    newer = Q(version_id=result.version_id, created_at__gt=result.created_at) & ~Q(verdict="")
    newer &= ~Q(pk=result.pk)
    # Matched on the bytes (ETag), not the version: the release records its result before it copies,
    # so the copy's event finds it even before the copy's version id is known. A person's own scan
    # request (manual) is done all the same; an ETag is known once the object was pinned.
    released = Q(etag=result.etag, verdict=Verdict.INFECTED_ALLOWED)
    looks_for_release = request.trigger != Trigger.MANUAL and bool(result.etag)
    found = (
        ScanResult.objects.filter(
            tenant=request.tenant, bucket_name=result.bucket_name, bucket=request.bucket, key=request.key
        )
        .filter(newer | released if looks_for_release else newer)
        .order_by(Case(When(released, then=Value(0)), default=Value(1)), "-created_at")
        # The two columns the answer needs, not a whole row: a model instance of every column costs
        # more CPU to compile and build than the rest of this check (the release is loaded if found).
        .values_list("pk", "verdict", "etag")
        .first()
    )
    if found is None:
        return False
    pk, verdict, etag = found
    if looks_for_release and verdict == Verdict.INFECTED_ALLOWED and etag == result.etag:
        raise _Moot(ScanResult.objects.get(pk=pk, tenant=request.tenant))
    return True


def _to_second(when: datetime | None) -> datetime | None:
    # GetObject's Last-Modified header has whole seconds; a listing may add milliseconds.
    return when.replace(microsecond=0) if when is not None else None


def _uploaded_again(bucket: Bucket, key: str, result: ScanResult) -> s3ops.ObjectRef | None:
    """The object now at ``key`` when it holds the bytes ``result`` is about but is another object
    (the same bytes uploaded again), else None.

    A request that names no version maps every upload of the same bytes to one dedupe key; a new
    object needs its own tags, actions and notifications all the same.
    """
    if not result.etag:
        return None
    try:
        current = s3ops.head_object(client_for(bucket.account, "s3", bucket.region), bucket.name, key)
    except s3ops.PermanentS3Error:
        return None  # gone: nothing new to scan
    if current.etag != result.etag:
        return None  # other bytes: their own event scans them
    if result.action_status == ScanResult.ActionStatus.DONE and result.moved_away:
        return current  # s3av took the scanned version away: this one is new
    if result.verdict == Verdict.ERROR and result.object_gone:
        return current  # it was gone when scanned: what is there now was uploaded since
    if current.version_id and result.version_id and current.version_id != result.version_id:
        return current
    scanned, now = _to_second(result.last_modified), _to_second(current.last_modified)
    if scanned is not None and now is not None and scanned != now:
        return current  # overwritten in place (unversioned, or the "null" version of a suspended bucket)
    return None


def _later_event(sequencer: str | None, scanned: str) -> bool | None:
    """Whether an event with ``sequencer`` is a later write of the key than the one ``scanned`` came
    from; None when either is unknown. S3's rule: right-pad the shorter with zeros, compare as text."""
    if not sequencer or not scanned:
        return None
    width = max(len(sequencer), len(scanned))
    return sequencer.upper().ljust(width, "0") > scanned.upper().ljust(width, "0")


def _dedupe_key_of_event(dedupe_key: str, sequencer: str) -> str:
    return hashlib.sha256(f"{dedupe_key}\0sequencer\0{sequencer}".encode()).hexdigest()


def _dedupe_key_of_upload(dedupe_key: str, current: s3ops.ObjectRef) -> str:
    # Deterministic: the late duplicates of the new upload's own event end in the same scan.
    when = _to_second(current.last_modified)
    raw = f"{dedupe_key}\0{current.version_id or ''}\0{when.isoformat() if when else ''}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _moved_by_us(
    tenant: Tenant, bucket: Bucket, key: str, version_id: str | None, etag: str | None
) -> ScanResult | None:
    if not version_id and not etag:
        return None
    found = ScanResult.objects.final().filter(tenant=tenant, bucket=bucket, key=key)
    if version_id:
        found = found.filter(version_id=version_id)
    if etag:
        found = found.filter(etag=etag.strip('"'))
    return found.filter(MOVED_AWAY | Q(promoted=True)).order_by("-created_at").first()


_QUARANTINE_COPY_RE = re.compile(
    r"(?:^|/)(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/"
    r"(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/"
)


def _own_quarantine_copy(tenant: Tenant, bucket: Bucket, key: str) -> bool:
    """Whether ``key`` in ``bucket`` is a copy s3av's quarantine made (``quarantine_key_for``).

    Decided from the key and the finding it names, not from the finding's recorded copy: the copy's
    S3 event can arrive before the move finishes and the finding records where the copy went. Someone
    who may write to the quarantine bucket and knows a finding's id could place an object there that
    is not scanned; it stays untagged, so the read gate keeps it unreadable all the same.
    """
    candidates = {m["id"]: m for m in _QUARANTINE_COPY_RE.finditer(key)}
    if not candidates:
        return False
    findings = ScanResult.objects.filter(tenant=tenant, pk__in=list(candidates)).select_related(
        "bucket__policy"
    )
    for finding in findings:
        match = candidates[str(finding.pk)]
        if key[match.end() :] != finding.key or match["bucket"] != finding.bucket_name:
            continue
        destination = finding.quarantine_bucket
        if not destination and finding.bucket is not None:
            destination = finding.bucket.effective_policy().quarantine_bucket
        if destination == bucket.name:
            return True
    return False


def _renew_claim(result: ScanResult) -> None:
    """Extend this worker's lease, only while the claim is still this worker's: once another worker took
    it over (this one stalled past its lease), the claim stays the other's and ``_holds_lease`` says so."""
    lease = ScanResult.lease(settings.SCAN_LEASE_SECONDS)
    mine = ScanResult.objects.filter(pk=result.pk, verdict="", claimed_until=result.claimed_until)
    if mine.update(claimed_until=lease):
        result.claimed_until = lease  # what _holds_lease reads


def _release_claim(result: ScanResult) -> None:
    ScanResult.objects.filter(pk=result.pk, verdict="").update(claimed_until=None)


# --- the hooks of bucket scans -----------------------------------------------------------------------


@dataclass(frozen=True)
class JobHooks:
    """What a bucket scan (``scanning/jobs``) does around each of its scans, handed in at start-up
    (``scanning/apps.py``): jobs sit above the pipeline, which must not import them.

    ``scan_wanted(job_id, dedupe_key)``: False turns the scan into a no-op (its job was cancelled, or
    the scan was counted already); ``wanted_items(job_id, dedupe_key)`` is the same question as rows
    (none: not wanted), which the scan actor asks in the query that loads its bucket.
    ``scan_finished(tenant, bucket, job_id, dedupe_key, result)``: the scan ended without raising (with
    or without a job): count it, maybe scan the rest of the bucket.
    """

    scan_wanted: Callable[[str, str], bool]
    scan_finished: Callable[[Tenant, Bucket, str | None, str, ScanResult | None], None]
    wanted_items: Callable[[str, str], QuerySet[Any]] | None = None


def _no_job_wanted(job_id: str, dedupe_key: str) -> bool:
    return True


def _no_job_finished(*args: Any) -> None:
    return None


job_hooks = JobHooks(scan_wanted=_no_job_wanted, scan_finished=_no_job_finished)


def connect_job_hooks(hooks: JobHooks) -> None:
    global job_hooks
    job_hooks = hooks


# --- running a scan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanRequest:
    """One scan asked for: the object version (as far as the request pins it) and how to scan it."""

    tenant: Tenant
    bucket: Bucket
    key: str
    version_id: str | None
    etag: str | None
    trigger: str
    dedupe_key: str
    job_id: str | None = None
    final_attempt: bool = False
    size: int | None = None
    sequencer: str | None = None


class _Moot(Exception):
    """The claimed scan is not needed after all: its claim is dropped and ``answer`` returned."""

    def __init__(self, answer: ScanResult | None) -> None:
        super().__init__("moot")
        self.answer = answer


def run_scan(
    tenant: Tenant,
    bucket: Bucket,
    key: str,
    *,
    version_id: str | None,
    etag: str | None,
    trigger: str,
    dedupe_key: str,
    job_id: str | None = None,
    final_attempt: bool = False,
    size: int | None = None,
    sequencer: str | None = None,
    job_wanted: bool | None = None,
) -> ScanResult | None:
    """Scan one object version and act on the verdict; safe to run twice for the same dedupe key.

    With the ETag and size from the S3 event or the listing, the object is pinned without a HeadObject
    (GetObject carries IfMatch, so other bytes are refused); otherwise HeadObject pins it.

    Transient failures raise (the actor retries) unless ``final_attempt``: then the verdict is Error.
    Returns None when the request is moot (key excluded by policy, object replaced since the event).

    A request without a version id ends pinned to one all the same: the version GetObject (or, for an
    object too large to read, HeadObject) answered with is recorded and acted on. The job of a scan
    (``job_hooks``) skips it when cancelled (``job_wanted``, when the caller asked already) and counts
    it when it ends; exceptions (retries) count nothing.
    """
    if job_id and not (job_wanted if job_wanted is not None else job_hooks.scan_wanted(job_id, dedupe_key)):
        return None
    request = ScanRequest(
        tenant, bucket, key, version_id, etag, trigger, dedupe_key, job_id, final_attempt, size, sequencer
    )
    answer = _scan_once(request, follow_uploads=True)
    if isinstance(answer, ScanRequest):
        # The same bytes are a new object (uploaded again): scanned and acted on once more, under a
        # key of its own, and not followed further. The job (if any) counts it under the first key.
        answer = _scan_once(answer, follow_uploads=False)
    assert not isinstance(answer, ScanRequest)
    job_hooks.scan_finished(tenant, bucket, job_id, dedupe_key, answer)
    return answer


def _scan_once(request: ScanRequest, follow_uploads: bool) -> ScanResult | ScanRequest | None:
    """Scan the request's object, or find its verdict; a ScanRequest when a new upload of the same bytes
    needs a scan of its own."""
    tenant, bucket, key = request.tenant, request.bucket, request.key
    policy = bucket.effective_policy()
    if not policy.wants(key):
        return None
    if (request.trigger in {Trigger.EVENT, Trigger.SCHEDULE} or request.job_id) and _own_quarantine_copy(
        tenant, bucket, key
    ):
        return None  # s3av's own write: scanning it would quarantine the copy again, and again
    result = _claim(tenant, bucket, key, request.dedupe_key, request.trigger, request.job_id)
    if result.is_final:
        return _scanned_already(request, policy, result, follow_uploads)
    try:
        outcome = _pin_and_scan(request, policy, result)
        newer = _other_verdicts(request, result)
    except _Moot as moot:
        ScanResult.objects.filter(pk=result.pk, verdict="").delete()
        return moot.answer
    return _record_verdict(request, policy, result, outcome, newer)


def _scanned_already(
    request: ScanRequest, policy: ScanPolicy, result: ScanResult, follow_uploads: bool
) -> ScanResult | ScanRequest:
    """A final result for this dedupe key: finish its actions; say whether the key holds a new object
    with the same bytes (which needs a scan of its own)."""
    if result.action_status == ScanResult.ActionStatus.PENDING:
        _act(request.tenant, request.bucket, policy, result, request.final_attempt)
    if not follow_uploads or request.version_id:
        return result
    later = _later_event(request.sequencer, result.sequencer)
    if later:
        # A later write of the same bytes (S3's sequencer says so, even within one second).
        return replace(
            request,
            version_id=None,
            dedupe_key=_dedupe_key_of_event(request.dedupe_key, str(request.sequencer)),
        )
    # Without sequencers to compare, ask S3 whether the key holds another object with these bytes.
    current = _uploaded_again(request.bucket, request.key, result) if later is None else None
    if current is None:
        return result
    # The derived key is the new upload's for good.
    return replace(
        request,
        version_id=current.version_id,
        etag=current.etag,
        size=current.size,
        dedupe_key=_dedupe_key_of_upload(request.dedupe_key, current),
    )


def _pin_and_scan(request: ScanRequest, policy: ScanPolicy, result: ScanResult) -> scanner.Outcome:
    """Pin the object and scan it; failures become an Error outcome, or raise to be retried. Raises
    _Moot when there is nothing to scan after all."""
    try:
        return _scan_pinned(request, policy, result)
    except _Moot:
        raise
    except s3ops.PermanentS3Error as exc:
        if exc.code in s3ops.CHANGED_CODES:
            # Replaced between the event (or listing) and this read: the new bytes have their own event.
            raise _Moot(None) from exc
        if isinstance(exc, s3ops.ObjectGone):
            moved = _moved_by_us(
                request.tenant, request.bucket, request.key, request.version_id, request.etag
            )
            if moved is not None:
                # A late request (a bucket scan racing an event) for a version s3av itself already
                # quarantined or deleted: that finding stands; this is not a new error.
                raise _Moot(moved) from exc
        return scanner.Outcome(
            verdict=Verdict.ERROR, message=exc.message, gone=isinstance(exc, s3ops.ObjectGone)
        )
    except (s3ops.TransientS3Error, engine.EngineUnavailable) as exc:
        return _given_up(request, result, exc)
    except Exception as exc:
        # Anything else (the tenant's role gone, a bad engine address, a bug): retried like a
        # transient failure, and on the last attempt recorded as Error, never left pending.
        return _given_up(request, result, exc, unexpected=True)


def _given_up(
    request: ScanRequest, result: ScanResult, exc: Exception, unexpected: bool = False
) -> scanner.Outcome:
    """Re-raise for a retry, or on the last attempt the Error outcome that says so."""
    if not request.final_attempt:
        _release_claim(result)
        raise exc
    if unexpected:
        log.exception(
            "scan failed",
            extra={"tenant": str(request.tenant.pk), "bucket": request.bucket.name, "key": request.key},
        )
    return scanner.Outcome(verdict=Verdict.ERROR, message=f"gave up after retries: {exc}")


def _pin(s3: Any, request: ScanRequest, policy: ScanPolicy) -> s3ops.ObjectRef:
    etag, size, version_id = request.etag, request.size, request.version_id
    if etag and size is not None and (version_id or size <= policy.max_object_size):
        return s3ops.ObjectRef(request.bucket.name, request.key, version_id or None, etag.strip('"'), size)
    # Also when an object too large to read names no version: only HeadObject can pin it.
    return s3ops.head_object(s3, request.bucket.name, request.key, version_id)


def _scan_pinned(request: ScanRequest, policy: ScanPolicy, result: ScanResult) -> scanner.Outcome:
    bucket = request.bucket
    s3 = client_for(bucket.account, "s3", bucket.region)
    ref = _pin(s3, request, policy)
    if request.etag and not request.version_id and ref.etag != request.etag.strip('"'):
        raise _Moot(None)  # the key now holds other bytes; their own event scans them
    result.version_id = ref.version_id or ""
    result.etag = ref.etag
    result.size = ref.size
    result.last_modified = _to_second(ref.last_modified)
    result.sequencer = (request.sequencer or "")[:64]
    outcome = scanner.scan_ref(
        s3,
        clamd_client(),
        engine_identity(),
        ref,
        policy.max_object_size,
        heartbeat=lambda: _renew_claim(result),
    )
    if outcome.read is not None:
        # The version these bytes are, as GetObject said: what tags and actions must target.
        result.version_id = outcome.read.version_id or ""
        result.last_modified = _to_second(outcome.read.last_modified)
    return outcome


_VERDICT_FIELDS = [
    "version_id", "etag", "size", "last_modified", "sequencer", "verdict", "signatures", "message",
    "sha256", "engine", "signature_version", "duration_ms", "object_gone", "scanned_at", "claimed_until",
    "action_status",
]  # fmt: skip
_ACTION_FIELDS = [
    *POLICY_ACTION_FLAGS, "action_status", "action_detail", "tags_dropped",
    "quarantine_bucket", "quarantine_key", "quarantine_version_id",
]  # fmt: skip


def _record_verdict(
    request: ScanRequest, policy: ScanPolicy, result: ScanResult, outcome: scanner.Outcome, newer: bool
) -> ScanResult:
    """Record the verdict and act on it. Two ways, by what a crash in between may cost:

    - A Clean verdict whose policy only tags (or does nothing): tag first, then record verdict and
      actions in one UPDATE. A crash between the two leaves the object tagged Clean (the engine did
      read all of it) and the claim unfinished: its lease runs out and the redelivered message scans
      again. Taken only while this worker's lease has at least half its length left, so no other
      worker can have taken the claim over while the tags go on.
    - Anything else (a finding, a move, a promotion, a delete): record the verdict first (actions
      pending), then ask again whether a newer verdict exists, then act and record the actions, so a
      crash never loses a finding and a retry resumes the actions instead of finding the object moved.
    """
    _set_verdict(result, outcome)
    if result.verdict == Verdict.CLEAN and policy.promote_to_bucket_id is None and _holds_lease(result):
        return _record_after_tagging(request, policy, result, outcome, newer)
    if not _save(result, _VERDICT_FIELDS):  # another worker finished first; its verdict stands
        result.refresh_from_db()
        return result
    _verdict_recorded(request, result, outcome)
    tenant, bucket = request.tenant, request.bucket
    # Asked again now that this verdict is recorded (None): a newer one recorded since the look after
    # the scan must not be overwritten by this one's tags, moves or deletes. Findings are rare.
    _act(tenant, bucket, policy, result, request.final_attempt, read=outcome.read, newer=newer or None)
    return result


def _record_after_tagging(
    request: ScanRequest, policy: ScanPolicy, result: ScanResult, outcome: scanner.Outcome, newer: bool
) -> ScanResult:
    try:
        tenant, bucket, final = request.tenant, request.bucket, request.final_attempt
        _run_actions(tenant, bucket, policy, result, final, outcome.read, newer)
    except Exception:
        # To be retried (a transient S3 failure): the verdict is recorded first, as on the other way,
        # so the retry resumes the tagging instead of reading and scanning again.
        result.action_status = ScanResult.ActionStatus.PENDING
        if _save(result, _VERDICT_FIELDS):
            _verdict_recorded(request, result, outcome)
        raise
    if not _save(result, [*_VERDICT_FIELDS, *_ACTION_FIELDS]):
        tagged = result.tagged
        result.refresh_from_db()
        if tagged:
            _retag_as_recorded(request, policy, result)
        return result
    _verdict_recorded(request, result, outcome)
    _actions_settled(request.tenant, result)
    return result


def _retag_as_recorded(request: ScanRequest, policy: ScanPolicy, recorded: ScanResult) -> None:
    """This worker tagged Clean, then found another worker's verdict recorded first: its tags went on
    while this one's were retried past the lease, and may be the ones overwritten. Put them back (a
    verdict that was moved away, superseded or is Clean too needs nothing; a retry of the other
    worker's actions writes them again all the same)."""
    if recorded.verdict == Verdict.CLEAN or not policy.tag_objects or recorded.superseded:
        return
    if recorded.moved_away or (recorded.verdict == Verdict.ERROR and recorded.object_gone):
        return
    s3 = client_for(request.bucket.account, "s3", request.bucket.region)
    try:
        s3ops.put_scan_tags(s3, _ref_of(recorded), scan_tags(policy, recorded), policy.managed_tag_keys)
    except s3ops.S3Error:
        log.warning("could not put a recorded verdict's tags back", extra={"result": str(recorded.pk)})


def _set_verdict(result: ScanResult, outcome: scanner.Outcome) -> None:
    result.verdict = outcome.verdict
    result.signatures = outcome.signatures
    result.message = outcome.message
    result.sha256 = outcome.sha256
    result.engine = outcome.engine
    result.signature_version = outcome.signature_version
    result.duration_ms = outcome.duration_ms
    result.object_gone = outcome.gone
    result.scanned_at = timezone.now()
    result.action_status = ScanResult.ActionStatus.PENDING


def _holds_lease(result: ScanResult) -> bool:
    """Whether this worker's claim has at least half its lease left (renewed as the object streams)."""
    left = (result.claimed_until or timezone.now()) - timezone.now()
    return left.total_seconds() >= settings.SCAN_LEASE_SECONDS / 2


def _save(result: ScanResult, fields: list[str]) -> int:
    """Write ``fields`` of a claimed scan, unless another worker recorded its verdict first."""
    result.claimed_until = None
    return ScanResult.objects.filter(pk=result.pk, verdict="").update(
        **{name: getattr(result, name) for name in fields}
    )


def _verdict_recorded(request: ScanRequest, result: ScanResult, outcome: scanner.Outcome) -> None:
    usage.add(request.tenant.pk, objects=1, size=outcome.bytes_read)  # issue 5; batched in a worker
    _count_verdict(result, outcome)  # issue 13: metrics
    log.info(
        "scanned",
        extra={
            "tenant": str(request.tenant.pk),
            "bucket": request.bucket.name,
            "key": request.key,
            "verdict": result.verdict,
        },
    )


def _count_verdict(result: ScanResult, outcome: scanner.Outcome) -> None:
    """This process's metrics (``fleet.stats``, sent with the heartbeat): one verdict saved."""
    since_enqueued = None
    message = CurrentMessage.get_current_message()
    if result.trigger == Trigger.EVENT and message is not None and message.message_timestamp:
        since_enqueued = time.time() - message.message_timestamp / 1000.0
    STATS.verdict(result.verdict, outcome.bytes_read, outcome.duration_ms / 1000.0, since_enqueued)


SCAN_MAX_RETRIES = 8


def _bucket_and_tenant(
    tenant_id: str, bucket_id: str, *args: Any, job_id: str | None = None, dedupe_key: str = "", **kwargs: Any
) -> tuple[Tenant, tuple[Any, ...]] | None:
    """The scan's bucket with its tenant, account and policy, and for a job's scan whether the job still
    wants it (``job_wanted``): one query on the scan's hot path."""
    with scopes_disabled():
        found = Bucket.objects.select_related("tenant", "account", "policy").filter(
            pk=bucket_id, tenant_id=tenant_id, tenant__status=Tenant.Status.ACTIVE
        )
        if job_id and job_hooks.wanted_items is not None:
            found = found.annotate(job_wanted=Exists(job_hooks.wanted_items(job_id, dedupe_key)))
        bucket = found.first()
    return None if bucket is None else (bucket.tenant, (bucket, *args))


@tenant_actor(
    load=_bucket_and_tenant,
    queue_name="scans",
    max_retries=SCAN_MAX_RETRIES,
    min_backoff=2_000,
    max_backoff=300_000,
    time_limit=3_600_000,
)
def scan_object(
    tenant: Tenant,
    bucket: Bucket,
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
    """The scan of one object version (``request_scan`` and bucket scans send it with the bucket's id)."""
    run_scan(
        tenant,
        bucket,
        key,
        version_id=version_id,
        etag=etag,
        trigger=trigger,
        dedupe_key=dedupe_key,
        job_id=job_id,
        final_attempt=is_final_attempt(),
        size=size,
        sequencer=sequencer,
        job_wanted=getattr(bucket, "job_wanted", None),
    )


# --- acting on a verdict -----------------------------------------------------------------------------


def _ref_of(result: ScanResult) -> s3ops.ObjectRef:
    return s3ops.ObjectRef(
        bucket=result.bucket_name,
        key=result.key,
        version_id=result.version_id or None,
        etag=result.etag,
        size=result.size or 0,
    )


def scan_tags(policy: ScanPolicy, result: ScanResult) -> list[tuple[str, str]]:
    when = (result.scanned_at or timezone.now()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    tags = [(policy.tag_result_key, result.verdict), (policy.tag_date_key, when)]
    if result.signatures:
        tags.append((policy.tag_virus_key, result.signatures[0]))
    if result.message and result.verdict in {Verdict.UNSCANNABLE, Verdict.ERROR}:
        tags.append((policy.tag_message_key, result.message))
    return tags


def _newer_verdict_exists(result: ScanResult) -> bool:
    return (
        ScanResult.objects.final()
        .filter(
            tenant_id=result.tenant_id,
            bucket_id=result.bucket_id,
            key=result.key,
            version_id=result.version_id,
        )
        .filter(created_at__gt=result.created_at)
        .exclude(pk=result.pk)
        .exists()
    )


def _act(
    tenant: Tenant,
    bucket: Bucket,
    policy: ScanPolicy,
    result: ScanResult,
    final_attempt: bool = True,
    read: s3ops.ObjectRef | None = None,
    newer: bool | None = None,
) -> None:
    """Tag, then quarantine or delete as the policy says, and record what was done. Re-runnable until it
    records done.

    ``read`` is what the scan's GetObject said about these bytes (their tag count, when it was sent):
    right after the read, tagging needs no second look at the object. ``newer``: whether a newer verdict
    of this version exists, when the caller already asked (None: ask).

    A transient failure raises so the message is retried (the verdict is already recorded, and a
    retry resumes here); on the last attempt, and for permanent failures, the action is recorded failed.
    """
    _run_actions(tenant, bucket, policy, result, final_attempt, read, newer)
    result.save(update_fields=_ACTION_FIELDS)
    _actions_settled(tenant, result)


def _run_actions(
    tenant: Tenant,
    bucket: Bucket,
    policy: ScanPolicy,
    result: ScanResult,
    final_attempt: bool,
    read: s3ops.ObjectRef | None,
    newer: bool | None,
) -> None:
    """Do what the policy says and set the result's action flags, status and detail (not saved)."""
    for name in POLICY_ACTION_FLAGS:
        setattr(result, name, False)
    status, detail = ScanResult.ActionStatus.DONE, ""
    try:
        _apply_policy(tenant, bucket, policy, result, read, newer)
    except s3ops.PermanentS3Error as exc:
        if exc.code in s3ops.CHANGED_CODES:
            # The key holds other bytes now (unversioned bucket): this verdict is not about them.
            result.superseded = True
        else:
            status, detail = ScanResult.ActionStatus.FAILED, exc.message
    except ServiceError as exc:
        status, detail = ScanResult.ActionStatus.FAILED, exc.message
    except Exception as exc:
        if not final_attempt:
            raise
        log.exception("actions failed", extra={"tenant": str(tenant.pk), "result": str(result.pk)})
        status, detail = ScanResult.ActionStatus.FAILED, f"gave up after retries: {exc}"
    result.action_status = status
    result.action_detail = detail


def _actions_settled(tenant: Tenant, result: ScanResult) -> None:
    if result.deleted:
        result.resolve(Resolution.DELETED_BY_POLICY, "policy")  # nothing is left to triage
    notifications.result_recorded(tenant, result)  # publishes after commit if a channel wants it


def _apply_policy(
    tenant: Tenant,
    bucket: Bucket,
    policy: ScanPolicy,
    result: ScanResult,
    read: s3ops.ObjectRef | None,
    newer: bool | None = None,
) -> None:
    """Do what the policy says with the verdict, setting the result's flags as each step is done."""
    ref = _ref_of(result)
    if read is not None and (read.version_id, read.etag) == (ref.version_id, ref.etag):
        ref = dataclasses.replace(ref, tag_count=read.tag_count, read_at=read.read_at)
    s3 = client_for(bucket.account, "s3", bucket.region)
    if newer if newer is not None else _newer_verdict_exists(result):
        result.superseded = True  # an older verdict never overwrites a newer one on the object
        return
    if result.verdict == Verdict.ERROR and result.object_gone:
        return  # nothing there to tag or act on
    if policy.tag_objects:
        dropped = s3ops.put_scan_tags(
            s3, ref, scan_tags(policy, result), managed_keys=policy.managed_tag_keys
        )
        if dropped:
            result.tags_dropped = dropped
        result.tagged = True
    if result.verdict == Verdict.CLEAN and promotion.promote_if_wanted(tenant, bucket, policy, result):
        result.promoted = True  # issue 5
    wanted = _wanted_action(policy, result.verdict)
    if wanted == InfectedAction.QUARANTINE:
        _quarantine(s3, bucket, policy, result, ref)
        result.quarantined = True
    elif wanted == InfectedAction.DELETE:
        s3ops.delete_version(s3, ref)
        result.deleted = True


def _wanted_action(policy: ScanPolicy, verdict: str) -> str:
    if verdict == Verdict.INFECTED:
        return policy.on_infected
    if verdict == Verdict.UNSCANNABLE:
        return policy.on_unscannable
    if verdict == Verdict.ERROR:
        return policy.on_error
    return ProblemAction.KEEP


def quarantine_key_for(policy: ScanPolicy, bucket: Bucket, result: ScanResult) -> str:
    # One key per finding: two infected versions of one key never share (or overwrite) a copy.
    return f"{policy.quarantine_prefix}{bucket.name}/{result.pk}/{result.key}"


def _quarantine(
    s3: Any, bucket: Bucket, policy: ScanPolicy, result: ScanResult, ref: s3ops.ObjectRef
) -> None:
    if not policy.quarantine_bucket:
        raise ServiceError(f"policy {policy.name!r} quarantines but names no quarantine bucket")
    dest_key = quarantine_key_for(policy, bucket, result)
    try:
        copy = s3ops.move_object_verified(s3, ref, policy.quarantine_bucket, dest_key)
    except s3ops.PermanentS3Error as exc:
        if not isinstance(exc, s3ops.ObjectGone):
            raise
        # A redelivered message: the source went in an earlier attempt. Done if the copy is there.
        copy = s3ops.head_object(s3, policy.quarantine_bucket, dest_key)
    result.quarantine_bucket = policy.quarantine_bucket
    result.quarantine_key = dest_key
    result.quarantine_version_id = copy.version_id or ""


# --- triage ------------------------------------------------------------------------------------------


def _claim_triage(result: ScanResult, doing: str) -> None:
    """Mark a finding as being released/deleted; exactly one caller wins."""
    unchanged = {name: getattr(result, name) for name in ACTION_FLAGS}
    claimed = (
        ScanResult.objects.filter(pk=result.pk, triage_action="", **unchanged)
        .exclude(deleted=True)
        .exclude(released=True)
        .update(triage_action=doing)
    )
    if not claimed:
        raise ServiceError("This finding was already released or deleted, or that is under way.")
    result.triage_action = doing


def _finish_triage(result: ScanResult, done: str) -> None:
    """Record the triage done ("" undoes the claim)."""
    ScanResult.objects.filter(pk=result.pk).update(triage_action=done)
    result.triage_action = done


def _fail_triage(result: ScanResult, exc: Exception, doing: str) -> NoReturn:
    """Undo the triage claim and re-raise: S3 failures as a ServiceError the user reads."""
    _finish_triage(result, "")
    if isinstance(exc, s3ops.S3Error):
        raise ServiceError(f"{doing} failed: {exc.message}") from exc
    raise exc


class TriageConflict(ServiceError):
    """The finding's object is not in a state where this triage can be done (the API answers 409)."""


def bucket_client(bucket: Bucket, field: str | None = None) -> Any:
    """The bucket's S3 client; a role that can no longer be assumed is a refusal that says what to fix."""
    try:
        return client_for(bucket.account, "s3", bucket.region)
    except AssumeRoleFailed as exc:
        account = bucket.account
        raise ServiceError(
            f"The role ARN {account.role_arn or '(none)'} of account {account.account_id} can no longer be "
            f"assumed: redeploy the template s3av generated for this account and verify the account again. "
            f"({exc.message})",
            field=field,
        ) from exc


def _current_object(s3: Any, bucket: Bucket, key: str) -> s3ops.ObjectRef | None:
    """What a reader of the key gets now (None: nothing, or a delete marker)."""
    try:
        return s3ops.head_object(s3, bucket.name, key)
    except s3ops.PermanentS3Error as exc:
        if isinstance(exc, s3ops.ObjectGone):
            return None
        raise


def _refuse_replacing(bucket: Bucket, current: s3ops.ObjectRef) -> NoReturn:
    when = f" at {current.last_modified:%Y-%m-%d %H:%M:%S %Z}" if current.last_modified else ""
    what = f"s3://{bucket.name}/{current.key} now holds another object ({current.size} bytes, written{when})"
    if current.version_id and current.version_id != "null":
        raise TriageConflict(
            f"{what}. Releasing would make the released copy the current version; that object would stay "
            'as a noncurrent version. Send {"overwrite": true} to release anyway.'
        )
    raise TriageConflict(
        f"{what}. Releasing would overwrite it and it would be lost for good: nothing was released. "
        'Move or delete that object first, or send {"overwrite": true} to replace it.'
    )


def _quarantined_copy(s3: Any, result: ScanResult) -> s3ops.ObjectRef:
    source = s3ops.head_object(
        s3, result.quarantine_bucket, result.quarantine_key, result.quarantine_version_id or None
    )
    if result.size is not None and source.size != result.size:
        raise ServiceError("The quarantined copy is not the object this finding is about; not released.")
    return source


def _replaced_by_release(
    s3: Any, bucket: Bucket, result: ScanResult, source: s3ops.ObjectRef, overwrite: bool
) -> s3ops.ObjectRef | None:
    """The other object a release would replace at the key (refused unless ``overwrite``), or None."""
    # A HEAD, then the copy: an upload in between is still overwritten (S3's CopyObject has no
    # "only if absent" condition we can rely on across S3-compatible stores).
    replaced = _current_object(s3, bucket, result.key)
    if replaced is not None and replaced.etag == source.etag:
        return None  # these very bytes (an earlier attempt's copy): nothing else is at stake
    if replaced is not None and not overwrite:
        _refuse_replacing(bucket, replaced)
    return replaced


def _record_release(
    tenant: Tenant, actor: Actor, bucket: Bucket, result: ScanResult, source: s3ops.ObjectRef, now: datetime
) -> ScanResult:
    """The InfectedAllowed result of the copy a release restores."""
    return ScanResult.objects.create(
        tenant=tenant,
        bucket=bucket,
        bucket_name=bucket.name,
        key=result.key,
        etag=source.etag,
        size=source.size,
        sha256=result.sha256,
        verdict=Verdict.INFECTED_ALLOWED,
        signatures=result.signatures,
        message=f"released from quarantine by {actor.label}",
        engine=result.engine,
        signature_version=result.signature_version,
        released=True,
        action_status=ScanResult.ActionStatus.DONE,
        trigger=Trigger.MANUAL,
        dedupe_key=uuid.uuid4().hex,
        scanned_at=now,
        resolution=Resolution.RELEASED,
        resolved_by=actor.label[:254],
        resolved_at=now,
    )


def _restore(
    s3: Any,
    policy: ScanPolicy,
    bucket: Bucket,
    result: ScanResult,
    source: s3ops.ObjectRef,
    released: ScanResult,
    now: datetime,
) -> None:
    """Copy the quarantined object back (verified), tag it InfectedAllowed, then delete the copy."""
    when = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    restored = s3ops.copy_object_verified(s3, source, bucket.name, result.key)
    ScanResult.objects.filter(pk=released.pk).update(version_id=restored.version_id or "", etag=restored.etag)
    released.refresh_from_db()
    s3ops.put_scan_tags(
        s3,
        restored,
        [(policy.tag_result_key, Verdict.INFECTED_ALLOWED), (policy.tag_date_key, when)],
        managed_keys=(policy.tag_result_key, policy.tag_date_key),
    )
    s3ops.delete_version(s3, source)


def release_from_quarantine(
    tenant: Tenant, actor: Actor, result: ScanResult, overwrite: bool = False
) -> ScanResult:
    """Copy a quarantined object back to where it was, tagged InfectedAllowed.

    Refused (TriageConflict) when the key now holds another object, unless ``overwrite``: in an
    unversioned bucket the copy would replace it for good, in a versioned one it would hide it.
    """
    if result.verdict != Verdict.INFECTED or not result.quarantine_key:
        raise ServiceError("Only a quarantined infected object can be released.")
    bucket = result.bucket
    assert bucket is not None
    _claim_triage(result, TriageAction.RELEASING)
    released: ScanResult | None = None
    replaced: s3ops.ObjectRef | None = None
    try:
        policy = bucket.effective_policy()
        s3 = bucket_client(bucket)
        source = _quarantined_copy(s3, result)
        replaced = _replaced_by_release(s3, bucket, result, source, overwrite)
        now = timezone.now()
        # Recorded before the copy: the copy's own S3 event must find it and leave the object alone.
        released = _record_release(tenant, actor, bucket, result, source, now)
        _restore(s3, policy, bucket, result, source, released, now)
    except Exception as exc:
        if released is not None:
            ScanResult.objects.filter(pk=released.pk).delete()
        _fail_triage(result, exc, "Release")
    _finish_triage(result, TriageAction.RELEASED)
    result.resolve(Resolution.RELEASED, actor.label)
    detail: dict[str, Any] = {"restored_as": str(released.pk), "overwrite": overwrite}
    if replaced is not None:
        detail["replaced"] = {"etag": replaced.etag, "size": replaced.size, "version_id": replaced.version_id}
    record(tenant, actor, "result.release", result, detail)
    return released


def delete_scanned_object(tenant: Tenant, actor: Actor, result: ScanResult) -> ScanResult:
    """Delete the exact object version a finding is about (or its quarantined copy); resolves the finding.

    In an unversioned bucket whose key now holds other bytes nothing is deleted (TriageConflict); a
    key already empty resolves the finding as ``gone``.
    """
    if result.verdict not in {Verdict.INFECTED, Verdict.UNSCANNABLE, Verdict.ERROR}:
        raise ServiceError("Only an Infected, Unscannable or Error object can be deleted from here.")
    bucket = result.bucket
    assert bucket is not None
    _claim_triage(result, TriageAction.DELETING)
    resolution = Resolution.DELETED
    target = _ref_of(result)
    if result.quarantine_key:
        target = s3ops.ObjectRef(
            result.quarantine_bucket, result.quarantine_key, result.quarantine_version_id or None, "", 0
        )
    try:
        s3 = bucket_client(bucket)
        try:
            if result.quarantine_key:
                target = s3ops.head_object(s3, target.bucket, target.key, target.version_id)
                if result.size is not None and target.size != result.size:
                    raise ServiceError(
                        "The quarantined copy is not the object this finding is about; not deleted."
                    )
            s3ops.delete_version(s3, target)
        except s3ops.PermanentS3Error as exc:
            if exc.code in s3ops.CHANGED_CODES:
                raise TriageConflict(
                    f"s3://{target.bucket}/{target.key} now holds other bytes than this finding is about "
                    "(a newer upload); nothing was deleted."
                ) from exc
            if not isinstance(exc, s3ops.ObjectGone):
                raise
            resolution = Resolution.GONE
    except Exception as exc:
        _fail_triage(result, exc, "Delete")
    _finish_triage(result, TriageAction.DELETED)
    result.resolve(resolution, actor.label)
    record(
        tenant,
        actor,
        "result.delete_object",
        result,
        {
            "bucket": target.bucket,
            "key": target.key,
            "version_id": target.version_id,
            "resolution": resolution,
        },
    )
    return result


_ON_INFECTED = {
    InfectedAction.KEEP: "tag it Infected (unreadable behind the read gate)",
    InfectedAction.QUARANTINE: "move it to quarantine",
    InfectedAction.DELETE: "delete the version",
}


def _rescan_refusal(result: ScanResult) -> str | None:
    """Why a rescan of this finding could do nothing (its object is not where the finding says)."""
    if result.resolution == Resolution.RELEASED and result.verdict != Verdict.INFECTED_ALLOWED:
        return (
            f"This finding was released by {result.resolved_by or 'an operator'}; the released object has "
            "its own InfectedAllowed result: rescan that one."
        )
    if result.resolution in {Resolution.DELETED, Resolution.DELETED_BY_POLICY, Resolution.GONE}:
        by = "the policy" if result.resolution == Resolution.DELETED_BY_POLICY else result.resolved_by
        return f"The object was deleted (by {by or 'an operator'}): there is nothing left to scan."
    if result.quarantine_key:
        then = "release it to scan it again where it was, or delete it"
        if result.verdict != Verdict.INFECTED:
            then = "delete it, or copy it back to have it scanned again"  # only Infected is released
        return (
            f"The object was moved to quarantine (s3://{result.quarantine_bucket}/{result.quarantine_key}): "
            f"{then}."
        )
    return None


def _where(result: ScanResult) -> str:
    version = f" (version {result.version_id})" if result.version_id else ""
    return f"s3://{result.bucket_name}/{result.key}{version}"


def _check_still_there(s3: Any, result: ScanResult) -> None:
    where = _where(result)
    try:
        current = s3ops.head_object(s3, result.bucket_name, result.key, result.version_id or None)
    except s3ops.PermanentS3Error as exc:
        if isinstance(exc, s3ops.ObjectGone):
            raise TriageConflict(f"{where} no longer exists: there is nothing to rescan.") from exc
        raise ServiceError(f"Rescan refused: {exc.message}") from exc
    except s3ops.TransientS3Error as exc:
        raise ServiceError(f"Rescan refused: {exc.message}; try again shortly.") from exc
    if result.etag and current.etag != result.etag:
        raise TriageConflict(
            f"{where} now holds other bytes than this result is about (a newer upload), which its own scan "
            "covers; scan the key now with POST /api/v1/scan/existing."
        )


def rescan(tenant: Tenant, actor: Actor, result: ScanResult, confirm: bool = False) -> dict[str, Any]:
    """Queue a new scan of the exact object version a result is about, and say what will follow.

    Refused (TriageConflict) when the object is gone, moved or replaced (the scan would do nothing),
    and for a released false positive unless ``confirm``: a verdict still Infected undoes the release.
    """
    bucket = result.bucket
    if bucket is None:
        raise ServiceError("This result has no bucket to rescan.")
    refusal = _rescan_refusal(result)
    if refusal:
        raise TriageConflict(refusal)
    _check_still_there(bucket_client(bucket), result)
    policy = bucket.effective_policy()
    then = _ON_INFECTED.get(InfectedAction(policy.on_infected), policy.on_infected)
    if result.verdict == Verdict.INFECTED_ALLOWED and not confirm:
        raise TriageConflict(
            f"This object was released as a false positive. If the engine still finds it Infected, the "
            f'policy {policy.name!r} will {then}, undoing the release. Send {{"confirm": true}} to '
            "rescan anyway."
        )
    request_scan(
        tenant,
        actor,
        bucket,
        result.key,
        version_id=result.version_id or None,
        etag=result.etag or None,
        trigger=Trigger.MANUAL,
        force=True,
    )
    return {
        "status": "queued",
        "bucket": str(bucket.pk),
        "key": result.key,
        "version_id": result.version_id,
        "message": f"A scan of {_where(result)} is queued. If it is found Infected, the policy "
        f"{policy.name!r} will {then}; a new result records the verdict.",
    }

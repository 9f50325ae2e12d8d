from __future__ import annotations

import copy
import fnmatch
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from croniter import croniter
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_scopes import ScopedManager

from accounts.models import Tenant
from scanning.fleet.stats import STATS


class Verdict(models.TextChoices):
    CLEAN = "Clean"
    INFECTED = "Infected"
    UNSCANNABLE = "Unscannable"
    ERROR = "Error"
    INFECTED_ALLOWED = "InfectedAllowed"


class Trigger(models.TextChoices):
    EVENT = "event"
    MANUAL = "manual"
    SCHEDULE = "schedule"
    API = "api"


class InfectedAction(models.TextChoices):
    KEEP = "keep", "Keep (tag only)"
    QUARANTINE = "quarantine", "Move to the quarantine bucket"
    DELETE = "delete", "Delete the infected version"


class ProblemAction(models.TextChoices):
    KEEP = "keep", "Keep (tag only)"
    QUARANTINE = "quarantine", "Move to the quarantine bucket"


def _default_max_size() -> int:
    return int(settings.MAX_OBJECT_SIZE)


# Bounds of what tenants set, shown in the OpenAPI schema. Ten years of rescans is more than any
# retention asks for, and keeps every date the scheduler computes from it representable.
MAX_RESCAN_DAYS = 3650
MAX_PATTERNS = 100
MAX_PATTERN_LENGTH = 1024
BUCKET_NAME_RE = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"


def validate_max_object_size(value: int) -> None:
    # The deployment's engine limit (S3AV_MAX_OBJECT_SIZE): larger objects are always Unscannable.
    if value > settings.MAX_OBJECT_SIZE:
        raise ValidationError(
            f"The engine on this deployment accepts at most {settings.MAX_OBJECT_SIZE} bytes "
            "(S3AV_MAX_OBJECT_SIZE); larger objects are always Unscannable."
        )


# A RegexValidator, so that the OpenAPI schema shows the pattern (blank values are not validated).
validate_bucket_name = RegexValidator(
    f"^{BUCKET_NAME_RE}$", "Not an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)."
)


def validate_patterns(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Give a list of glob patterns.")
    if len(value) > MAX_PATTERNS:
        raise ValidationError(f"At most {MAX_PATTERNS} patterns.")
    if any(len(item) > MAX_PATTERN_LENGTH or "\x00" in item for item in value):
        raise ValidationError(f"A pattern has at most {MAX_PATTERN_LENGTH} characters and no NUL.")


# Each tenant's default policy, per process, for DEFAULT_POLICY_TTL seconds: a scan of a bucket
# without a policy of its own asks for it every time. Saving or deleting a policy forgets it here; a
# change made by another process is seen within the TTL.
DEFAULT_POLICY_TTL = 5.0
_default_policies: dict[Any, tuple[float, ScanPolicy]] = {}
_default_policies_lock = threading.Lock()


class ScanPolicy(models.Model):
    """What to scan and what to do with each verdict."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="scan_policies")
    name = models.CharField(max_length=100)
    is_default = models.BooleanField(default=False)
    max_object_size = models.BigIntegerField(
        default=_default_max_size,
        validators=[MinValueValidator(1), validate_max_object_size],
        help_text="Bytes; at most the deployment's S3AV_MAX_OBJECT_SIZE.",
    )
    include_patterns = models.JSONField(
        default=list, blank=True, validators=[validate_patterns], help_text="Glob patterns; empty: every key."
    )
    exclude_patterns = models.JSONField(default=list, blank=True, validators=[validate_patterns])
    tag_objects = models.BooleanField(default=True)
    tag_result_key = models.CharField(max_length=128, default="scan-result")
    tag_date_key = models.CharField(max_length=128, default="date-scanned")
    tag_virus_key = models.CharField(max_length=128, default="virus-name")
    tag_message_key = models.CharField(max_length=128, default="message")
    on_infected = models.CharField(max_length=16, choices=InfectedAction.choices, default=InfectedAction.KEEP)
    on_unscannable = models.CharField(
        max_length=16, choices=ProblemAction.choices, default=ProblemAction.KEEP
    )
    on_error = models.CharField(max_length=16, choices=ProblemAction.choices, default=ProblemAction.KEEP)
    quarantine_bucket = models.CharField(max_length=63, blank=True, validators=[validate_bucket_name])
    quarantine_prefix = models.CharField(max_length=512, blank=True, default="quarantine/")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The two-bucket system, rescans on new signatures, and scanning the rest of a bucket on malware.
    promote_to_bucket = models.ForeignKey(
        "Bucket",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Copy Clean objects to this bucket of the same tenant (the two-bucket system).",
    )
    promote_prefix = models.CharField(max_length=512, blank=True, help_text="Prepended to the key.")
    delete_staging_after_promote = models.BooleanField(default=False)
    rescan_days_on_signature_change = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_RESCAN_DAYS)],
        help_text="When the signatures change, rescan objects modified in the last N days (at most "
        f"{MAX_RESCAN_DAYS}); 0: never.",
    )
    scan_bucket_on_infected = models.BooleanField(
        default=False, help_text="When malware is found, scan the rest of the bucket's unscanned objects."
    )

    objects = ScopedManager(tenant="tenant")

    class Meta:
        verbose_name_plural = "scan policies"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="policy_name_unique"),
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(is_default=True), name="policy_one_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        ScanPolicy.forget_default(self.tenant_id)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        ScanPolicy.forget_default(self.tenant_id)
        return super().delete(*args, **kwargs)

    @property
    def managed_tag_keys(self) -> tuple[str, ...]:
        return (self.tag_result_key, self.tag_date_key, self.tag_virus_key, self.tag_message_key)

    def wants(self, key: str) -> bool:
        """Whether a key is in scope for this policy (include, then exclude patterns)."""
        if self.include_patterns and not any(fnmatch.fnmatchcase(key, p) for p in self.include_patterns):
            return False
        return not any(fnmatch.fnmatchcase(key, p) for p in self.exclude_patterns)

    def clean(self) -> None:
        super().clean()
        target = self.promote_to_bucket
        if target is not None and target.tenant_id != self.tenant_id:
            raise ValidationError({"promote_to_bucket": "The bucket belongs to another tenant."})
        if self.needs_quarantine_bucket() and not self.quarantine_bucket:
            raise ValidationError({"quarantine_bucket": "Name the bucket that quarantined objects move to."})
        if len(set(self.managed_tag_keys)) != len(self.managed_tag_keys):
            raise ValidationError({"tag_result_key": "The four tag keys must differ."})
        if self.tenant_id and self.quarantine_bucket:
            # Here, not only in the API's serializer: the admin and the services validate with this too.
            loop = quarantine_loop(self.tenant, self.quarantine_bucket, self if self.pk else None)
            if loop:
                raise ValidationError({"quarantine_bucket": loop})

    def needs_quarantine_bucket(self) -> bool:
        return InfectedAction.QUARANTINE in {self.on_infected, self.on_unscannable, self.on_error}

    @staticmethod
    def forget_default(tenant_id: Any) -> None:
        with _default_policies_lock:
            _default_policies.pop(tenant_id, None)

    @classmethod
    def default_for(cls, tenant: Tenant) -> ScanPolicy:
        """The tenant's default policy (created on first use), as saved at most DEFAULT_POLICY_TTL
        seconds ago; a copy, so a caller's changes stay its own."""
        with _default_policies_lock:
            cached = _default_policies.get(tenant.pk)
        if cached is not None and time.monotonic() - cached[0] < DEFAULT_POLICY_TTL:
            return copy.copy(cached[1])
        policy = cls._load_default(tenant)
        with _default_policies_lock:
            _default_policies[tenant.pk] = (time.monotonic(), copy.copy(policy))
        return policy

    @classmethod
    def _load_default(cls, tenant: Tenant) -> ScanPolicy:
        policy = cls.objects.filter(tenant=tenant, is_default=True).first()
        if policy is not None:
            return policy
        # The tenant may already have a policy of its own called "Default".
        name = "Default"
        if cls.objects.filter(tenant=tenant, name=name).exists():
            name = f"Default (built-in {uuid.uuid4().hex[:6]})"
        try:
            with transaction.atomic():
                return cls.objects.create(tenant=tenant, is_default=True, name=name)
        except IntegrityError:  # created concurrently by another worker
            return cls.objects.get(tenant=tenant, is_default=True)


class Bucket(models.Model):
    """A bucket in one of the tenant's linked accounts."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="buckets")
    account = models.ForeignKey(
        "linked_accounts.AwsAccount", on_delete=models.CASCADE, related_name="buckets"
    )
    name = models.CharField(max_length=63)
    region = models.CharField(max_length=32, default="us-east-1")
    versioning = models.CharField(max_length=16, blank=True, help_text="Enabled, Suspended, or empty.")
    encryption = models.CharField(max_length=32, blank=True)
    policy = models.ForeignKey(
        ScanPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="buckets"
    )
    protected = models.BooleanField(default=False)
    protection = models.JSONField(default=dict, blank=True, help_text="What s3av created to protect it.")
    missing_since = models.DateTimeField(null=True, blank=True)
    discovered_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="bucket_unique_in_account")]

    def __str__(self) -> str:
        return self.name

    @property
    def versioned(self) -> bool:
        """Versioning on or suspended at the last discovery (the portal says what a delete does)."""
        return self.versioning in {"Enabled", "Suspended"}

    def clean(self) -> None:
        super().clean()
        if self.account_id and self.account.tenant_id != self.tenant_id:
            raise ValidationError({"account": "The account belongs to another tenant."})
        if self.policy_id and self.policy is not None and self.policy.tenant_id != self.tenant_id:
            raise ValidationError({"policy": "The policy belongs to another tenant."})
        policy = (
            self.policy
            if self.policy_id
            else ScanPolicy.objects.filter(tenant_id=self.tenant_id, is_default=True).first()
        )
        if policy is not None and self.name and policy.quarantine_bucket == self.name:
            # As protection.set_bucket_policy refuses it: the bucket would quarantine its own copies.
            raise ValidationError(
                {"policy": f"Policy {policy.name!r} quarantines into {self.name} itself: choose another."}
            )

    def effective_policy(self) -> ScanPolicy:
        return self.policy or ScanPolicy.default_for(self.tenant)


def quarantine_loop(tenant: Tenant, quarantine_bucket: str, policy: ScanPolicy | None) -> str | None:
    """Why quarantining into ``quarantine_bucket`` under ``policy`` would loop, or None.

    A quarantine bucket that s3av scans (protected, or one the policy applies to) would have its own
    quarantine copies scanned and quarantined again, the key growing each round.
    """
    if not quarantine_bucket:
        return None
    same_name = Bucket.objects.filter(tenant=tenant, name=quarantine_bucket)
    if same_name.filter(protected=True).exists():
        return (
            f"{quarantine_bucket} is a protected bucket: s3av would scan its own quarantine copies. "
            "Quarantine into a bucket s3av does not protect."
        )
    if policy is not None and policy.pk is not None:
        uses = same_name.filter(policy=policy)
        if policy.is_default:
            uses = same_name.filter(models.Q(policy=policy) | models.Q(policy__isnull=True))
        if uses.exists():
            return (
                f"This policy applies to {quarantine_bucket} itself: quarantined objects would be scanned "
                "and quarantined again. Quarantine into another bucket."
            )
    return None


# Verdicts that are findings: someone has to decide what happens to the object.
FINDING_VERDICTS = (Verdict.INFECTED, Verdict.UNSCANNABLE, Verdict.ERROR)


class TriageState(models.TextChoices):
    OPEN = "open"
    RESOLVED = "resolved"


class Resolution(models.TextChoices):
    RELEASED = "released", "Released as a false positive"
    DELETED = "deleted", "The object version was deleted (by an operator)"
    DELETED_BY_POLICY = "deleted_by_policy", "The policy deleted the infected version"
    GONE = "gone", "The object was already gone when an operator deleted it"


class TriageAction(models.TextChoices):
    """An operator's triage of a finding, under way or done (the last word of ``ScanResult.action``)."""

    RELEASING = "releasing"
    RELEASED = "released"
    DELETING = "deleting"
    DELETED = "deleted"


# What s3av did to the object version, in the order ``ScanResult.action`` names them.
ACTION_FLAGS = ("stored", "tagged", "promoted", "quarantined", "deleted", "superseded", "released")
# The flags an automatic action sets (``stored`` and ``released`` are set when the row is created).
POLICY_ACTION_FLAGS = ("tagged", "promoted", "quarantined", "deleted", "superseded")

# A version s3av itself took out of the bucket: quarantined, or deleted (by the policy or an operator).
MOVED_AWAY = Q(quarantined=True) | Q(deleted=True) | Q(triage_action=TriageAction.DELETED)


def action_text(flags: dict[str, bool], action_status: str, triage: str) -> str:
    """The ``+``-joined action of the API and the notifications (DESIGN.md), from the fields.

    ``none``: acted and nothing was to be done; ``failed``: an action failed; the triage comes last.
    """
    done = [name for name in ACTION_FLAGS if flags.get(name)]
    if action_status == "failed":
        done.append("failed")
    base = "+".join(done) or ("none" if action_status == "done" else "")
    if not triage:
        return base
    return f"{base}+{triage}" if base else triage


def parse_action_text(text: str, verdict: str, resolution: str) -> tuple[dict[str, bool], str]:
    """The flags and the triage an action text names (the inverse of ``action_text``).

    A last "deleted" is the policy's delete when the finding was resolved so, else an operator's; a lone
    "released" is the restored copy of a release (verdict InfectedAllowed), else the release itself.
    """
    tokens = [token for token in (text or "").split("+") if token]
    triage = ""
    last = tokens[-1] if tokens else ""
    if last in {TriageAction.RELEASING, TriageAction.DELETING}:
        triage = tokens.pop()
    elif last == TriageAction.RELEASED and not (len(tokens) == 1 and verdict == Verdict.INFECTED_ALLOWED):
        triage = tokens.pop()
    elif last == TriageAction.DELETED and resolution != Resolution.DELETED_BY_POLICY:
        triage = tokens.pop()
    return {name: name in tokens for name in ACTION_FLAGS}, triage


class ScanResultQuerySet(models.QuerySet["ScanResult"]):
    def final(self) -> ScanResultQuerySet:
        return self.exclude(verdict="")

    def moved_away(self) -> ScanResultQuerySet:
        return self.filter(MOVED_AWAY)


class ScanResult(models.Model):
    """One scan of one object version. Pinned to (bucket, key, version id, ETag, size).

    A row is created when a worker claims the scan (verdict empty) and completed with the verdict;
    ``dedupe_key`` makes duplicate requests for the same scan collapse onto one row.
    """

    class ActionStatus(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="scan_results")
    bucket = models.ForeignKey(
        Bucket, null=True, blank=True, on_delete=models.CASCADE, related_name="results"
    )
    bucket_name = models.CharField(max_length=63)
    key = models.TextField()
    version_id = models.CharField(max_length=1024, blank=True)
    etag = models.CharField(max_length=128, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    # The scanned version's LastModified (to the second): in an unversioned bucket (or a request that
    # named no version) the same key and ETag uploaded again is a new object, told apart by this.
    last_modified = models.DateTimeField(null=True, blank=True)
    # The S3 event's sequencer, when the scan came from one: orders the writes of one key, so a later
    # upload of the same bytes is told from a redelivered (or older) event even within one second.
    sequencer = models.CharField(max_length=64, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True, db_index=True)
    signatures = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)
    engine = models.CharField(max_length=100, blank=True)
    signature_version = models.CharField(max_length=100, blank=True)
    # What was done to the object version (``action`` names them as the API shows it).
    stored = models.BooleanField(default=False, help_text="Written to the bucket by the scan API.")
    tagged = models.BooleanField(default=False)
    promoted = models.BooleanField(default=False, help_text="Copied to the policy's destination.")
    quarantined = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False, help_text="The policy deleted the version.")
    superseded = models.BooleanField(default=False, help_text="A newer verdict or upload applies instead.")
    released = models.BooleanField(default=False, help_text="The copy a release restored from quarantine.")
    triage_action = models.CharField(max_length=16, choices=TriageAction.choices, blank=True)
    # S3 said the object (version) is not there (ObjectGone), so there is nothing to tag or act on.
    object_gone = models.BooleanField(default=False)
    action_status = models.CharField(max_length=16, choices=ActionStatus.choices, blank=True)
    action_detail = models.TextField(blank=True)
    tags_dropped = models.JSONField(default=list, blank=True)
    quarantine_bucket = models.CharField(max_length=63, blank=True)
    quarantine_key = models.TextField(blank=True)
    quarantine_version_id = models.CharField(max_length=1024, blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.EVENT)
    dedupe_key = models.CharField(max_length=64, unique=True)
    attempts = models.PositiveIntegerField(default=0)
    claimed_until = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    scanned_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Triage: a finding is open until it is resolved (released, deleted by an operator or by the policy).
    # A quarantined finding stays open: its copy still waits for a release or a delete.
    resolution = models.CharField(max_length=32, choices=Resolution.choices, blank=True)
    resolved_by = models.CharField(max_length=254, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Computed by the database from the verdict and resolved_at, so no path that records a verdict can
    # forget it: "open" for an unresolved finding, "resolved", or "" (Clean, pending).
    triage_state = models.GeneratedField(
        expression=models.Case(
            models.When(resolved_at__isnull=False, then=models.Value(TriageState.RESOLVED.value)),
            models.When(
                verdict__in=[v.value for v in FINDING_VERDICTS], then=models.Value(TriageState.OPEN.value)
            ),
            default=models.Value(""),
        ),
        output_field=models.CharField(max_length=16, choices=TriageState.choices, blank=True),
        db_persist=True,
    )

    objects = ScopedManager(tenant="tenant", _manager_class=models.Manager.from_queryset(ScanResultQuerySet))

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "bucket_name", "key"], name="result_object_idx"),
            # The portal's findings list pages on (scanned_at, id) from these (scanning/views/keyset.py),
            # and the dashboard counts open findings from the second.
            models.Index(
                fields=["tenant", "-scanned_at", "-id"],
                name="result_finding_keyset_idx",
                condition=models.Q(verdict__in=[v.value for v in FINDING_VERDICTS]),
            ),
            models.Index(
                fields=["tenant", "-scanned_at", "-id"],
                name="result_open_finding_idx",
                condition=models.Q(triage_state=TriageState.OPEN.value),
            ),
            # The dashboard's charts aggregate verdicts and sizes by time from the index alone.
            models.Index(
                fields=["tenant", "scanned_at"], name="result_tenant_scanned_idx", include=["verdict", "size"]
            ),
        ]

    def __str__(self) -> str:
        return f"s3://{self.bucket_name}/{self.key} {self.verdict or 'pending'}"

    @property
    def is_final(self) -> bool:
        return bool(self.verdict)

    @property
    def action(self) -> str:
        """What was done, as the API, the notifications and the portal show it: ``tagged+quarantined``."""
        flags = {name: getattr(self, name) for name in ACTION_FLAGS}
        return action_text(flags, self.action_status, self.triage_action)

    @action.setter
    def action(self, text: str) -> None:
        flags, self.triage_action = parse_action_text(text, self.verdict, self.resolution)
        for name, value in flags.items():
            setattr(self, name, value)

    @property
    def moved_away(self) -> bool:
        return self.quarantined or self.deleted or self.triage_action == TriageAction.DELETED

    @property
    def triaged(self) -> bool:
        """Released or deleted (or that is under way): no further triage."""
        return bool(self.triage_action) or self.deleted or self.released

    def resolve(self, resolution: str, by: str) -> None:
        """Mark this finding resolved (saved at once); the first resolution stands."""
        now = timezone.now()
        ScanResult.objects.filter(pk=self.pk, resolved_at__isnull=True).update(
            resolution=resolution, resolved_by=by[:254], resolved_at=now
        )
        self.refresh_from_db(fields=["resolution", "resolved_by", "resolved_at", "triage_state"])

    @staticmethod
    def lease(seconds: int) -> Any:
        return timezone.now() + timedelta(seconds=seconds)


# =====================================================================================================
# issue 5: bucket scans, schedules and usage. Kept together at the end of the module.
# =====================================================================================================


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    LISTING = "listing"
    SCANNING = "scanning"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.LISTING, JobStatus.SCANNING)


class JobTrigger(models.TextChoices):
    MANUAL = "manual"
    API = "api"
    SCHEDULE = "schedule"
    PROTECT = "protect", "First protection of the bucket"
    INFECTED = "infected", "Malware found in the bucket"
    SIGNATURES = "signatures", "Signature database changed"


class ScanJobQuerySet(models.QuerySet["ScanJob"]):
    def running(self) -> ScanJobQuerySet:
        return self.filter(status__in=ACTIVE_JOB_STATUSES)

    def for_target(self, bucket: Bucket, prefix: str = "", key: str = "") -> ScanJobQuerySet:
        return self.filter(bucket=bucket, prefix=prefix, key=key)


class ScanJob(models.Model):
    """A scan of what a bucket (or a prefix of it, or one object) already holds.

    Counters: ``listed`` objects were in scope; each ends ``skipped`` (already known with the current
    signatures, or moot) or ``scanned`` (then one of clean_count/infected/unscannable/errors). ``queued``
    were sent to the scan queue. The job is done when listing ended and scanned + skipped == listed.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="scan_jobs")
    bucket = models.ForeignKey(Bucket, on_delete=models.CASCADE, related_name="jobs")
    prefix = models.CharField(max_length=1024, blank=True)
    key = models.TextField(blank=True, help_text="Set for a scan of one object (the scan API's async mode).")
    version_id = models.CharField(max_length=1024, blank=True)
    modified_after = models.DateTimeField(null=True, blank=True)
    modified_before = models.DateTimeField(null=True, blank=True)
    all_versions = models.BooleanField(default=False)
    trigger = models.CharField(max_length=16, choices=JobTrigger.choices, default=JobTrigger.MANUAL)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    listed = models.BigIntegerField(default=0)
    queued = models.BigIntegerField(default=0)
    scanned = models.BigIntegerField(default=0)
    clean_count = models.BigIntegerField(default=0)  # not "clean": that would hide Model.clean()
    infected = models.BigIntegerField(default=0)
    unscannable = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    skipped = models.BigIntegerField(default=0)
    pages_listed = models.PositiveIntegerField(default=0)
    # The listing's continuation token after the last page whose scans were enqueued: a restarted
    # worker resumes here instead of starting over.
    list_token = models.TextField(blank=True)
    signature_version = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    result = models.ForeignKey(ScanResult, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(tenant="tenant", _manager_class=models.Manager.from_queryset(ScanJobQuerySet))

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Never two running jobs for the same target (schedules, protection and people alike).
            models.UniqueConstraint(
                fields=["bucket", "prefix", "key"],
                condition=models.Q(status__in=["queued", "listing", "scanning"]),
                name="scanjob_one_running_per_target",
            )
        ]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="scanjob_tenant_created_idx")]

    def __str__(self) -> str:
        target = self.key or self.prefix
        return f"scan of s3://{self.bucket.name}/{target} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_JOB_STATUSES

    @property
    def pending(self) -> int:
        return max(self.listed - self.scanned - self.skipped, 0)

    def in_window(self, modified: Any) -> bool:
        if modified is None:
            return self.modified_after is None and self.modified_before is None
        if self.modified_after is not None and modified < self.modified_after:
            return False
        return not (self.modified_before is not None and modified >= self.modified_before)


class ScanJobItem(models.Model):
    """One scan a job enqueued and has not counted yet; makes counting exactly-once per job.

    A redelivered scan message finds its item done and counts nothing; cancelling deletes the items,
    which turns the job's pending scans into no-ops. A finished job's items are deleted.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(ScanJob, on_delete=models.CASCADE, related_name="items")
    dedupe_key = models.CharField(max_length=64)
    done = models.BooleanField(default=False)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "dedupe_key"], name="scanjobitem_unique")]

    def __str__(self) -> str:
        return f"{self.job_id} {self.dedupe_key[:12]} {'done' if self.done else 'pending'}"


def validate_cron(value: str) -> None:
    """A five-field cron expression (or @hourly ... @yearly) that fires at most once an hour."""
    text = (value or "").strip()
    aliases = {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}
    if text.startswith("@"):
        if text not in aliases:
            raise ValidationError(f"Use one of {', '.join(sorted(aliases))}, or five cron fields.")
        return
    fields = text.split()
    if len(fields) != 5:
        raise ValidationError(
            "A cron expression has five fields: minute hour day-of-month month day-of-week."
        )
    if not croniter.is_valid(text):
        raise ValidationError(f"{text!r} is not a valid cron expression.")
    minutes = croniter(text).expanded[0]
    if len(minutes) != 1 or minutes[0] == "*":
        raise ValidationError("Schedules run at most once an hour: give one fixed minute, e.g. '0 * * * *'.")
    try:
        croniter(text, timezone.now()).get_next(datetime)
    except Exception:  # croniter raises CroniterBadDateError for dates that never come (31 February)
        raise ValidationError(f"{text!r} never fires.") from None


class Schedule(models.Model):
    """A cron schedule (UTC) that starts a scan of a bucket or prefix."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="schedules")
    bucket = models.ForeignKey(Bucket, on_delete=models.CASCADE, related_name="schedules")
    prefix = models.CharField(max_length=1024, blank=True)
    cron = models.CharField(max_length=100, validators=[validate_cron], help_text="UTC, at most hourly.")
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_job = models.ForeignKey(ScanJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="schedule_due_idx")]

    def __str__(self) -> str:
        return f"{self.cron} s3://{self.bucket.name}/{self.prefix}"

    def next_after(self, when: datetime) -> datetime:
        return croniter(self.cron.strip(), when.astimezone(UTC)).get_next(datetime)


class UsageMonth(models.Model):
    """Objects and bytes a tenant scanned in one calendar month (UTC).

    Counted as scans finish rather than computed from ScanResult: the scan API's uploads leave no
    result row, results may be pruned, and the usage report must stay one cheap query.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_months")
    month = models.DateField(help_text="The first day of the month.")
    objects_scanned = models.BigIntegerField(default=0)
    bytes_scanned = models.BigIntegerField(default=0)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["-month"]
        constraints = [models.UniqueConstraint(fields=["tenant", "month"], name="usage_month_unique")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.month:%Y-%m}"

    @classmethod
    def bytes_this_month(cls, tenant: Tenant) -> int:
        month = timezone.now().astimezone(UTC).date().replace(day=1)
        row = cls.objects.filter(tenant=tenant, month=month).values_list("bytes_scanned", flat=True).first()
        return int(row or 0)

    @staticmethod
    def month_of(when: datetime | None = None) -> date:
        return (when or timezone.now()).astimezone(UTC).date().replace(day=1)

    @classmethod
    def add(cls, tenant: Tenant, objects: int = 1, size: int = 0, when: datetime | None = None) -> None:
        """Count scans with F() increments, creating the month's row on first use."""
        cls.add_to(tenant.pk, cls.month_of(when), objects, size)

    @classmethod
    def add_to(cls, tenant_id: Any, month: date, objects: int, size: int) -> None:
        """``add`` by the tenant's id for a month worked out already (how ``pipeline.usage`` flushes)."""
        bump = {"objects_scanned": F("objects_scanned") + objects, "bytes_scanned": F("bytes_scanned") + size}
        if cls.objects.filter(tenant_id=tenant_id, month=month).update(**bump):
            return
        try:
            with transaction.atomic():
                cls.objects.create(
                    tenant_id=tenant_id, month=month, objects_scanned=objects, bytes_scanned=size
                )
        except IntegrityError:  # another scan created the row first (or the tenant is gone)
            cls.objects.filter(tenant_id=tenant_id, month=month).update(**bump)


# =====================================================================================================
# Notification channels: where a tenant's scan results are published. Kept together at the end.
# =====================================================================================================


class ChannelKind(models.TextChoices):
    SNS = "sns", "SNS topic"
    WEBHOOK = "webhook", "Webhook (HTTPS)"
    EMAIL = "email", "Email to the tenant's admins"


def _default_channel_results() -> list[str]:
    return [Verdict.INFECTED.value]


# The verdicts each tenant's enabled channels want, per process, for CHANNEL_VERDICTS_TTL seconds:
# every scan result asks. Saving or deleting a channel forgets it here; another process's change is
# seen within the TTL.
CHANNEL_VERDICTS_TTL = 5.0
_channel_verdicts: dict[Any, tuple[float, frozenset[str]]] = {}
_channel_verdicts_lock = threading.Lock()


class NotificationChannel(models.Model):
    """An SNS topic (in a linked account), a webhook URL, or email to the tenant's admins.

    ``results`` lists the verdicts sent. A webhook's ``secret`` signs its requests; the API shows it
    once, on create.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="notification_channels")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    target = models.CharField(
        max_length=2048, blank=True, help_text="SNS topic ARN, https URL, or empty for email."
    )
    account = models.ForeignKey(
        "linked_accounts.AwsAccount",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_channels",
        help_text="The linked account that owns the SNS topic.",
    )
    results = models.JSONField(default=_default_channel_results)
    secret = models.CharField(max_length=128, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    last_error = models.TextField(blank=True)
    last_delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        fields = kwargs.get("update_fields")
        if fields is None or {"enabled", "results"} & set(fields):  # not a delivery's bookkeeping
            self._forget_wanted_verdicts()

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        self._forget_wanted_verdicts()
        return super().delete(*args, **kwargs)

    def _forget_wanted_verdicts(self) -> None:
        # Now, and again once the change commits: a thread of this process that read the old rows
        # in between must not keep them for the cache's TTL.
        tenant_id = self.tenant_id
        NotificationChannel.forget_wanted_verdicts(tenant_id)
        transaction.on_commit(lambda: NotificationChannel.forget_wanted_verdicts(tenant_id))

    @staticmethod
    def forget_wanted_verdicts(tenant_id: Any) -> None:
        with _channel_verdicts_lock:
            _channel_verdicts.pop(tenant_id, None)

    @classmethod
    def wanted_verdicts(cls, tenant: Tenant) -> frozenset[str]:
        """The verdicts any enabled channel of the tenant wants, as saved at most CHANNEL_VERDICTS_TTL
        seconds ago."""
        with _channel_verdicts_lock:
            cached = _channel_verdicts.get(tenant.pk)
        if cached is not None and time.monotonic() - cached[0] < CHANNEL_VERDICTS_TTL:
            return cached[1]
        # Filtered here rather than with a JSON lookup so SQLite installs work too.
        filters = cls.objects.filter(tenant=tenant, enabled=True).values_list("results", flat=True)
        wanted = frozenset(verdict for results in filters for verdict in (results or []))
        with _channel_verdicts_lock:
            _channel_verdicts[tenant.pk] = (time.monotonic(), wanted)
        return wanted

    def wants(self, verdict: str) -> bool:
        return self.enabled and verdict in (self.results or [])

    def clean(self) -> None:
        super().clean()
        if self.account_id and self.account is not None and self.account.tenant_id != self.tenant_id:
            raise ValidationError({"account": "The account belongs to another tenant."})

    def mark_delivered(self) -> None:
        self.last_delivered_at = timezone.now()
        self.last_error = ""
        self.save(update_fields=["last_delivered_at", "last_error"])

    def mark_failed(self, error: str) -> None:
        STATS.notification_failed()
        self.last_error = error[:2000]
        self.save(update_fields=["last_error"])


# =====================================================================================================
# The deployment: signature updates and the worker fleet. Not tenant data (no tenant, no scope).
# =====================================================================================================


class SignatureUpdate(models.Model):
    """One run of ``manage.py update_signatures``: the system event an operator (and the metrics and
    the fleet's notifications) read. Deployment-wide, so not in any tenant's audit log."""

    class Status(models.TextChoices):
        CURRENT = "current"
        UPDATED = "updated"
        REJECTED = "rejected"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    host = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=1024, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.TextField(blank=True)
    generation = models.CharField(max_length=64, blank=True)
    downloaded = models.JSONField(default=list, blank=True)
    removed = models.JSONField(default=list, blank=True)
    versions = models.JSONField(default=dict, blank=True, help_text="clamd address -> VERSION after reload")
    alerted_at = models.DateTimeField(null=True, blank=True, help_text="When a failure was notified.")

    class Meta:
        ordering = ["-started_at"]
        get_latest_by = "started_at"

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M} {self.status} {self.generation}"


class AgentQuerySet(models.QuerySet["Agent"]):
    def lost_before(self, cutoff: datetime) -> AgentQuerySet:
        return self.filter(stopped_at__isnull=True, last_seen_at__lt=cutoff)

    def alive_since(self, cutoff: datetime) -> AgentQuerySet:
        return self.filter(stopped_at__isnull=True, last_seen_at__gte=cutoff)


class Agent(models.Model):
    """One worker process of the fleet, kept up to date by its heartbeat (scanning/fleet/agents.py)."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        LOST = "lost"
        STOPPED = "stopped"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True)
    engine = models.CharField(max_length=100, blank=True)
    signature_version = models.CharField(max_length=100, blank=True)
    # Seconds since the signatures in use were published (official databases) or last found current.
    signature_age = models.PositiveIntegerField(null=True, blank=True)
    engine_ok = models.BooleanField(default=True)
    scans_in_flight = models.PositiveIntegerField(default=0)
    scans_done = models.PositiveBigIntegerField(default=0)
    # The process's counters (scanning/fleet/stats.py): verdicts, bytes, histograms; exposed by /metrics.
    stats = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Operational notifications already sent for this agent's current trouble, so each fires once.
    alerts = models.JSONField(default=dict, blank=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["host", "pid"]

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"

    def status_at(self, now: datetime, lost_after: timedelta) -> str:
        if self.stopped_at is not None:
            return self.Status.STOPPED
        if now - self.last_seen_at > lost_after:
            return self.Status.LOST
        return self.Status.ACTIVE

from __future__ import annotations

import fnmatch
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from accounts.models import Tenant


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


class ScanPolicy(models.Model):
    """What to scan and what to do with each verdict."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="scan_policies")
    name = models.CharField(max_length=100)
    is_default = models.BooleanField(default=False)
    max_object_size = models.BigIntegerField(default=_default_max_size, validators=[MinValueValidator(1)])
    include_patterns = models.JSONField(default=list, blank=True, help_text="Glob patterns; empty: every key.")
    exclude_patterns = models.JSONField(default=list, blank=True)
    tag_objects = models.BooleanField(default=True)
    tag_result_key = models.CharField(max_length=128, default="scan-result")
    tag_date_key = models.CharField(max_length=128, default="date-scanned")
    tag_virus_key = models.CharField(max_length=128, default="virus-name")
    tag_message_key = models.CharField(max_length=128, default="message")
    on_infected = models.CharField(max_length=16, choices=InfectedAction.choices, default=InfectedAction.KEEP)
    on_unscannable = models.CharField(max_length=16, choices=ProblemAction.choices, default=ProblemAction.KEEP)
    on_error = models.CharField(max_length=16, choices=ProblemAction.choices, default=ProblemAction.KEEP)
    quarantine_bucket = models.CharField(max_length=63, blank=True)
    quarantine_prefix = models.CharField(max_length=512, blank=True, default="quarantine/")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

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

    @property
    def managed_tag_keys(self) -> tuple[str, ...]:
        return (self.tag_result_key, self.tag_date_key, self.tag_virus_key, self.tag_message_key)

    def wants(self, key: str) -> bool:
        """Whether a key is in scope for this policy (include, then exclude patterns)."""
        if self.include_patterns and not any(fnmatch.fnmatchcase(key, p) for p in self.include_patterns):
            return False
        return not any(fnmatch.fnmatchcase(key, p) for p in self.exclude_patterns)

    def needs_quarantine_bucket(self) -> bool:
        return InfectedAction.QUARANTINE in {self.on_infected, self.on_unscannable, self.on_error}

    @classmethod
    def default_for(cls, tenant: Tenant) -> ScanPolicy:
        policy, _ = cls.objects.get_or_create(tenant=tenant, is_default=True, defaults={"name": "Default"})
        return policy


class Bucket(models.Model):
    """A bucket in one of the tenant's linked accounts."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="buckets")
    account = models.ForeignKey("linked_accounts.AwsAccount", on_delete=models.CASCADE, related_name="buckets")
    name = models.CharField(max_length=63)
    region = models.CharField(max_length=32, default="us-east-1")
    versioning = models.CharField(max_length=16, blank=True, help_text="Enabled, Suspended, or empty.")
    encryption = models.CharField(max_length=32, blank=True)
    policy = models.ForeignKey(ScanPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="buckets")
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
        return self.versioning in {"Enabled", "Suspended"}

    def effective_policy(self) -> ScanPolicy:
        return self.policy or ScanPolicy.default_for(self.tenant)


class ScanResultQuerySet(models.QuerySet["ScanResult"]):
    def final(self) -> ScanResultQuerySet:
        return self.exclude(verdict="")

    def for_version(self, bucket: Bucket, key: str, version_id: str, etag: str) -> ScanResultQuerySet:
        return self.filter(bucket=bucket, key=key, version_id=version_id, etag=etag)


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
    bucket = models.ForeignKey(Bucket, null=True, blank=True, on_delete=models.CASCADE, related_name="results")
    bucket_name = models.CharField(max_length=63)
    key = models.TextField()
    version_id = models.CharField(max_length=1024, blank=True)
    etag = models.CharField(max_length=128, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True, db_index=True)
    signatures = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)
    engine = models.CharField(max_length=100, blank=True)
    signature_version = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=32, blank=True)
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

    objects = ScopedManager(tenant="tenant", _manager_class=models.Manager.from_queryset(ScanResultQuerySet))

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "bucket_name", "key"], name="result_object_idx")]

    def __str__(self) -> str:
        return f"s3://{self.bucket_name}/{self.key} {self.verdict or 'pending'}"

    @property
    def is_final(self) -> bool:
        return bool(self.verdict)

    def lease_expired(self) -> bool:
        return self.claimed_until is None or self.claimed_until < timezone.now()

    @staticmethod
    def lease(seconds: int) -> Any:
        return timezone.now() + timedelta(seconds=seconds)

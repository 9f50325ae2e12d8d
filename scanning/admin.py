from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from accounts.admin import AuditedAdmin, ReadOnlyAdmin
from scanning.models import (
    Agent,
    Bucket,
    NotificationChannel,
    ScanJob,
    ScanPolicy,
    ScanResult,
    Schedule,
    SignatureUpdate,
    UsageMonth,
)


@admin.register(ScanPolicy)
class ScanPolicyAdmin(AuditedAdmin):
    list_display = ["name", "tenant", "is_default", "on_infected", "quarantine_bucket", "max_object_size"]
    list_filter = ["tenant", "on_infected"]
    search_fields = ["name", "tenant__name"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A policy never moves between tenants; references are checked by ScanPolicy.clean().
        return ["tenant", "is_default"] if obj is not None else []


@admin.register(Bucket)
class BucketAdmin(AuditedAdmin):
    list_display = ["name", "tenant", "account", "region", "protected", "policy", "missing_since"]
    list_filter = ["tenant", "protected", "region"]
    search_fields = ["name", "tenant__name", "account__account_id"]
    # A bucket belongs to its account's tenant; only its policy may change here (checked by Bucket.clean()).
    readonly_fields = [
        "tenant", "account", "name", "region", "versioning", "encryption", "protected", "protection",
        "missing_since", "discovered_at", "created_at",
    ]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # buckets come from discovery


@admin.register(ScanResult)
class ScanResultAdmin(ReadOnlyAdmin):
    # Verdicts are evidence: support staff read them; changes go through triage, which is audited.
    list_display = ["scanned_at", "tenant", "bucket_name", "key", "verdict", "action", "trigger"]
    list_filter = ["verdict", "trigger", "tenant"]
    search_fields = ["key", "bucket_name", "sha256", "signatures"]
    date_hierarchy = "created_at"


@admin.register(ScanJob)
class ScanJobAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "tenant",
        "bucket",
        "prefix",
        "trigger",
        "status",
        "listed",
        "scanned",
        "infected",
    ]
    list_filter = ["status", "trigger", "tenant"]
    search_fields = ["bucket__name", "prefix", "tenant__name"]


@admin.register(Schedule)
class ScheduleAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "bucket", "prefix", "cron", "enabled", "next_run_at", "last_run_at"]
    list_filter = ["enabled", "tenant"]


@admin.register(UsageMonth)
class UsageMonthAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "month", "objects_scanned", "bytes_scanned"]
    list_filter = ["tenant"]


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ReadOnlyAdmin):
    # Changes go through the audited API; the webhook secret is never shown.
    list_display = ["name", "tenant", "kind", "target", "enabled", "last_delivered_at", "last_error"]
    list_filter = ["kind", "enabled", "tenant"]
    search_fields = ["name", "target", "tenant__name"]
    exclude = ["secret"]


@admin.register(Agent)
class AgentAdmin(ReadOnlyAdmin):
    list_display = [
        "host", "pid", "queues", "signature_version", "signature_age", "engine_ok", "scans_in_flight",
        "scans_done", "last_seen_at", "stopped_at",
    ]  # fmt: skip
    list_filter = ["engine_ok", "host"]
    search_fields = ["host", "signature_version", "last_error"]


@admin.register(SignatureUpdate)
class SignatureUpdateAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "host", "source", "status", "generation", "reason"]
    list_filter = ["status", "host"]
    date_hierarchy = "started_at"

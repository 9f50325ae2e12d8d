"""Django admin for linked accounts (support staff; changes are audited by AuditedAdmin)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from accounts.admin import AuditedAdmin
from linked_accounts.models import AwsAccount


@admin.register(AwsAccount)
class AwsAccountAdmin(AuditedAdmin):
    list_display = ["account_id", "name", "tenant", "status", "last_checked_at", "created_at"]
    list_filter = ["status"]
    search_fields = ["account_id", "name", "tenant__name", "role_arn"]
    list_select_related = ["tenant"]
    readonly_fields = [
        "id",
        "tenant",
        "account_id",
        "external_id",
        "last_checked_at",
        "last_error",
        "created_at",
    ]
    fields = [
        "id",
        "tenant",
        "account_id",
        "name",
        "role_arn",
        "external_id",
        "status",
        "last_checked_at",
        "last_error",
        "created_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Tenants link accounts themselves (the external id must reach them through the template).
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting here would skip the tear-down of queues and notifications; use the API.
        return False

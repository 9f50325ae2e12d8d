"""Django admin for linked accounts (support staff; changes are audited by AuditedAdmin)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest

from accounts.admin import AuditedAdmin, _staff_actor
from accounts.services import ServiceError
from linked_accounts import services
from linked_accounts.models import AwsAccount


@admin.action(description="Verify the role of the selected accounts")
def verify_accounts(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: models.QuerySet[AwsAccount]
) -> None:
    # The same checks as the API's verify (same account, external id, confused deputy), audited.
    for account in queryset.select_related("tenant"):
        try:
            services.verify_account(account.tenant, _staff_actor(request), account, account.role_arn)
        except ServiceError as exc:
            messages.error(request, f"{account.account_id}: {exc.message}")
        else:
            messages.success(request, f"{account.account_id}: connected.")


@admin.register(AwsAccount)
class AwsAccountAdmin(AuditedAdmin):
    list_display = ["account_id", "name", "tenant", "status", "last_checked_at", "created_at"]
    list_filter = ["status"]
    search_fields = ["account_id", "name", "tenant__name", "role_arn"]
    list_select_related = ["tenant"]
    # The role ARN and the status change only through verify_account (the tenant's API, or the
    # "verify" action here), never by typing: that would skip the same-account and confused-deputy checks.
    readonly_fields = [
        "id",
        "tenant",
        "account_id",
        "role_arn",
        "external_id",
        "status",
        "last_checked_at",
        "last_error",
        "created_at",
    ]
    actions = [verify_accounts]
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

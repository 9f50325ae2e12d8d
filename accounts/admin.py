"""Django admin for support staff. Every change made here is written to the audit log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models
from django.http import HttpRequest

from accounts import services
from accounts.models import ApiKey, AuditEvent, Membership, Tenant, User


def _tenant_of(obj: Any) -> Tenant | None:
    if isinstance(obj, Tenant):
        return obj
    return getattr(obj, "tenant", None)


def _staff_actor(request: HttpRequest) -> services.Actor:
    return services.Actor(
        user=request.user,  # type: ignore[arg-type]
        ip=getattr(request, "client_ip", None),
        label_override=f"staff:{request.user}",
    )


class AuditedAdmin(admin.ModelAdmin):
    """Writes an AuditEvent next to Django's LogEntry for every add, change and delete."""

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        services.record(_tenant_of(obj), _staff_actor(request), "staff.add", obj, {"message": str(message)})
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        services.record(
            _tenant_of(obj), _staff_actor(request), "staff.change", obj, {"message": str(message)}
        )
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> Any:
        for obj in queryset:
            services.record(_tenant_of(obj), _staff_actor(request), "staff.delete", obj)
        return super().log_deletions(request, queryset)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(AuditedAdmin):
    list_display = ["name", "slug", "status", "sso_required", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "slug"]
    readonly_fields = ["id", "created_at"]
    inlines = [MembershipInline]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Tenants are suspended, not deleted: their audit trail must survive.
        return False


@admin.register(User)
class UserAdmin(AuditedAdmin, DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "is_staff", "is_active", "date_joined"]
    search_fields = ["email", "name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__email", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]


@admin.action(description="Revoke selected API keys")
def revoke_keys(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: models.QuerySet[ApiKey]
) -> None:
    for key in queryset.select_related("tenant"):
        services.revoke_api_key(key.tenant, _staff_actor(request), key)
    messages.success(request, "Revoked.")


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin):
    list_display = [
        "name",
        "tenant",
        "role",
        "prefix",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["role", "tenant"]
    search_fields = ["name", "prefix", "tenant__name"]
    # The secret is never stored; its hash is not shown either.
    exclude = ["secret_hash"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at", "tenant"]
    actions = [revoke_keys]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Keys are created through the API or `create_api_key`, which show the secret once.
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Support staff read these; changes go through the audited services (API, triage), never here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "actor_label", "action", "target_repr", "ip"]
    list_filter = ["action", "tenant"]
    search_fields = ["actor_label", "action", "target_repr", "target_id"]
    date_hierarchy = "created_at"

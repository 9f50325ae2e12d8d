"""Django admin for support staff. Every change made here is written to the audit log."""

from __future__ import annotations

import json
import re
from typing import Any

from allauth.account.decorators import secure_admin_login
from allauth.account.models import EmailAddress
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models
from django.http import HttpRequest
from django_dramatiq.models import Task

from accounts import services
from accounts.models import ApiKey, AuditEvent, Membership, Tenant, User, validate_cidrs


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


class CidrListField(forms.CharField):
    """CIDR ranges typed one a line (or comma-separated), kept as the JSON list the model holds."""

    widget = forms.Textarea(attrs={"rows": 4})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(str(item) for item in value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = (super().to_python(value) or "").strip()
        if text.startswith("["):  # a JSON list pasted as before (or from the API) is read as such
            try:
                parsed = json.loads(text)
            except ValueError:
                raise forms.ValidationError("Not a JSON list; or give one CIDR range a line.") from None
            if isinstance(parsed, list):
                return [str(item).strip() for item in parsed if str(item).strip()]
        return [item for item in re.split(r"[\s,]+", text) if item]

    def validate(self, value: Any) -> None:
        validate_cidrs(value)  # the model's (and so the API's) rule


class TenantAdminForm(forms.ModelForm):
    allowed_cidrs = CidrListField(
        required=False,
        help_text="One CIDR range a line (or comma-separated), e.g. 203.0.113.0/24; empty: any address.",
    )

    class Meta:
        model = Tenant
        fields = [
            "name", "slug", "status", "allowed_cidrs", "sso_required", "max_scan_bytes",
            "monthly_scan_bytes_limit",
        ]  # fmt: skip


@admin.register(Tenant)
class TenantAdmin(AuditedAdmin):
    # Every field is validated by the model (validators and Tenant.clean()), exactly as the API does.
    form = TenantAdminForm
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


# Staff sign in through allauth's form like everyone else, so the sign-in rules and the audit
# (auth.break_glass into SSO-only tenants) apply; Django's own admin form would skip both.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]


# Sections support staff do not need: allauth's email addresses (sign-in uses User.email; a row edited
# here would disagree with it) and django_dramatiq's task list, which stays empty because the broker
# keeps no results in the database (no AdminMiddleware).
def _hide_third_party_sections() -> None:
    for model in (EmailAddress, Task):
        if admin.site.is_registered(model):
            admin.site.unregister(model)


_hide_third_party_sections()

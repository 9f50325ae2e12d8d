"""Settings pages (tenant admins only): members and roles, API keys, the tenant's settings.

Every write calls the accounts.services function the API calls; a refusal from it becomes an error
next to the field it names. Anyone below admin gets 403 and sees no link here (s3av/nav.py).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services
from accounts.forms import ApiKeyForm, InviteMemberForm, RoleForm, TenantSettingsForm
from accounts.middleware import role_of
from accounts.models import ApiKey, Membership, Role, Tenant, role_at_least
from accounts.services import Actor, ServiceError

MEMBERS_PAGE = 50
KEYS_PAGE = 50


def admin_tenant(request: HttpRequest) -> Tenant:
    """The request's tenant, for an admin of it; 403 for anyone else signed in."""
    tenant: Tenant | None = getattr(request, "tenant", None)
    if tenant is None or not role_at_least(role_of(request), Role.ADMIN):
        raise PermissionDenied("Settings are for the tenant's admins.")
    return tenant


def _put_errors(form: Any, exc: ServiceError | ValidationError, default_field: str | None = None) -> None:
    """A service's refusal (or Tenant.clean's) next to the field it names."""
    if isinstance(exc, ServiceError):
        field = exc.field if exc.field in form.fields else default_field
        form.add_error(field, exc.message)
        return
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(default_field, exc.messages)


# --- Overview --------------------------------------------------------------------------------------


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    tenant = admin_tenant(request)
    counts = Membership.objects.filter(tenant=tenant).aggregate(
        members=Count("pk"), admins=Count("pk", filter=Q(role=Role.ADMIN))
    )
    now = timezone.now()
    keys = (
        ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .count()
    )
    return render(
        request,
        "settings/overview.html",
        {"section": "overview", "counts": counts, "active_keys": keys, "sso": tenant.sso_configured},
    )


# --- Members ---------------------------------------------------------------------------------------


def _members_page(
    request: HttpRequest,
    tenant: Tenant,
    invite: InviteMemberForm | None = None,
    row_error: tuple[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    rows = Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__email")
    page = Paginator(rows, MEMBERS_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "settings/members.html",
        {
            "section": "members",
            "page_obj": page,
            "invite": invite or InviteMemberForm(),
            "roles": Role.choices,
            "row_error": row_error,
            "me": request.user.pk,
        },
        status=status,
    )


def _membership(tenant: Tenant, membership_id: str) -> Membership:
    membership = Membership.objects.filter(tenant=tenant, pk=membership_id).select_related("user").first()
    if membership is None:
        raise Http404
    return membership


@login_required
@require_http_methods(["GET", "POST"])
def members(request: HttpRequest) -> HttpResponse:
    tenant = admin_tenant(request)
    if request.method != "POST":
        return _members_page(request, tenant)
    form = InviteMemberForm(request.POST)
    if form.is_valid():
        try:
            membership = services.add_member(
                tenant, Actor.from_request(request), form.cleaned_data["email"], form.cleaned_data["role"]
            )
        except ServiceError as exc:
            _put_errors(form, exc, "email")
        else:
            messages.success(
                request,
                f"Added {membership.user.email} as {membership.get_role_display()}. "
                "They have been sent an email with how to sign in.",
            )
            return redirect("settings-members")
    return _members_page(request, tenant, invite=form)


@login_required
@require_POST
def member_role(request: HttpRequest, membership_id: str) -> HttpResponse:
    tenant = admin_tenant(request)
    membership = _membership(tenant, membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _members_page(request, tenant, row_error=(str(membership.pk), "Choose one of the roles."))
    try:
        services.change_role(tenant, Actor.from_request(request), membership, form.cleaned_data["role"])
    except ServiceError as exc:
        return _members_page(request, tenant, row_error=(str(membership.pk), exc.message))
    messages.success(request, f"{membership.user.email} is now {Role(form.cleaned_data['role']).label}.")
    return redirect("settings-members")


@login_required
@require_http_methods(["GET", "POST"])
def member_remove(request: HttpRequest, membership_id: str) -> HttpResponse:
    tenant = admin_tenant(request)
    membership = _membership(tenant, membership_id)
    email = membership.user.email
    yourself = membership.user_id == request.user.pk
    if request.method == "POST" and request.POST.get("confirmed") == "yes":
        try:
            services.remove_member(tenant, Actor.from_request(request), membership)
        except ServiceError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Removed {email} from {tenant.name}.")
            if yourself:
                return redirect("home")  # the settings are no longer theirs to see
        return redirect("settings-members")
    consequences = [
        f"{email} loses access to {tenant.name} at once: the portal, and any session they have open.",
        "Their account and their memberships of other tenants stay; API keys of the tenant are not "
        "touched (revoke those on the API keys page).",
        "The removal is written to the audit log.",
    ]
    if yourself:
        consequences.insert(0, "This is you: you will lose access to this tenant yourself.")
    return render(
        request,
        "components/confirm.html",
        {
            "title": f"Remove {email}?",
            "consequences": consequences,
            "action_url": request.path,
            "confirm_label": "Remove member",
            "cancel_url": reverse("settings-members"),
            "danger": True,
        },
    )


@login_required
@require_POST
def member_invite(request: HttpRequest, membership_id: str) -> HttpResponse:
    tenant = admin_tenant(request)
    membership = _membership(tenant, membership_id)
    services.resend_invitation(tenant, Actor.from_request(request), membership)
    messages.success(request, f"Sent the invitation to {membership.user.email} again.")
    return redirect("settings-members")


# --- API keys --------------------------------------------------------------------------------------


def _keys_page(
    request: HttpRequest,
    tenant: Tenant,
    form: ApiKeyForm | None = None,
    created: Any = None,
    status: int = 200,
) -> HttpResponse:
    rows = ApiKey.objects.filter(tenant=tenant).select_related("created_by").order_by("-created_at")
    page = Paginator(rows, KEYS_PAGE).get_page(request.GET.get("page"))
    response = render(
        request,
        "settings/api_keys.html",
        {
            "section": "api-keys",
            "page_obj": page,
            "form": form or ApiKeyForm(),
            "created": created,
            "now": timezone.now(),
        },
        status=status,
    )
    if created is not None:
        # The secret is in this page only: no cache, no back-button copy.
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    tenant = admin_tenant(request)
    if request.method != "POST":
        return _keys_page(request, tenant)
    form = ApiKeyForm(request.POST)
    if form.is_valid():
        try:
            key, secret = services.create_api_key(tenant, Actor.from_request(request), **form.cleaned_data)
        except ServiceError as exc:
            _put_errors(form, exc, "name")
        else:
            # Shown in the answer to this POST and never again: the secret is not stored anywhere.
            return _keys_page(request, tenant, created={"key": key, "secret": secret}, status=201)
    return _keys_page(request, tenant, form=form)


@login_required
@require_http_methods(["GET", "POST"])
def api_key_revoke(request: HttpRequest, key_id: str) -> HttpResponse:
    tenant = admin_tenant(request)
    key = ApiKey.objects.filter(tenant=tenant, pk=key_id).first()
    if key is None:
        raise Http404
    if request.method == "POST" and request.POST.get("confirmed") == "yes":
        services.revoke_api_key(tenant, Actor.from_request(request), key)
        messages.success(request, f"Revoked the key “{key.name}” (s3av_{key.prefix}_…).")
        return redirect("settings-api-keys")
    if key.revoked_at is not None:
        messages.info(request, f"The key “{key.name}” was already revoked.")
        return redirect("settings-api-keys")
    return render(
        request,
        "components/confirm.html",
        {
            "title": f"Revoke the API key “{key.name}”?",
            "consequences": [
                f"Every request with the key s3av_{key.prefix}_… is refused from now on (401).",
                "Revoking cannot be undone; create a new key if it is needed again.",
                "The revocation is written to the audit log.",
            ],
            "action_url": request.path,
            "confirm_label": "Revoke key",
            "cancel_url": reverse("settings-api-keys"),
            "danger": True,
        },
    )


# --- Tenant settings -------------------------------------------------------------------------------

_TENANT_FORM_FIELDS = ["name", "allowed_cidrs", "sso_required", "max_scan_bytes", "monthly_scan_bytes_limit"]


@login_required
@require_http_methods(["GET", "POST"])
def tenant_settings(request: HttpRequest) -> HttpResponse:
    tenant = admin_tenant(request)
    address = getattr(request, "client_ip", None)
    lockout_warning = False
    if request.method == "POST":
        form = TenantSettingsForm(request.POST)
        if form.is_valid():
            changes = {
                field: form.cleaned_data[field]
                for field in _TENANT_FORM_FIELDS
                if form.cleaned_data[field] != getattr(tenant, field)
            }
            confirmed = request.POST.get("lock_out_confirmed") == "yes"
            locking_out = "allowed_cidrs" in changes and services.locks_out(changes["allowed_cidrs"], address)
            if not changes:
                messages.info(request, "Nothing changed.")
                return redirect("settings-tenant")
            if locking_out and not confirmed:
                lockout_warning = True
            else:
                try:
                    services.update_tenant_settings(
                        tenant, Actor.from_request(request), lock_out_actor=locking_out, **changes
                    )
                except (ServiceError, ValidationError) as exc:
                    tenant.refresh_from_db()
                    _put_errors(form, exc, "allowed_cidrs")
                else:
                    messages.success(request, "Tenant settings saved.")
                    return redirect("settings-tenant")
    else:
        form = TenantSettingsForm(
            initial={
                "name": tenant.name,
                "allowed_cidrs": "\n".join(tenant.allowed_cidrs),
                "sso_required": tenant.sso_required,
                "max_scan_bytes": tenant.max_scan_bytes,
                "monthly_scan_bytes_limit": tenant.monthly_scan_bytes_limit,
            }
        )
    return render(
        request,
        "settings/tenant.html",
        {
            "section": "tenant",
            "form": form,
            "address": address,
            "lockout_warning": lockout_warning,
            "address_allowed": tenant.allows_address(address),
        },
    )

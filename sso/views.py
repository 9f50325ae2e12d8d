"""Portal pages of SSO: start an SP-initiated sign-in, and the admins' settings page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.adapter import local_path
from accounts.middleware import role_of
from accounts.models import Role, role_at_least
from accounts.services import Actor, ServiceError, update_tenant_settings
from sso import services
from sso.adapter import social_app, sp_urls
from sso.models import Preset, SamlConnection

_UNKNOWN = "No single sign-on is set up for that address or tenant."


def _has_nul(request: HttpRequest) -> bool:
    # PostgreSQL refuses NUL in text: such a form is refused before any query.
    return any("\x00" in value for values in request.POST.lists() for value in values[1])


@require_POST
def start(request: HttpRequest) -> HttpResponse:
    """Send the browser to the IdP of the tenant named by an email domain or a slug."""
    if _has_nul(request):
        return render(request, "sso/refused.html", {"reason": _UNKNOWN}, status=400)
    email = request.POST.get("email", "").strip()
    slug = request.POST.get("tenant", "").strip()
    connection = services.connection_for_email(email) if email else None
    if connection is None and slug:
        connection = services.connection_for_slug(slug)
    if connection is None:
        # The same answer for an unknown slug and a tenant without SSO: nothing to learn here.
        return render(request, "sso/refused.html", {"reason": _UNKNOWN}, status=404)
    provider = social_app(connection).get_provider(request)
    next_url = local_path(request.POST.get("next"))
    return provider.redirect(request, "login", next_url=next_url)


def _can_admin(request: HttpRequest) -> bool:
    return getattr(request, "tenant", None) is not None and role_at_least(role_of(request), Role.ADMIN)


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    if not _can_admin(request):
        return render(
            request, "sso/refused.html", {"reason": "Only a tenant admin may set up SSO."}, status=403
        )
    tenant = request.tenant  # type: ignore[attr-defined]
    connection = SamlConnection.objects.filter(tenant=tenant).first()
    errors: dict[str, str] = {}
    if request.method == "POST" and _has_nul(request):
        errors["__all__"] = "NUL characters are not allowed."
    elif request.method == "POST":
        changes = _form_changes(request)
        try:
            connection = services.configure_saml(tenant, Actor.from_request(request), **changes)
        except ServiceError as exc:
            errors[exc.field or "__all__"] = exc.message
        else:
            messages.success(request, "SSO settings saved.")
            return redirect("sso-settings")
    return render(
        request,
        "sso/settings.html",
        {
            "connection": connection,
            "sp": sp_urls(request, tenant),
            "presets": Preset.choices,
            "errors": errors,
            "form": request.POST if request.method == "POST" else None,
        },
    )


def _form_changes(request: HttpRequest) -> dict[str, object]:
    post = request.POST
    changes: dict[str, object] = {
        "preset": post.get("preset", Preset.CUSTOM),
        "email_domains": [d for d in post.get("email_domains", "").replace(",", " ").split() if d],
        "group_attribute": post.get("group_attribute", ""),
        "allow_idp_initiated": post.get("allow_idp_initiated") == "on",
        "enabled": post.get("enabled") == "on",
    }
    roles: dict[str, str] = {}
    for line in post.get("group_roles", "").splitlines():
        group, _, role = line.rpartition("=")
        if group.strip():
            roles[group.strip()] = role.strip()
    changes["group_roles"] = roles
    for field in ("idp_metadata_xml", "idp_metadata_url", "idp_entity_id", "idp_sso_url", "idp_certificate"):
        if post.get(field, "").strip():
            changes[field] = post[field].strip()
    if not post.get("group_attribute", "").strip():
        changes.pop("group_attribute")  # the preset's
    return changes


@login_required
@require_POST
def delete_page(request: HttpRequest) -> HttpResponse:
    if not _can_admin(request):
        return render(
            request, "sso/refused.html", {"reason": "Only a tenant admin may set up SSO."}, status=403
        )
    try:
        services.delete_saml(request.tenant, Actor.from_request(request))  # type: ignore[attr-defined]
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("sso-settings")


@login_required
@require_POST
def require_page(request: HttpRequest) -> HttpResponse:
    """Switch 'SSO required' on or off: the tenant setting, through the tenants' own service."""
    if not _can_admin(request):
        return render(
            request, "sso/refused.html", {"reason": "Only a tenant admin may set up SSO."}, status=403
        )
    required = request.POST.get("sso_required") == "on"
    try:
        update_tenant_settings(request.tenant, Actor.from_request(request), sso_required=required)  # type: ignore[attr-defined]
    except ServiceError as exc:
        messages.error(request, exc.message)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "SSO is now required." if required else "SSO is no longer required.")
    return redirect("sso-settings")

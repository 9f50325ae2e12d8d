"""Resolve who is calling and for which tenant, then open that tenant's scope.

Everything after this middleware runs inside ``django_scopes.scope(tenant=...)``:
a query of tenant-owned data that is not filtered by the tenant raises instead of
leaking. The tenant comes from the API key or from the signed-in user's
membership, never from the request body.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.template.loader import render_to_string
from django_scopes import scope, scopes_disabled

from accounts import services
from accounts.adapter import SSO_SESSION_KEY
from accounts.models import Membership, Role, User

SESSION_TENANT_KEY = "s3av_tenant"


def client_ip(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        # Each trusted proxy appends the address it saw; the client is the
        # entry just before the ones our own proxies added.
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return remote


def session_memberships(request: HttpRequest) -> QuerySet[Membership]:
    """The memberships this session may use (call inside ``scopes_disabled``)."""
    user = request.user
    assert isinstance(user, User)
    memberships = Membership.objects.filter(user=user, tenant__status="active").select_related("tenant")
    sso_tenant = request.session.get(SSO_SESSION_KEY)
    if sso_tenant:
        # Signed in through one tenant's IdP: that tenant only, never the user's others.
        return memberships.filter(tenant_id=sso_tenant)
    if not user.is_staff:
        # A password session never enters a tenant that requires SSO (support staff: break-glass,
        # audited at sign-in).
        return memberships.exclude(tenant__sso_required=True)
    return memberships


def current_membership(request: HttpRequest) -> Membership | None:
    """The signed-in user's membership in the tenant chosen in the session (or their first)."""
    with scopes_disabled():
        memberships = session_memberships(request)
        wanted = request.session.get(SESSION_TENANT_KEY)
        if wanted:
            chosen = memberships.filter(tenant_id=wanted).first()
            if chosen is not None:
                return chosen
        return memberships.order_by("created_at").first()


class TenantMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.client_ip = client_ip(request)  # type: ignore[attr-defined]
        request.tenant = None  # type: ignore[attr-defined]
        request.role = None  # type: ignore[attr-defined]
        request.api_key = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]

        if request.path.startswith("/admin/"):
            # Support staff work across tenants; the admin is staff-only and
            # every change made there is audited (accounts.admin.AuditedAdmin).
            with scopes_disabled():
                return self.get_response(request)

        is_api = request.path.startswith("/api/")
        authorization = request.META.get("HTTP_AUTHORIZATION", "")
        if is_api and authorization[:7].lower() == "bearer ":
            key = services.authenticate_api_key(authorization[7:].strip())
            if key is None:
                response = JsonResponse({"detail": "Invalid, expired or revoked API key."}, status=401)
                response["WWW-Authenticate"] = 'Bearer realm="api"'
                return response
            request.api_key = key  # type: ignore[attr-defined]
            request.tenant = key.tenant  # type: ignore[attr-defined]
            request.role = key.role  # type: ignore[attr-defined]
        elif request.user.is_authenticated:
            membership = current_membership(request)
            if membership is not None:
                request.membership = membership  # type: ignore[attr-defined]
                request.tenant = membership.tenant  # type: ignore[attr-defined]
                request.role = membership.role  # type: ignore[attr-defined]

        tenant = request.tenant  # type: ignore[attr-defined]
        if tenant is not None and not tenant.allows_address(request.client_ip):  # type: ignore[attr-defined]
            with scope(tenant=tenant):
                services.record(
                    tenant,
                    services.Actor.from_request(request),
                    "access.denied",
                    details={"reason": "address outside the tenant's allowed ranges", "path": request.path},
                )
            message = "Your address is not in this tenant's allowed ranges."
            if is_api:
                return JsonResponse({"detail": message}, status=403)
            # Rendered without the request: the page must not show the tenant's navigation.
            page = render_to_string(
                "account/address_refused.html",
                {"tenant_name": tenant.name, "address": request.client_ip},  # type: ignore[attr-defined]
            )
            return HttpResponseForbidden(page)

        with scope(tenant=tenant):
            return self.get_response(request)


def role_of(request: HttpRequest) -> str:
    return getattr(request, "role", None) or Role.NONE

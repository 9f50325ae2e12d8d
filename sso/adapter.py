"""The tenant rules of SAML sign-in, as allauth's adapters.

allauth sees each tenant's SamlConnection as a SocialApp (provider "saml", client id the tenant's
slug) built here in memory; nothing is kept in allauth's SocialApp table (``SocialAccountAdapter``).
``SsoAccountAdapter`` extends accounts' adapter with what SSO changes in every sign-in: a password
refused where SSO is required, a session bound to the tenant whose IdP signed it in.
"""

from __future__ import annotations

import uuid
from typing import Any

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialLogin
from allauth.socialaccount.providers.base.constants import AuthProcess
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from accounts.adapter import SSO_SESSION_KEY, AccountAdapter, local_path
from accounts.middleware import SESSION_TENANT_KEY
from accounts.models import Tenant
from sso import services
from sso.models import Preset, SamlConnection
from sso.provider import refusal_page

# Set on the request by pre_social_login; SsoAccountAdapter.login binds the session to this tenant.
SSO_TENANT_ATTRIBUTE = "_s3av_sso_tenant_id"


def sp_entity_id(connection: SamlConnection) -> str:
    # Fixed by the public URL, not by the Host header of whichever request builds the settings.
    return f"{settings.PUBLIC_URL}{reverse('saml_metadata', args=[connection.tenant.slug])}"


def sp_urls(request: HttpRequest, tenant: Tenant) -> dict[str, str]:
    """What the tenant enters at its IdP (the settings page and GET /api/v1/sso show them)."""
    slug = tenant.slug
    probe = SamlConnection(tenant=tenant)
    return {
        "sp_entity_id": sp_entity_id(probe),
        "acs_url": request.build_absolute_uri(reverse("saml_acs", args=[slug])),
        "metadata_url": request.build_absolute_uri(reverse("saml_metadata", args=[slug])),
        "login_url": request.build_absolute_uri(reverse("saml_login", args=[slug])),
    }


def app_settings(connection: SamlConnection) -> dict[str, Any]:
    return {
        "attribute_mapping": connection.attribute_map,
        # Google Workspace sends the primary email as NameID, whatever its format is set to.
        "use_nameid_for_email": connection.preset == Preset.GOOGLE,
        "idp": {
            "entity_id": connection.idp_entity_id,
            "sso_url": connection.idp_sso_url,
            "x509cert": connection.idp_certificate,
        },
        "sp": {"entity_id": sp_entity_id(connection)},
        "advanced": {
            "strict": True,
            "want_assertion_signed": True,
            "want_message_signed": False,  # Okta, Entra and Google sign the assertion; we require that
            "reject_deprecated_algorithm": True,
            "reject_idp_initiated_sso": not connection.allow_idp_initiated,
            "want_attribute_statement": False,  # Google may send the NameID alone
            "want_name_id": True,
            # Only the syntax check of our own URLs (a single-label host such as "localhost").
            "allow_single_label_domains": True,
        },
    }


def social_app(connection: SamlConnection) -> SocialApp:
    app = SocialApp(
        provider="saml",
        provider_id=connection.provider_id,
        client_id=connection.tenant.slug,
        name=connection.tenant.name,
        settings=app_settings(connection),
    )
    app.connection = connection  # type: ignore[attr-defined]
    return app


def identity_of(connection: SamlConnection, sociallogin: SocialLogin) -> services.SsoIdentity:
    attributes: dict[str, list[str]] = sociallogin.account.extra_data or {}
    mapped: dict[str, str] = {}
    for field, names in (connection.attribute_map or {}).items():
        for name in names:
            values = attributes.get(name) or []
            if values and values[0]:
                mapped[field] = str(values[0]).replace("\x00", "")
                break
    name = mapped.get("name") or " ".join(p for p in (mapped.get("first_name"), mapped.get("last_name")) if p)
    groups = (
        [str(g).replace("\x00", "") for g in attributes.get(connection.group_attribute, [])]
        if connection.group_attribute
        else []
    )
    return services.SsoIdentity(
        uid=sociallogin.account.uid,
        email=sociallogin.user.email if sociallogin.user else "",
        name=name,
        groups=groups,
    )


class SsoAccountAdapter(AccountAdapter):
    """accounts' sign-in rules, with single sign-on: the adapter ``ACCOUNT_ADAPTER`` names."""

    def sso_configured(self, tenant: Tenant) -> bool:
        if tenant._state.adding:
            return False
        with scopes_disabled():
            return SamlConnection.objects.filter(tenant_id=tenant.pk, enabled=True).exists()

    def pre_login(self, request: HttpRequest, user: AbstractBaseUser, **kwargs: Any) -> HttpResponse | None:
        if getattr(request, SSO_TENANT_ATTRIBUTE, None) is None:
            tenant = services.password_refused_for(user)  # type: ignore[arg-type]
            if tenant is not None:
                services.record_password_refused(tenant, user, getattr(request, "client_ip", None))  # type: ignore[arg-type]
                return render(
                    request,
                    "sso/password_refused.html",
                    {"tenant_name": tenant.name, "tenant_slug": tenant.slug},
                    status=403,
                )
        return super().pre_login(request, user, **kwargs)

    def login(self, request: HttpRequest, user: AbstractBaseUser) -> None:
        super().login(request, user)
        sso_tenant = getattr(request, SSO_TENANT_ATTRIBUTE, None)
        if sso_tenant is not None:
            # A session signed in through a tenant's IdP reaches that tenant only (accounts.middleware).
            request.session[SSO_SESSION_KEY] = sso_tenant
            request.session[SESSION_TENANT_KEY] = sso_tenant
        else:
            request.session.pop(SSO_SESSION_KEY, None)
            services.record_password_sign_in(
                user,  # type: ignore[arg-type]
                getattr(request, "client_ip", None),
                break_glass=bool(getattr(user, "is_staff", False)),
            )


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request: HttpRequest, provider: Any = None, client_id: Any = None) -> list[SocialApp]:
        """The one tenant's app asked for, by slug or by provider id; never a list of every tenant."""
        if provider not in (None, "saml") and not str(provider).startswith("saml-"):
            return []
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "saml_sls":
            # Single logout is not offered: allauth's endpoint would act on an unsigned LogoutRequest
            # (python3-saml checks its signature only when every message must be signed, which Google's
            # responses are not), signing anyone's browser out from another site. Answer 404.
            return []
        with scopes_disabled():
            connections = SamlConnection.objects.select_related("tenant").filter(
                enabled=True, tenant__status="active"
            )
            if client_id:
                connections = connections.filter(tenant__slug=str(client_id))
            elif provider and provider != "saml":
                try:
                    connections = connections.filter(tenant_id=uuid.UUID(str(provider)[len("saml-") :]))
                except ValueError:
                    return []
            else:
                return []
            return [social_app(c) for c in connections[:1]]

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return False  # users are created by pre_social_login's rules, never by allauth's sign-up

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        connection: SamlConnection = sociallogin.provider.app.connection  # type: ignore[attr-defined]
        ip = getattr(request, "client_ip", None)
        try:
            if sociallogin.state.get("process", AuthProcess.LOGIN) != AuthProcess.LOGIN:
                raise services.SsoRefused("Only sign-in is offered through SSO.")
            identity = identity_of(connection, sociallogin)
            linked = sociallogin.user if sociallogin.is_existing else None
            with scope(tenant=connection.tenant):
                user = services.sign_in_user(connection, ip, identity, linked)
        except services.SsoRefused as refused:
            with scope(tenant=connection.tenant):
                services.refuse(connection, ip, refused.reason, {"email": sociallogin.user.email})
            raise ImmediateHttpResponse(refusal_page(request, refused.reason)) from None
        if linked is None:
            sociallogin.user = user
            sociallogin.account = SocialAccount.objects.get(provider=connection.provider_id, uid=identity.uid)
        next_url = local_path(sociallogin.state.get("next"))
        sociallogin.state["next"] = next_url or reverse("home")
        setattr(request, SSO_TENANT_ATTRIBUTE, str(connection.tenant_id))

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: Any = None,
        exception: Any = None,
        extra_context: Any = None,
    ) -> None:
        connection = getattr(getattr(provider, "app", None), "connection", None)
        if connection is None:
            return
        reason = (extra_context or {}).get("saml_last_error_reason") or str(error or exception or "refused")
        with scope(tenant=connection.tenant):
            services.refuse(connection, getattr(request, "client_ip", None), reason)

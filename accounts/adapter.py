from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

SSO_SESSION_KEY = "s3av_sso_tenant"


class AccountAdapter(DefaultAccountAdapter):
    """Site rules for sign-in. People join a tenant when an admin adds them; no self sign-up."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def is_safe_url(self, url: str | None) -> bool:
        # Redirects after sign-in (next, SAML RelayState) go to paths on this site only.
        from sso.services import local_path

        return local_path(url) is not None

    def pre_login(self, request: HttpRequest, user: AbstractBaseUser, **kwargs: Any) -> HttpResponse | None:
        from sso import services
        from sso.adapter import SSO_TENANT_ATTRIBUTE

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
        from accounts.middleware import SESSION_TENANT_KEY
        from sso import services
        from sso.adapter import SSO_TENANT_ATTRIBUTE

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

"""What single sign-on adds to every request, after accounts.middleware.TenantMiddleware (settings)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.adapter import SSO_SESSION_KEY
from sso.provider import refuse_unreadable_response

# allauth's pages that set up another way to sign in; a session signed in through an IdP gets none.
SSO_MANAGED_VIEWS = frozenset(
    {"account_set_password", "account_change_password", "account_email", "socialaccount_connections"}
)


class SsoMiddleware:
    """Refuses an unreadable SAMLResponse at the ACS, and password or email set-up in an SSO session."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., HttpResponse], *args: object
    ) -> HttpResponse | None:
        match = request.resolver_match
        if match is not None and match.url_name == "saml_acs" and request.method == "POST":
            refused = refuse_unreadable_response(request, match.kwargs.get("organization_slug", ""))
            if refused is not None:
                return refused
        if match is not None and match.url_name in SSO_MANAGED_VIEWS and request.session.get(SSO_SESSION_KEY):
            # The IdP owns a session's credentials: a password or an address added here would outlive
            # the SSO session and sign in past the IdP (and past the tenant binding).
            return render(
                request,
                "sso/refused.html",
                {"reason": "Your organisation's identity provider manages your password and email address."},
                status=403,
            )
        return None

"""The site's sign-in rules, as allauth's account adapter (``ACCOUNT_ADAPTER``).

This is the rules of accounts alone: no self sign-up, redirects to this site only, no tenant with SSO.
Single sign-on extends it (``sso.adapter.SsoAccountAdapter``, the adapter the settings name), so the
SSO rules of a password sign-in live with SSO and accounts imports nothing of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter, get_adapter
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

if TYPE_CHECKING:
    from accounts.models import Tenant

# The tenant a session signed in through an IdP is bound to (accounts.middleware lets it reach only
# that tenant; sso.adapter sets it).
SSO_SESSION_KEY = "s3av_sso_tenant"


def local_path(value: str | None) -> str | None:
    """A RelayState or next URL kept only when it is a path on this site."""
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    return value


class AccountAdapter(DefaultAccountAdapter):
    """Site rules for sign-in. People join a tenant when an admin adds them; no self sign-up."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def is_safe_url(self, url: str | None) -> bool:
        # Redirects after sign-in (next, SAML RelayState) go to paths on this site only.
        return local_path(url) is not None

    def sso_configured(self, tenant: Tenant) -> bool:
        """Whether the tenant's members can sign in through an IdP; without the sso app, never."""
        return False


def account_adapter(request: HttpRequest | None = None) -> AccountAdapter:
    """The adapter the settings name (``ACCOUNT_ADAPTER``), which must extend this one."""
    adapter = get_adapter(request)
    if not isinstance(adapter, AccountAdapter):
        raise ImproperlyConfigured("ACCOUNT_ADAPTER must name accounts.adapter.AccountAdapter or a subclass.")
    return adapter

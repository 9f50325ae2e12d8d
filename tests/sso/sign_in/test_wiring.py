"""SSO's sign-in rules reach accounts only through the settings (ACCOUNT_ADAPTER, SsoMiddleware): a
process whose settings leave either out refuses to start rather than sign people in without them."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from sso.apps import SSO_MIDDLEWARE, TENANT_MIDDLEWARE, require_sso_wiring


def test_the_settings_wire_sso_in():
    require_sso_wiring()


def test_accounts_own_adapter_is_refused(settings):
    # It signs in without refusing a password where SSO is required, nor binding an IdP's session.
    settings.ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
    with pytest.raises(ImproperlyConfigured, match="SsoAccountAdapter"):
        require_sso_wiring()


def test_a_missing_sso_middleware_is_refused(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != SSO_MIDDLEWARE]
    with pytest.raises(ImproperlyConfigured, match="SsoMiddleware"):
        require_sso_wiring()


def test_the_sso_middleware_before_the_tenant_middleware_is_refused(settings):
    rest = [m for m in settings.MIDDLEWARE if m not in (SSO_MIDDLEWARE, TENANT_MIDDLEWARE)]
    settings.MIDDLEWARE = [*rest, SSO_MIDDLEWARE, TENANT_MIDDLEWARE]
    with pytest.raises(ImproperlyConfigured, match="after"):
        require_sso_wiring()

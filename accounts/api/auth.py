"""DRF authentication: reads what TenantMiddleware resolved."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.request import Request

from accounts.models import ApiKey


class ApiKeyPrincipal:
    """Stands in for request.user when an API key calls."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, key: ApiKey):
        self.key = key
        self.pk = None
        self.id = None

    def __str__(self) -> str:
        return f"api-key:{self.key.prefix}"

    def has_perm(self, *args: Any) -> bool:
        return False


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiKeyPrincipal, ApiKey] | None:
        key = getattr(request._request, "api_key", None)
        if key is None:
            return None
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class TenantSessionAuthentication(SessionAuthentication):
    """The portal's session, with CSRF enforced as usual."""

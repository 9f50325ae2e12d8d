"""The API's rate limit (``S3AV_API_RATE``)."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


class TenantRateThrottle(SimpleRateThrottle):
    """A rate per API key or per user (429 past it)."""

    scope = "tenant"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        key = getattr(request._request, "api_key", None)
        if key is not None:
            ident = f"key:{key.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

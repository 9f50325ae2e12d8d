"""The member's time zone for the portal's pages: the browser says it, the server shows times in it.

static/js/portal.js writes the browser's IANA zone (``Intl.DateTimeFormat().resolvedOptions()``) into
the ``s3av_tz`` cookie; this middleware activates it for the request, so ``{{ when|date }}`` and the
``datetime-local`` fields of forms are in that zone. A cookie is client input: anything that is not a
known zone name is ignored (UTC).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

COOKIE = "s3av_tz"


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_of(request: HttpRequest) -> zoneinfo.ZoneInfo | None:
    name = unquote(request.COOKIES.get(COOKIE, ""))
    if not name or len(name) > 64 or name not in _known():
        return None
    return zoneinfo.ZoneInfo(name)


class TimezoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = zone_of(request)
        if zone is None:
            return self.get_response(request)
        with timezone.override(zone):
            return self.get_response(request)

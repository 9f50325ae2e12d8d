"""The reader's time zone for the portal's pages, as the browser reports it.

``static/js/timezone.js`` stores the browser's IANA zone name in the ``s3av_tz`` cookie; this middleware
activates it for the request, so Django's date rendering (and ``timezone.localtime``) uses it. Without
the cookie (the very first page, or a browser without script) times are in UTC, and the pages always
name the zone they show. A cookie naming no known zone is ignored. The API is left in UTC: DRF renders
times in the active zone, and a script calling the API with a browser's session must get what an API
key gets.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

COOKIE = "s3av_tz"


@functools.cache
def _known() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_named(name: str) -> zoneinfo.ZoneInfo | None:
    # Only names from the zone database: ZoneInfo() would also try to open whatever path it is given.
    if not name or len(name) > 64 or name not in _known():
        return None
    return zoneinfo.ZoneInfo(name)


class TimezoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = None if request.path_info.startswith("/api/") else zone_named(request.COOKIES.get(COOKIE, ""))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()

"""Answers under /api/ that are JSON whatever went wrong: NUL in a query string, an unknown path, a
server error outside DRF's views."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import server_error as html_server_error

# Also the API's JSON parser's message (s3av.api.parsers) for NUL in a body.
NUL_MESSAGE = "NUL characters are not allowed."


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


class ApiQueryMiddleware:
    """Refuse a query parameter holding a NUL character with 400 (PostgreSQL refuses NUL in text)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api(request):
            errors = {
                (name if "\x00" not in name else "non_field_errors"): [NUL_MESSAGE]
                for name, values in request.GET.lists()
                if "\x00" in name or any("\x00" in value for value in values)
            }
            if errors:
                return JsonResponse(errors, status=400)
        return self.get_response(request)


def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    """Any path under /api/ that no route matches, whatever the method (and whatever DEBUG says)."""
    return JsonResponse({"detail": "Not found."}, status=404)


def server_error(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": "Server error."}, status=500)
    return html_server_error(request)

"""DRF plumbing named in settings (kept free of rest_framework.views imports to avoid cycles)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, pagination, parsers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

log = logging.getLogger(__name__)

NUL_MESSAGE = "NUL characters are not allowed."


def nul_paths(data: Any, path: str = "") -> Iterator[str]:
    """Where NUL characters occur in parsed JSON (keys and strings), as ``field`` or ``field.0.key``.

    PostgreSQL refuses NUL in text and JSON, so such input must be refused before anything is saved."""
    if isinstance(data, str):
        if "\x00" in data:
            yield path or "non_field_errors"
    elif isinstance(data, dict):
        for key, value in data.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                yield path or "non_field_errors"
            else:
                yield from nul_paths(value, inner)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from nul_paths(value, f"{path}.{index}" if path else str(index))


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser that answers 400 with field errors for NUL characters anywhere in the body."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        errors = {where: [NUL_MESSAGE] for where in nul_paths(data)}
        if errors:
            raise ValidationError(errors)
        return data


class CursorPagination(pagination.CursorPagination):
    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 500

    def decode_cursor(self, request: Any) -> Any:
        # DRF answers a bad cursor with 404, which reads as "the list is gone"; it is bad input.
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound as exc:
            raise exceptions.ValidationError({self.cursor_query_param: [str(exc.detail)]}) from exc


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


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    from rest_framework.views import exception_handler as drf_exception_handler
    from rest_framework.views import set_rollback

    from accounts.services import ServiceError

    if isinstance(exc, ServiceError):
        exc = ValidationError({exc.field or "non_field_errors": [exc.message]})
    elif isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = ValidationError(detail)
    response = drf_exception_handler(exc, context)
    if response is None:
        # An API client gets JSON, never an HTML error page (or, with DEBUG on, a traceback).
        request = context.get("request")
        log.exception("unhandled error in the API", extra={"path": getattr(request, "path", "")})
        set_rollback()
        response = Response({"detail": "Server error."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    return response


# What every operation may answer besides its success (DESIGN.md: "Errors"), in the OpenAPI schema.
ERROR_RESPONSES = {
    "400": "Bad input: field errors ({field: [messages]}) or {detail}.",
    "401": "No credentials, or an invalid, expired or revoked API key.",
    "403": "The caller's role is too low, or its address is outside the tenant's allowed ranges.",
    "404": "No such object in the caller's tenant.",
    "409": "The request conflicts with the object's current state.",
    "413": "The body is larger than allowed.",
    "429": "Too many requests, or the tenant's monthly scan limit is reached.",
}


def document_error_responses(result: dict[str, Any], generator: Any, request: Any, public: Any) -> Any:
    """drf-spectacular post-processing hook: add the error answers to every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "description": "`detail` for errors about the request as a whole; otherwise field name to messages.",
        "properties": {"detail": {"type": "string"}},
        "additionalProperties": True,
    }
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_RESPONSES.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
    return result

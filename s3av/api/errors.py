"""The API's exception handler: every error is JSON, in the one error format (DESIGN.md: "Errors")."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from accounts.services import ServiceError

log = logging.getLogger(__name__)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
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

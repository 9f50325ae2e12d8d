"""Cursor pagination for every list (DESIGN.md: ``{"next", "previous", "results"}``)."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, pagination


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

"""The API's JSON parser: NUL characters anywhere in a body are field errors, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ValidationError

from s3av.middleware import NUL_MESSAGE


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

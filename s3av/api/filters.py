"""List filters: every ``?name=value`` a list takes is a django-filter ``FilterSet`` on its viewset, so the
schema documents it (drf-spectacular reads the FilterSet) and a bad value is a 400 in the API's one error
format, ``{"name": ["message"]}``, with the message the filter names.

The helpers below build the filters the lists share, each with the words its 400 says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.db import models
from django.utils.dateparse import parse_datetime
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

AWARE_TIME_MESSAGE = "Use an ISO 8601 time with a zone, e.g. 2026-01-31T00:00:00Z."


class ListFilterBackend(DjangoFilterBackend):
    """Applies a viewset's ``filterset_class`` to its list only: a filter never hides the object a detail
    route names, nor refuses a write because of its query string."""

    def filter_queryset(self, request: Request, queryset: models.QuerySet[Any], view: Any) -> Any:
        if getattr(view, "action", None) != "list":
            return queryset
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if not filterset.is_valid():
            raise ValidationError(field_errors(filterset.form))
        return filterset.qs


def field_errors(form: forms.Form) -> dict[str, list[str]]:
    """A form's errors as the API states them: parameter name (or ``non_field_errors``) to messages."""
    return {
        ("non_field_errors" if name == NON_FIELD_ERRORS else name): [str(message) for message in messages]
        for name, messages in form.errors.items()
    }


class FilterSet(django_filters.FilterSet):
    """Base of the API's FilterSets (declared filters only: each one says what its 400 answers)."""


class AwareDateTimeField(forms.Field):
    """An ISO 8601 time that names its zone, in UTC."""

    default_error_messages = {"invalid": AWARE_TIME_MESSAGE}

    def to_python(self, value: Any) -> datetime | None:
        if value in self.empty_values:
            return None
        try:
            when = parse_datetime(str(value))
            # In UTC: PostgreSQL refuses offsets past ±15:59 that Python accepts (up to ±23:59).
            when = when.astimezone(UTC) if when is not None and when.tzinfo is not None else None
        except (ValueError, OverflowError):  # impossible (month 13), or out of range once in UTC
            when = None
        if when is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return when


class AwareDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = AwareDateTimeField


def choice_filter(field_name: str, choices: type[models.TextChoices], **kwargs: Any) -> Any:
    """One of the values of ``choices``; anything else is "Use one of: …"."""
    return django_filters.ChoiceFilter(
        field_name=field_name,
        choices=choices.choices,
        error_messages={"invalid_choice": f"Use one of: {', '.join(choices.values)}."},
        **kwargs,
    )


def uuid_filter(field_name: str, message: str, **kwargs: Any) -> Any:
    """An id; anything that is not a UUID is ``message``."""
    # strip=False: " <uuid>" is not an id, as the serializers' UUIDField says.
    return django_filters.UUIDFilter(
        field_name=field_name, strip=False, error_messages={"invalid": message}, **kwargs
    )


def text_filter(field_name: str, lookup_expr: str = "exact", **kwargs: Any) -> Any:
    """Text taken as given: not stripped (a key may start or end with spaces)."""
    return django_filters.CharFilter(field_name=field_name, lookup_expr=lookup_expr, strip=False, **kwargs)

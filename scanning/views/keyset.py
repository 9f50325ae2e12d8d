"""Keyset pagination of scan results on (scanned_at, id), newest first, and a capped count.

An OFFSET page makes the database walk every row before it; a keyset page starts at the last row the
reader saw, so page 10,000 of a million findings costs what page 1 costs (one index range scan with
the ``result_finding_keyset_idx`` partial index). The total is counted up to ``COUNT_CAP`` rows and
shown as "more than …" past that: an exact count of a million rows on every page view would read
them all each time.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

PAGE_SIZE = 50
COUNT_CAP = 10_000


class BadCursor(ValueError):
    """The page link is damaged or was not made by this page."""


@dataclass
class Page:
    rows: list[Any]
    newer: str | None = None  # cursor of the page before (newer rows); None on the first page
    older: str | None = None  # cursor of the page after (older rows); None on the last page
    is_first: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _encode(direction: str, row: Any) -> str:
    raw = f"{direction}|{row.scanned_at.isoformat()}|{row.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[str, datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        direction, when_text, pk_text = raw.split("|")
        when = parse_datetime(when_text)
        pk = uuid.UUID(pk_text)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor("This page link is damaged; showing the first page.") from exc
    if direction not in {"older", "newer"} or when is None or when.tzinfo is None:
        raise BadCursor("This page link is damaged; showing the first page.")
    return direction, when, pk


def page_of(queryset: QuerySet[Any], cursor: str = "", size: int = PAGE_SIZE) -> Page:
    """One page of ``queryset`` (rows with a ``scanned_at``), newest first. Raises BadCursor."""
    if not cursor:
        rows = list(queryset.order_by("-scanned_at", "-pk")[: size + 1])
        older = _encode("older", rows[size - 1]) if len(rows) > size else None
        return Page(rows[:size], older=older)
    direction, when, pk = decode(cursor)
    if direction == "older":
        # The redundant ``scanned_at <= when`` lets the planner start the index scan at the cursor.
        after = queryset.filter(scanned_at__lte=when).filter(
            Q(scanned_at__lt=when) | Q(scanned_at=when, pk__lt=pk)
        )
        rows = list(after.order_by("-scanned_at", "-pk")[: size + 1])
        older = _encode("older", rows[size - 1]) if len(rows) > size else None
        rows = rows[:size]
        newer = _encode("newer", rows[0]) if rows else None
        return Page(rows, newer=newer, older=older, is_first=False)
    before = queryset.filter(scanned_at__gte=when).filter(
        Q(scanned_at__gt=when) | Q(scanned_at=when, pk__gt=pk)
    )
    rows = list(before.order_by("scanned_at", "pk")[: size + 1])
    more_newer = len(rows) > size
    rows = list(reversed(rows[:size]))
    return Page(
        rows,
        newer=_encode("newer", rows[0]) if more_newer and rows else None,
        older=_encode("older", rows[-1]) if rows else None,
        is_first=not more_newer,
    )


def capped_count(queryset: QuerySet[Any], cap: int | None = None) -> tuple[int, bool]:
    """(count, whether there are more): ``SELECT COUNT(*) FROM (… LIMIT cap + 1)``."""
    cap = cap or COUNT_CAP
    found = queryset.order_by()[: cap + 1].count()
    return min(found, cap), found > cap

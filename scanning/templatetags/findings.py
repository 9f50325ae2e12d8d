"""Template filters of the findings pages: what was done to an object, and when, in the reader's zone.

``action_taken`` is the one place the pages read ``ScanResult.action``, so a change to how actions are
stored changes one function.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()

ACTION_WORDS = {
    "tagged": "tagged",
    "quarantined": "moved to quarantine",
    "deleted": "deleted",
    "promoted": "promoted",
    "superseded": "superseded by a newer verdict",
    "failed": "an action failed",
    "releasing": "release under way",
    "released": "released",
    "deleting": "deletion under way",
    "none": "nothing",
}


@register.filter
def action_taken(result: Any) -> str:
    """What s3av did to the object, in words: ``tagged+quarantined`` reads "tagged, moved to quarantine"."""
    steps = [step for step in (result.action or "").split("+") if step]
    if not steps:
        return "pending" if result.action_status == "pending" else "nothing"
    return ", ".join(ACTION_WORDS.get(step, step) for step in steps)


@register.filter
def when(value: datetime | None) -> str:
    """A ``<time>`` in the reader's time zone, with the zone named and UTC in its ``datetime``."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    zone = local.tzname() or ""
    return format_html(
        # The time and its zone stay together when a narrow column wraps after the date.
        '<time datetime="{}">{}\u00a0{}</time>',
        value.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        local.strftime("%Y-%m-%d %H:%M:%S"),
        zone,
    )


@register.filter
def get_count(counts: dict[str, int], key: str) -> int:
    return int(counts.get(key, 0))

"""Template tags of the portal's shared components (see static/css/portal.css for the classes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django import template
from django.core.paginator import Page
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.html import format_html
from django_scopes import scopes_disabled

from accounts.models import Membership, Role, Tenant

register = template.Library()

# Verdict → badge modifier; anything unknown (an empty verdict of a scan under way) is neutral.
_VERDICT_CLASSES = {
    "Clean": "clean",
    "Infected": "infected",
    "InfectedAllowed": "allowed",
    "Unscannable": "unscannable",
    "Error": "error",
}


@register.simple_tag
def verdict_badge(verdict: str | None) -> str:
    """``{% verdict_badge result.verdict %}``: the verdict in words with its colour, never colour alone."""
    label = verdict or "Pending"
    modifier = _VERDICT_CLASSES.get(verdict or "", "neutral")
    return format_html('<span class="badge badge--{}">{}</span>', modifier, label)


@register.simple_tag
def role_badge(role: str | None) -> str:
    """``{% role_badge membership.role %}``."""
    value = role or Role.NONE
    try:
        label = Role(value).label
    except ValueError:
        label = value
    return format_html('<span class="badge badge--role badge--role-{}">{}</span>', value, label)


@register.simple_tag
def timestamp(value: datetime | None, seconds: bool = False) -> str:
    """``{% timestamp result.scanned_at %}``: UTC, said so, with a machine-readable datetime."""
    if value is None:
        return "—"
    utc = value.astimezone(UTC)
    shown = utc.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return format_html('<time datetime="{}">{} UTC</time>', utc.isoformat(), shown)


@register.simple_tag
def tenant_admins(tenant: Tenant | None) -> list[str]:
    """The email addresses of the tenant's admins: the people who can grant a role."""
    if tenant is None:
        return []
    with scopes_disabled():
        return list(
            Membership.objects.filter(tenant=tenant, role=Role.ADMIN, user__is_active=True)
            .order_by("user__email")
            .values_list("user__email", flat=True)
        )


@register.simple_tag
def page_numbers(page: Page[Any]) -> list[int | str]:
    """The page numbers around the current one, with the paginator's ellipsis for the gaps."""
    return list(page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1))


@register.filter
def pretty_json(value: Any) -> str:
    """An audit event's details, indented (escaped by the template like any other text)."""
    return json.dumps(value, indent=2, sort_keys=True, cls=DjangoJSONEncoder, ensure_ascii=False)


@register.filter
def field_type(field: Any) -> str:
    """The widget's input type (checkbox, select, …), for the field layout of components/field.html."""
    widget = field.field.widget
    return getattr(widget, "input_type", None) or widget.__class__.__name__.lower()

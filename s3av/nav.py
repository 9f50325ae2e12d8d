"""The portal's navigation: THE one place that lists the pages in the header's <nav>.

Adding a page to the nav is one line in ``NAV``: (label, url name, least role that may open it). A line
whose url name is not routed (yet) is left out, so a page's line can land before its view. A link is
shown only to members whose role in the current tenant reaches the line's role: what a role may not open
is not offered (the view refuses it too; this is no access check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from accounts.models import Role, role_at_least

NAV: list[tuple[str, str, str]] = [
    ("Dashboard", "home", Role.VIEWER),
    ("Findings", "findings", Role.VIEWER),
    ("Buckets", "buckets", Role.VIEWER),
    ("Scans", "jobs", Role.VIEWER),
    ("Linked accounts", "linked-accounts", Role.VIEWER),
    ("Policies", "policies", Role.VIEWER),
    ("Notifications", "channels", Role.VIEWER),
    ("Settings", "settings", Role.ADMIN),
    ("Audit log", "audit-log", Role.VIEWER),
]


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    current: bool


def links_for(request: HttpRequest) -> list[NavLink]:
    role = getattr(request, "role", None)
    if getattr(request, "tenant", None) is None:
        return []
    offered: list[tuple[str, str]] = []
    for label, url_name, least in NAV:
        if not role_at_least(role, least):
            continue
        try:
            offered.append((label, reverse(url_name)))
        except NoReverseMatch:
            continue
    # A section's sub-pages (/settings/members under /settings/) keep its link marked current; when
    # two links hold the page (/settings/policies/ under /settings/), only the closer one is.
    holding = [url for _, url in offered if _holds(url, request.path)]
    closest = max(holding, key=len, default=None)
    return [NavLink(label, url, url == closest) for label, url in offered]


def _holds(url: str, path: str) -> bool:
    return path == url if url == "/" else path.startswith(url)


def portal_nav(request: HttpRequest) -> dict[str, Any]:
    return {"nav_links": links_for(request)}

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
    links: list[NavLink] = []
    for label, url_name, least in NAV:
        if not role_at_least(role, least):
            continue
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue
        # A section's sub-pages (/settings/members under /settings/) keep its link marked current.
        current = request.path == url if url == "/" else request.path.startswith(url)
        links.append(NavLink(label, url, current))
    return links


def portal_nav(request: HttpRequest) -> dict[str, Any]:
    return {"nav_links": links_for(request)}

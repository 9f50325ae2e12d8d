from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject
from django_scopes import scopes_disabled

from accounts.middleware import session_memberships
from accounts.models import Membership


def _memberships(request: HttpRequest) -> list[Membership]:
    with scopes_disabled():
        return list(session_memberships(request).order_by("tenant__name"))


def tenant(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    signed_in = bool(user is not None and user.is_authenticated)
    return {
        "tenant": getattr(request, "tenant", None),
        "tenant_role": getattr(request, "role", None),
        # The header's tenant switcher; queried only on pages that render it.
        "tenant_memberships": SimpleLazyObject(lambda: _memberships(request) if signed_in else []),
    }

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from accounts.models import Role, role_at_least


def required_role(request: Request, view: Any) -> str:
    """The role a view needs: ``action_roles`` per action, else read_role / write_role."""
    action = getattr(view, "action", None)
    per_action = getattr(view, "action_roles", {})
    if action in per_action:
        return per_action[action]
    if request.method in SAFE_METHODS:
        return getattr(view, "read_role", Role.VIEWER)
    return getattr(view, "write_role", Role.ADMIN)


class TenantRolePermission(BasePermission):
    """Allow a caller whose role in the request's tenant is high enough.

    Objects of other tenants never reach this check: querysets are built from
    the request's tenant, so they are 404 before any permission is asked.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            raise NotAuthenticated()
        needed = required_role(request, view)
        if needed == Role.NONE:
            return True
        tenant = getattr(request._request, "tenant", None)
        if tenant is None:
            raise PermissionDenied("You are not a member of any tenant.")
        role = getattr(request._request, "role", None)
        if not role_at_least(role, needed):
            raise PermissionDenied(f"This needs the {needed} role; yours is {role or Role.NONE}.")
        return True

"""What every portal page of scanning needs: the signed-in member's tenant, refused without a role."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from accounts.models import Role, role_at_least

PAGE = 100


def tenant_for_viewer(request: HttpRequest):  # type: ignore[no-untyped-def]
    tenant = getattr(request, "tenant", None)
    if tenant is None or not role_at_least(getattr(request, "role", None), Role.VIEWER):
        raise PermissionDenied("An admin of your tenant must grant you a role first.")
    return tenant

"""What the portal's pages share: the member's tenant with a role check, and service errors on forms.

A page checks the role the API's viewset asks for the same action; another tenant's object is a 404
(the page looks it up in the request's tenant only), a member whose role is too low gets 403.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest

from accounts.models import Role, Tenant, role_at_least
from accounts.services import ServiceError


def member_tenant(request: HttpRequest, needed: str = Role.VIEWER) -> Tenant:
    """The request's tenant when the member's role there is at least ``needed``; else 403."""
    tenant = getattr(request, "tenant", None)
    role = getattr(request, "role", None)
    if tenant is None or not role_at_least(role, Role.VIEWER):
        raise PermissionDenied("An admin of your tenant must grant you a role first.")
    if not role_at_least(role, needed):
        raise PermissionDenied(f"This needs the {needed} role; yours is {role}.")
    return tenant


def roles(request: HttpRequest) -> dict[str, bool]:
    """``can_admin`` and ``can_operate`` for templates: what a role may not do is not offered."""
    role = getattr(request, "role", None)
    return {"can_admin": role_at_least(role, Role.ADMIN), "can_operate": role_at_least(role, Role.OPERATOR)}


def add_errors(form: forms.Form, exc: ServiceError | DjangoValidationError, aliases: Any = None) -> None:
    """Put a service's refusal next to the field it names (``aliases`` maps service to form names)."""
    aliases = aliases or {}

    def field_of(name: str | None) -> str | None:
        name = aliases.get(name, name)
        return name if name in form.fields else None

    if isinstance(exc, ServiceError):
        form.add_error(field_of(exc.field), exc.message)
        return
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            for message in errors:
                form.add_error(field_of(name), message)
        return
    for message in exc.messages:
        form.add_error(None, message)

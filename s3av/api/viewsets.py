"""The tenant-scoped base viewset shared by every app's API."""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import mixins, viewsets
from rest_framework.request import Request

from accounts.models import Tenant
from accounts.services import Actor


def request_tenant(request: Request) -> Tenant:
    tenant = getattr(request._request, "tenant", None)
    if tenant is None:  # the permission class refuses such requests first
        raise RuntimeError("No tenant on this request")
    return tenant


class TenantViewSet(viewsets.GenericViewSet):
    """Base for tenant-owned resources: every query starts from the request's tenant."""

    lookup_value_regex = "[0-9a-fA-F-]{36}"

    @property
    def tenant(self) -> Tenant:
        return request_tenant(self.request)

    @property
    def actor(self) -> Actor:
        return Actor.from_request(self.request._request)

    def get_queryset(self) -> models.QuerySet[Any]:
        queryset: Any = self.queryset  # type: ignore[arg-type]
        return queryset.model._default_manager.filter(tenant=self.tenant)


class TenantCrudViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantViewSet,
):
    """List, read, create, PATCH and delete a tenant's objects (no PUT: partial updates only)."""

    http_method_names = ["get", "post", "patch", "delete"]

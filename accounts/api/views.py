"""REST API for the tenant and its people: /api/v1/me, /tenant, /members/, /api-keys/, /audit-events/."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import MAX_CIDRS, ApiKey, AuditEvent, Membership, Role, Tenant, validate_cidrs
from s3av.api.filters import AwareDateTimeFilter, FilterSet, text_filter
from s3av.api.viewsets import TenantViewSet, request_tenant


class TenantSerializer(serializers.ModelSerializer):
    allowed_cidrs = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=MAX_CIDRS
    )

    class Meta:
        model = Tenant
        fields = [
            "id",
            "name",
            "slug",
            "status",
            "allowed_cidrs",
            "sso_required",
            "max_scan_bytes",
            "monthly_scan_bytes_limit",
            "created_at",
        ]
        read_only_fields = ["id", "slug", "status", "created_at"]
        # Bounds come from the model's validators; the SSO rule from Tenant.clean(), through the service.

    def validate_allowed_cidrs(self, value: list[str]) -> list[str]:
        try:
            validate_cidrs(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return value


class MeView(APIView):
    read_role = Role.NONE

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        key = getattr(request._request, "api_key", None)
        tenant = getattr(request._request, "tenant", None)
        body: dict[str, Any] = {
            "kind": "api_key" if key else "user",
            "role": getattr(request._request, "role", None) or Role.NONE,
            "tenant": {"id": str(tenant.pk), "name": tenant.name, "slug": tenant.slug} if tenant else None,
        }
        if key is not None:
            body["api_key"] = {"id": str(key.pk), "name": key.name, "prefix": key.prefix}
        else:
            body["user"] = {"id": str(request.user.pk), "email": getattr(request.user, "email", "")}
        return Response(body)


class TenantView(APIView):
    read_role = Role.VIEWER
    write_role = Role.ADMIN

    @extend_schema(responses=TenantSerializer)
    def get(self, request: Request) -> Response:
        return Response(TenantSerializer(request_tenant(request)).data)

    @extend_schema(request=TenantSerializer, responses=TenantSerializer)
    def patch(self, request: Request) -> Response:
        tenant = request_tenant(request)
        serializer = TenantSerializer(tenant, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.update_tenant_settings(
            tenant, services.Actor.from_request(request._request), **serializer.validated_data
        )
        return Response(TenantSerializer(tenant).data)


class MembershipSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.SerializerMethodField(
        help_text="The member's own name, once they have signed in since joining this tenant."
    )

    class Meta:
        model = Membership
        fields = ["id", "email", "name", "role", "created_at"]
        read_only_fields = ["id", "created_at"]

    def get_name(self, membership: Membership) -> str:
        # A user's name is their profile, possibly set in another tenant. Showing it to a tenant that
        # has just added their address would tell it that the address has an account elsewhere; once
        # they have signed in after joining, they are this tenant's member in full.
        last_login = membership.user.last_login
        return membership.user.name if last_login and last_login >= membership.created_at else ""


class MembershipCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MemberViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantViewSet
):
    queryset = Membership.objects.none()
    serializer_class = MembershipSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return super().get_queryset().select_related("user")

    @extend_schema(request=MembershipCreateSerializer, responses={201: MembershipSerializer})
    def create(self, request: Request) -> Response:
        body = MembershipCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = services.add_member(self.tenant, self.actor, **body.validated_data)
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MembershipUpdateSerializer, responses=MembershipSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        membership = self.get_object()
        body = MembershipUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        if "role" in body.validated_data:  # else a PATCH that changes nothing
            membership = services.change_role(
                self.tenant, self.actor, membership, body.validated_data["role"]
            )
        return Response(MembershipSerializer(membership).data)

    def perform_destroy(self, instance: Membership) -> None:
        services.remove_member(self.tenant, self.actor, instance)


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "role", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
        read_only_fields = ["id", "prefix", "created_at", "revoked_at", "last_used_at"]
        extra_kwargs = {
            "role": {"help_text": "Default: viewer."},
            "expires_at": {"help_text": "In the future, at most 3650 days ahead; empty: never expires."},
        }


class ApiKeyCreatedSerializer(ApiKeySerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    queryset = ApiKey.objects.none()
    serializer_class = ApiKeySerializer

    @extend_schema(request=ApiKeySerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request: Request) -> Response:
        body = ApiKeySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key, secret = services.create_api_key(self.tenant, self.actor, **body.validated_data)
        data = ApiKeySerializer(key).data
        data["secret"] = secret
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: ApiKeySerializer})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        key = services.revoke_api_key(self.tenant, self.actor, self.get_object())
        return Response(ApiKeySerializer(key).data)


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "details",
            "ip",
        ]


class AuditEventFilter(FilterSet):
    """The audit log page's filters (accounts.views.audit), with times instead of days."""

    action = text_filter("action", "startswith", help_text="the action starts with this, e.g. member.")
    actor = text_filter("actor_label", "icontains", help_text="who, as shown in actor (any part of it)")
    target = text_filter(
        "target_repr", method="filter_target", help_text="the target's name (any part of it) or its exact id"
    )
    since = AwareDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="at or after (ISO 8601, with a zone)"
    )
    before = AwareDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="before (ISO 8601, with a zone)"
    )

    def filter_target(self, queryset: models.QuerySet[AuditEvent], name: str, value: str) -> Any:
        return queryset.filter(Q(target_repr__icontains=value) | Q(target_id=value))


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    queryset = AuditEvent.objects.none()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter

"""``/api/v1/sso``: the tenant's SAML configuration (admins only: it says who may sign in, and how)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role, Tenant
from accounts.services import Actor, ServiceError
from s3av.api.viewsets import request_tenant
from sso import services
from sso.adapter import sp_urls
from sso.models import GROUP_ROLES, Preset, SamlConnection


class SsoSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    preset = serializers.ChoiceField(choices=Preset.choices, required=False)
    idp_metadata_xml = serializers.CharField(
        required=False, write_only=True, max_length=1024 * 1024, help_text="The IdP's metadata, pasted."
    )
    idp_metadata_url = serializers.URLField(
        required=False, max_length=1024, help_text="Fetched now (https, public addresses only)."
    )
    idp_entity_id = serializers.CharField(required=False, max_length=1024)
    idp_sso_url = serializers.URLField(required=False, max_length=1024)
    idp_certificate = serializers.CharField(required=False, write_only=True, max_length=20000)
    idp_certificate_fingerprint = serializers.CharField(
        read_only=True, help_text="SHA-256 of the certificate."
    )
    email_domains = serializers.ListField(
        child=serializers.CharField(max_length=253), required=False, max_length=services.MAX_DOMAINS
    )
    attribute_map = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField(max_length=512), max_length=10),
        required=False,
    )
    group_attribute = serializers.CharField(required=False, allow_blank=True, max_length=512)
    group_roles = serializers.DictField(
        child=serializers.ChoiceField(choices=[(r.value, r.label) for r in GROUP_ROLES]), required=False
    )
    allow_idp_initiated = serializers.BooleanField(required=False)


def _body(request: HttpRequest, tenant: Tenant, connection: SamlConnection | None) -> dict[str, Any]:
    body: dict[str, Any] = {**sp_urls(request, tenant), "configured": connection is not None}
    if connection is None:
        return {**body, "enabled": False}
    return {
        **body,
        "enabled": connection.enabled,
        "preset": connection.preset,
        "idp_entity_id": connection.idp_entity_id,
        "idp_sso_url": connection.idp_sso_url,
        "idp_metadata_url": connection.idp_metadata_url,
        "idp_certificate_fingerprint": connection.certificate_fingerprint,
        "email_domains": connection.email_domains(),
        "attribute_map": connection.attribute_map,
        "group_attribute": connection.group_attribute,
        "group_roles": connection.group_roles,
        "allow_idp_initiated": connection.allow_idp_initiated,
    }


class SsoView(APIView):
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        tenant = request_tenant(request)
        connection = SamlConnection.objects.filter(tenant=tenant).first()
        return Response(_body(request._request, tenant, connection))

    @extend_schema(request=SsoSerializer, responses={200: dict})
    def put(self, request: Request) -> Response:
        tenant = request_tenant(request)
        serializer = SsoSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            connection = services.configure_saml(
                tenant, Actor.from_request(request._request), **serializer.validated_data
            )
        except ServiceError as exc:
            raise serializers.ValidationError({exc.field or "non_field_errors": [exc.message]}) from None
        return Response(_body(request._request, tenant, connection))

    @extend_schema(responses={204: None})
    def delete(self, request: Request) -> Response:
        tenant = request_tenant(request)
        try:
            services.delete_saml(tenant, Actor.from_request(request._request))
        except ServiceError as exc:
            raise serializers.ValidationError({"non_field_errors": [exc.message]}) from None
        return Response(status=status.HTTP_204_NO_CONTENT)

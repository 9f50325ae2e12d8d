"""REST API for scan results (with triage) and scan policies."""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Role
from s3av.api.filters import AwareDateTimeFilter, FilterSet, choice_filter, text_filter, uuid_filter
from s3av.api.viewsets import TenantCrudViewSet, TenantViewSet, request_tenant
from scanning.models import (
    MAX_PATTERN_LENGTH,
    MAX_PATTERNS,
    Bucket,
    Resolution,
    ScanPolicy,
    ScanResult,
    TriageState,
    Verdict,
)
from scanning.pipeline import services
from scanning.policies import services as policies


class ScanResultSerializer(serializers.ModelSerializer):
    bucket = serializers.UUIDField(source="bucket_id", read_only=True)
    # Computed from the result's fields (what was done to the object), as DESIGN.md names it.
    action = serializers.CharField(read_only=True)
    action_status = serializers.ChoiceField(
        choices=ScanResult.ActionStatus.choices,
        allow_blank=True,
        read_only=True,
        help_text="Empty: no action.",
    )
    resolution = serializers.ChoiceField(
        choices=Resolution.choices,
        allow_blank=True,
        read_only=True,
        help_text="How the finding was resolved; empty while it is open (or not a finding).",
    )
    triage_state = serializers.ChoiceField(
        choices=TriageState.choices,
        allow_blank=True,
        read_only=True,
        help_text="open or resolved for a finding; empty for a Clean result.",
    )

    class Meta:
        model = ScanResult
        fields = [
            "id", "bucket", "bucket_name", "key", "version_id", "etag", "size", "sha256", "verdict",
            "signatures", "message", "engine", "signature_version", "action", "action_status",
            "action_detail", "tags_dropped", "quarantine_bucket", "quarantine_key", "trigger",
            "duration_ms", "scanned_at", "created_at",
            "triage_state", "resolution", "resolved_by", "resolved_at",
        ]  # fmt: skip
        read_only_fields = fields


KEY_NUL_MESSAGE = {"null_characters_not_allowed": "A key cannot contain NUL characters."}


class ScanResultFilter(FilterSet):
    verdict = choice_filter("verdict", Verdict)
    bucket = uuid_filter("bucket_id", "Not a bucket id.", help_text="a bucket id")
    key = text_filter("key", help_text="exact key", error_messages=KEY_NUL_MESSAGE)
    key_prefix = text_filter(
        "key", "startswith", help_text="the key starts with this", error_messages=KEY_NUL_MESSAGE
    )
    since = AwareDateTimeFilter(
        field_name="scanned_at", lookup_expr="gte", help_text="scanned at or after (ISO 8601, with a zone)"
    )
    state = choice_filter(
        "triage_state",
        TriageState,
        help_text="open: findings nobody has released or deleted yet; resolved: those handled",
    )


class TriageConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class ReleaseSerializer(serializers.Serializer):
    overwrite = serializers.BooleanField(
        default=False, help_text="Replace (or, in a versioned bucket, hide) an object now at the key."
    )


class RescanSerializer(serializers.Serializer):
    confirm = serializers.BooleanField(
        default=False, help_text="Rescan a released false positive although an Infected verdict undoes it."
    )


RescanQueuedSerializer = inline_serializer(
    "RescanQueued",
    {
        "status": serializers.CharField(),
        "bucket": serializers.UUIDField(),
        "key": serializers.CharField(),
        "version_id": serializers.CharField(),
        "message": serializers.CharField(help_text="what the scan will do, in words"),
    },
)


def _triage_body(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


class ScanResultViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    queryset = ScanResult.objects.none()
    serializer_class = ScanResultSerializer
    filterset_class = ScanResultFilter
    action_roles = {"rescan": Role.OPERATOR, "release": Role.OPERATOR, "delete_object": Role.OPERATOR}

    def get_queryset(self) -> models.QuerySet[Any]:
        return super().get_queryset().exclude(verdict="")

    @extend_schema(request=RescanSerializer, responses={202: RescanQueuedSerializer})
    @action(detail=True, methods=["post"])
    def rescan(self, request: Request, pk: str | None = None) -> Response:
        result = self.get_object()
        body = _triage_body(RescanSerializer, request)
        try:
            queued = services.rescan(self.tenant, self.actor, result, confirm=body["confirm"])
        except services.TriageConflict as exc:
            raise TriageConflict(exc.message) from exc
        return Response(queued, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ReleaseSerializer, responses=ScanResultSerializer)
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str | None = None) -> Response:
        result = self.get_object()
        body = _triage_body(ReleaseSerializer, request)
        try:
            released = services.release_from_quarantine(
                self.tenant, self.actor, result, overwrite=body["overwrite"]
            )
        except services.TriageConflict as exc:
            raise TriageConflict(exc.message) from exc
        return Response(ScanResultSerializer(released).data)

    @extend_schema(request=None, responses=ScanResultSerializer)
    @action(detail=True, methods=["post"], url_path="delete-object")
    def delete_object(self, request: Request, pk: str | None = None) -> Response:
        try:
            result = services.delete_scanned_object(self.tenant, self.actor, self.get_object())
        except services.TriageConflict as exc:
            raise TriageConflict(exc.message) from exc
        return Response(ScanResultSerializer(result).data)


def pattern_list() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=MAX_PATTERN_LENGTH, trim_whitespace=False),
        required=False,
        max_length=MAX_PATTERNS,
    )


class ScanPolicySerializer(serializers.ModelSerializer):
    include_patterns = pattern_list()
    exclude_patterns = pattern_list()

    class Meta:
        model = ScanPolicy
        fields = [
            "id", "name", "is_default", "max_object_size", "include_patterns", "exclude_patterns",
            "tag_objects", "tag_result_key", "tag_date_key", "tag_virus_key", "tag_message_key",
            "on_infected", "on_unscannable", "on_error", "quarantine_bucket", "quarantine_prefix",
            "promote_to_bucket", "promote_prefix", "delete_staging_after_promote",
            "rescan_days_on_signature_change", "scan_bucket_on_infected",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "is_default", "created_at", "updated_at"]

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        # A referenced bucket must be the caller's tenant's: another tenant's id is "does not exist".
        request = self.context.get("request")
        tenant = getattr(getattr(request, "_request", None), "tenant", None)
        fields["promote_to_bucket"].queryset = (  # type: ignore[attr-defined]
            Bucket.objects.filter(tenant=tenant) if tenant is not None else Bucket.objects.none()
        )
        # The deployment's engine limit, so that the schema documents what this server accepts.
        fields["max_object_size"] = serializers.IntegerField(
            min_value=1,
            max_value=settings.MAX_OBJECT_SIZE,
            required=False,
            help_text="Bytes; larger objects are Unscannable. At most this deployment's engine limit.",
        )
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # The model's rules (shared with the admin) on the policy as it would be after this change.
        candidate = copy.copy(self.instance) if self.instance is not None else ScanPolicy()
        if self.instance is None:
            candidate.tenant = request_tenant(self.context["request"])
        for name, value in attrs.items():
            setattr(candidate, name, value)
        try:
            candidate.full_clean(exclude=["tenant"], validate_constraints=False)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        return attrs


class ScanPolicyViewSet(TenantCrudViewSet):
    queryset = ScanPolicy.objects.none()
    serializer_class = ScanPolicySerializer

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = policies.create_policy(self.tenant, self.actor, **serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = policies.update_policy(
            self.tenant, self.actor, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: ScanPolicy) -> None:
        policies.delete_policy(self.tenant, self.actor, instance)

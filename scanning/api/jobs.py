"""REST API for bucket scans, schedules and usage: /api/v1/jobs/, /api/v1/schedules/, /api/v1/usage."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role
from s3av.api.filters import FilterSet, choice_filter, uuid_filter
from s3av.api.viewsets import TenantCrudViewSet, TenantViewSet, request_tenant
from scanning.jobs import services as jobs
from scanning.models import Bucket, JobStatus, JobTrigger, ScanJob, Schedule, UsageMonth, validate_cron
from scanning.schedules import services as schedules


def _bucket_of(tenant: Any, bucket_id: Any) -> Bucket:
    bucket = Bucket.objects.select_related("account").filter(tenant=tenant, pk=bucket_id).first()
    if bucket is None:
        raise ValidationError({"bucket": ["No such bucket."]})
    return bucket


class ScanJobSerializer(serializers.ModelSerializer):
    bucket = serializers.UUIDField(source="bucket_id", read_only=True)
    bucket_name = serializers.CharField(source="bucket.name", read_only=True)
    result = serializers.UUIDField(source="result_id", read_only=True, allow_null=True)
    clean = serializers.IntegerField(source="clean_count", read_only=True)

    class Meta:
        model = ScanJob
        fields = [
            "id", "bucket", "bucket_name", "prefix", "key", "version_id", "modified_after", "modified_before",
            "all_versions", "trigger", "status", "listed", "queued", "scanned", "clean", "infected",
            "unscannable", "errors", "skipped", "pages_listed", "signature_version", "error", "result",
            "created_by", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class ScanJobCreateSerializer(serializers.Serializer):
    bucket = serializers.UUIDField()
    prefix = serializers.CharField(
        max_length=1024, required=False, allow_blank=True, default="", trim_whitespace=False
    )
    modified_after = serializers.DateTimeField(required=False, allow_null=True, default=None)
    modified_before = serializers.DateTimeField(required=False, allow_null=True, default=None)
    all_versions = serializers.BooleanField(required=False, default=False)


class ScanJobFilter(FilterSet):
    bucket = uuid_filter("bucket_id", "Not a bucket id.", help_text="a bucket id")
    status = choice_filter("status", JobStatus)


class ScanJobViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, TenantViewSet
):
    """Bucket scans. Viewers read; operators start and cancel."""

    queryset = ScanJob.objects.none()
    serializer_class = ScanJobSerializer
    filterset_class = ScanJobFilter
    read_role = Role.VIEWER
    write_role = Role.OPERATOR

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("bucket")

    @extend_schema(request=ScanJobCreateSerializer, responses={201: ScanJobSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        incoming = ScanJobCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        job = jobs.start_bucket_scan(
            self.tenant,
            self.actor,
            _bucket_of(self.tenant, data["bucket"]),
            data["prefix"],
            JobTrigger.API if request._request.api_key else JobTrigger.MANUAL,  # type: ignore[attr-defined]
            modified_after=data["modified_after"],
            modified_before=data["modified_before"],
            all_versions=data["all_versions"],
        )
        return Response(ScanJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ScanJobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        job = jobs.cancel_job(self.tenant, self.actor, self.get_object())
        return Response(ScanJobSerializer(job).data)


class ScheduleSerializer(serializers.ModelSerializer):
    bucket = serializers.UUIDField(source="bucket_id")
    last_job = serializers.UUIDField(source="last_job_id", read_only=True, allow_null=True)

    class Meta:
        model = Schedule
        fields = [
            "id", "bucket", "prefix", "cron", "enabled", "next_run_at", "last_run_at", "last_job",
            "created_by", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "id",
            "next_run_at",
            "last_run_at",
            "last_job",
            "created_by",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {"prefix": {"trim_whitespace": False}}

    def validate_cron(self, value: str) -> str:
        try:
            validate_cron(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return value.strip()


class ScheduleViewSet(TenantCrudViewSet):
    """Cron schedules of bucket scans (UTC, at most hourly). Scheduling scans is starting scans: operator."""

    queryset = Schedule.objects.none()
    serializer_class = ScheduleSerializer
    read_role = Role.VIEWER
    write_role = Role.OPERATOR

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("bucket")

    def perform_create(self, serializer: Any) -> None:
        data = serializer.validated_data
        serializer.instance = schedules.create_schedule(
            self.tenant,
            self.actor,
            _bucket_of(self.tenant, data["bucket_id"]),
            data["cron"],
            prefix=data.get("prefix", ""),
            enabled=data.get("enabled", True),
        )

    def perform_update(self, serializer: Any) -> None:
        changes = dict(serializer.validated_data)
        if "bucket_id" in changes:
            changes["bucket"] = _bucket_of(self.tenant, changes.pop("bucket_id"))
        serializer.instance = schedules.update_schedule(
            self.tenant, self.actor, serializer.instance, **changes
        )

    def perform_destroy(self, instance: Schedule) -> None:
        schedules.delete_schedule(self.tenant, self.actor, instance)


UsageSerializer = inline_serializer(
    "Usage",
    {
        "months": inline_serializer(
            "UsageMonth",
            {
                "month": serializers.CharField(help_text="YYYY-MM (UTC)"),
                "objects": serializers.IntegerField(),
                "bytes": serializers.IntegerField(),
            },
            many=True,
        ),
        "monthly_scan_bytes_limit": serializers.IntegerField(allow_null=True),
    },
)


class UsageView(APIView):
    """Objects and bytes scanned per month (bucket scans, event scans and the scan API)."""

    read_role = Role.VIEWER

    @extend_schema(responses=UsageSerializer)
    def get(self, request: Request) -> Response:
        tenant = request_tenant(request)
        months = UsageMonth.objects.filter(tenant=tenant).order_by("-month")[:24]
        return Response(
            {
                "months": [
                    {"month": f"{m.month:%Y-%m}", "objects": m.objects_scanned, "bytes": m.bytes_scanned}
                    for m in months
                ],
                "monthly_scan_bytes_limit": tenant.monthly_scan_bytes_limit,
            }
        )

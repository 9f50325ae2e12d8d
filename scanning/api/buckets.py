"""REST API for discovered buckets: /api/v1/buckets/ (protection, policy, read gate)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Role
from linked_accounts.api.views import AccountSerializer
from linked_accounts.models import AwsAccount
from s3av.api.filters import FilterSet, uuid_filter
from s3av.api.viewsets import TenantViewSet
from scanning.buckets import discovery, protection, read_gate
from scanning.models import Bucket, ScanPolicy


class BucketSerializer(serializers.ModelSerializer):
    account = serializers.UUIDField(source="account_id", read_only=True)
    policy = serializers.UUIDField(source="policy_id", read_only=True, allow_null=True)
    missing = serializers.SerializerMethodField()

    class Meta:
        model = Bucket
        fields = [
            "id",
            "name",
            "region",
            "account",
            "versioning",
            "encryption",
            "protected",
            "policy",
            "missing",
            "missing_since",
            "discovered_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_missing(self, bucket: Bucket) -> bool:
        return bucket.missing_since is not None


class BucketUpdateSerializer(serializers.Serializer):
    policy = serializers.UUIDField(
        allow_null=True, help_text="A scan policy of this tenant; null: the default."
    )


class ProtectSerializer(serializers.Serializer):
    scan_existing = serializers.BooleanField(
        default=True, help_text="On the first protection, also scan what the bucket already holds."
    )


ReadGateSerializer = inline_serializer(
    "ReadGate",
    {
        "statement": serializers.DictField(help_text="The deny-unless-Clean read statement."),
        "statements": serializers.ListField(
            child=serializers.DictField(),
            help_text="Every statement POST merges: the read gate, the tag guard and the copy guard.",
        ),
        "applied": serializers.BooleanField(required=False, help_text="POST: merged into the bucket policy."),
        "note": serializers.CharField(),
    },
)

_READ_GATE_NOTE = (
    "Denies s3:GetObject and s3:GetObjectVersion unless the object's verdict tag is Clean or "
    "InfectedAllowed, to everyone but s3av's role. Unscanned objects are unreadable until scanned. "
    "A second statement stops anyone but s3av's role from writing the verdict tag, so it cannot be "
    "forged; a third stops anyone but s3av's role from copying objects in from another bucket, which "
    "would bring that bucket's tags along. POST merges all three into the bucket policy (the role needs "
    "EnableReadGate=true in its template)."
)


class BucketFilter(FilterSet):
    account = uuid_filter("account_id", "Not an account id.", help_text="only this linked account's")


class BucketViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Buckets found in linked accounts. Protect/unprotect need operator; policy and read gate admin."""

    queryset = Bucket.objects.none()
    serializer_class = BucketSerializer
    filterset_class = BucketFilter
    read_role = Role.VIEWER
    write_role = Role.ADMIN
    action_roles = {"protect": Role.OPERATOR, "unprotect": Role.OPERATOR}

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("account")

    @extend_schema(request=BucketUpdateSerializer, responses=BucketSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        bucket = self.get_object()
        body = BucketUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        if "policy" not in body.validated_data:  # a PATCH that changes nothing
            return Response(BucketSerializer(bucket).data)
        policy_id = body.validated_data["policy"]
        policy = None
        if policy_id is not None:
            # Another tenant's policy is "not found", exactly like a missing one.
            policy = ScanPolicy.objects.filter(tenant=self.tenant, pk=policy_id).first()
            if policy is None:
                raise serializers.ValidationError({"policy": ["No such policy."]})
        bucket = protection.set_bucket_policy(self.tenant, self.actor, bucket, policy)
        return Response(BucketSerializer(bucket).data)

    @extend_schema(request=ProtectSerializer, responses=BucketSerializer)
    @action(detail=True, methods=["post"])
    def protect(self, request: Request, pk: str | None = None) -> Response:
        body = ProtectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        bucket = protection.protect_bucket(
            self.tenant, self.actor, self.get_object(), scan_existing=body.validated_data["scan_existing"]
        )
        return Response(BucketSerializer(bucket).data)

    @extend_schema(request=None, responses=BucketSerializer)
    @action(detail=True, methods=["post"])
    def unprotect(self, request: Request, pk: str | None = None) -> Response:
        bucket = self.get_object()
        protection.unprotect_bucket(self.tenant, self.actor, bucket)
        return Response(BucketSerializer(bucket).data)

    @extend_schema(methods=["GET"], request=None, responses=ReadGateSerializer)
    @extend_schema(methods=["POST"], request=None, responses=ReadGateSerializer)
    @action(detail=True, methods=["get", "post"], url_path="read-gate")
    def read_gate(self, request: Request, pk: str | None = None) -> Response:
        bucket = self.get_object()
        if request.method == "POST":
            read_gate.apply(self.tenant, self.actor, bucket)
            statements = read_gate.statements(bucket)
            return Response(
                {
                    "statement": statements[0],
                    "statements": statements,
                    "applied": True,
                    "note": _READ_GATE_NOTE,
                }
            )
        statements = read_gate.statements(bucket)
        return Response({"statement": statements[0], "statements": statements, "note": _READ_GATE_NOTE})


DiscoverySerializer = inline_serializer(
    "Discovery",
    {
        "found": serializers.IntegerField(),
        "new": serializers.IntegerField(),
        "newly_missing": serializers.IntegerField(),
        "problems": serializers.ListField(child=serializers.CharField()),
    },
)


class AccountDiscoveryViewSet(TenantViewSet):
    """Linked AWS accounts. Reading needs viewer; linking, verifying and removing need admin."""

    # /api/v1/accounts/{id}/discover: the account's buckets are scanning's (linked_accounts imports
    # nothing of scanning), so the route is registered here, under the accounts prefix.
    queryset = AwsAccount.objects.none()
    serializer_class = AccountSerializer  # what OPTIONS describes, as for the accounts' other routes
    read_role = Role.VIEWER
    write_role = Role.ADMIN
    action_roles = {"discover": Role.OPERATOR}

    @extend_schema(request=None, responses={200: DiscoverySerializer})
    @action(detail=True, methods=["post"])
    def discover(self, request: Request, pk: str | None = None) -> Response:
        account = self.get_object()
        return Response(discovery.discover_buckets(self.tenant, self.actor, account))

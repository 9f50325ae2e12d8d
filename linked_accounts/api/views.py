"""REST API for linked AWS accounts: /api/v1/accounts/."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Role
from linked_accounts import aws, services, templates
from linked_accounts.models import AwsAccount, AwsOrganization
from s3av.api.viewsets import TenantViewSet

# A template answers JSON or, with ?syntax=yaml, YAML.
TEMPLATE_RESPONSES = {
    (200, "application/json"): OpenApiTypes.OBJECT,
    (200, "application/yaml"): OpenApiTypes.OBJECT,
}


class AccountSerializer(serializers.ModelSerializer):
    external_id = serializers.CharField(
        source="role_external_id",
        read_only=True,
        help_text="The external id the account's role must require (the organisation's, under one).",
    )
    organization: serializers.PrimaryKeyRelatedField[AwsOrganization] = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="The organisation (StackSet) this account was linked under, or null.",
    )

    class Meta:
        model = AwsAccount
        fields = [
            "id",
            "account_id",
            "name",
            "role_arn",
            "external_id",
            "organization",
            "status",
            "last_checked_at",
            "last_error",
            "created_at",
        ]
        read_only_fields = [f for f in fields if f not in {"account_id", "name"}]


class AccountCreateSerializer(serializers.Serializer):
    account_id = serializers.RegexField(
        r"^\d{12}$", error_messages={"invalid": "An AWS account id is 12 digits."}
    )
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    organization = serializers.UUIDField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Link under this organisation: the account's role is its StackSet's and trusts its "
        "external id.",
    )


class OrganizationSerializer(serializers.ModelSerializer):
    accounts = serializers.SerializerMethodField(help_text="Ids of the accounts linked under it.")

    class Meta:
        model = AwsOrganization
        fields = ["id", "name", "external_id", "accounts", "created_at"]
        read_only_fields = fields

    def get_accounts(self, organization: AwsOrganization) -> list[str]:
        return [str(account.pk) for account in organization.accounts.all()]


class OrganizationWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class AccountUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, allow_blank=True)


class VerifySerializer(serializers.Serializer):
    # The schema states the ARN's shape (the same pattern verify_account checks); that it is in the
    # linked account, and assumable, is for verify_account to say.
    role_arn = serializers.RegexField(
        aws.ROLE_ARN.pattern,
        max_length=2048,
        error_messages={"invalid": "That is not an IAM role ARN (arn:aws:iam::<account id>:role/<name>)."},
    )


TeardownSerializer = inline_serializer(
    "Teardown",
    {
        "removed": serializers.ListField(child=serializers.CharField()),
        "not_removed": serializers.ListField(child=serializers.CharField()),
    },
)


class AccountViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Linked AWS accounts. Reading needs viewer; linking, verifying and removing need admin."""

    queryset = AwsAccount.objects.none()
    serializer_class = AccountSerializer
    read_role = Role.VIEWER
    write_role = Role.ADMIN

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("organization")

    @extend_schema(request=AccountCreateSerializer, responses={201: AccountSerializer})
    def create(self, request: Request) -> Response:
        body = AccountCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        organization_id = data.pop("organization")
        organization = None
        if organization_id is not None:
            # Another tenant's organisation is "not found", exactly like a missing one.
            organization = AwsOrganization.objects.filter(tenant=self.tenant, pk=organization_id).first()
            if organization is None:
                raise ValidationError({"organization": ["No such organisation."]})
        account = services.link_account(self.tenant, self.actor, organization=organization, **data)
        return Response(AccountSerializer(account).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AccountUpdateSerializer, responses=AccountSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        account = self.get_object()
        body = AccountUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        if body.validated_data:  # else a PATCH that changes nothing
            account = services.update_account(self.tenant, self.actor, account, **body.validated_data)
        return Response(AccountSerializer(account).data)

    @extend_schema(
        responses={200: TeardownSerializer},
        description="Remove everything s3av created in the account, then unlink it. The answer lists "
        "what was removed and what could not be.",
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        report = services.delete_account(self.tenant, self.actor, self.get_object())
        return Response(report.as_dict())

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "kind",
                str,
                enum=["account", "stackset"],
                description="stackset: the StackSet of the organisation this account was linked under "
                "(400 for an account linked on its own)",
            ),
            OpenApiParameter("syntax", str, enum=["json", "yaml"]),
        ],
        responses=TEMPLATE_RESPONSES,
    )
    @action(detail=True, methods=["get"])
    def template(self, request: Request, pk: str | None = None) -> Any:
        account = self.get_object()
        kind = _template_kind(request, default="account")
        if kind == "stackset" and account.organization is None:
            # One StackSet puts one external id into every account it reaches: an account's own id
            # would let exactly one of them verify.
            raise ValidationError(
                {
                    "kind": [
                        "This account was linked on its own, so its external id fits only its own role. "
                        "For a StackSet, create an organisation (POST /api/v1/organizations/), link the "
                        "accounts under it (POST /api/v1/accounts/ with organization) and deploy "
                        "GET /api/v1/organizations/{id}/template."
                    ]
                }
            )
        return _template_response(request, account.role_external_id, kind, f"s3av-{account.account_id}")

    @extend_schema(request=VerifySerializer, responses=AccountSerializer)
    @action(detail=True, methods=["post"])
    def verify(self, request: Request, pk: str | None = None) -> Response:
        account = self.get_object()
        body = VerifySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        account = services.verify_account(self.tenant, self.actor, account, body.validated_data["role_arn"])
        return Response(AccountSerializer(account).data)


def _template_kind(request: Request, default: str) -> str:
    kind = request.query_params.get("kind", default)
    if kind not in {"account", "stackset"}:
        raise ValidationError({"kind": ["Choose account or stackset."]})
    return kind


def _template_response(request: Request, external_id: str, kind: str, filename: str) -> Any:
    syntax = request.query_params.get("syntax", "json")
    if syntax not in {"json", "yaml"}:
        raise ValidationError({"syntax": ["Choose json or yaml."]})
    render = templates.stackset_template if kind == "stackset" else templates.role_template
    template = render(settings.AWS_SERVICE_PRINCIPAL, external_id)
    if syntax == "json":
        return Response(template)
    response = HttpResponse(templates.render(template, "yaml"), content_type="application/yaml")
    response["Content-Disposition"] = f'attachment; filename="{filename}-{kind}.yaml"'
    return response


class OrganizationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Organisation links: one external id shared by the accounts one StackSet deploys the role to.

    Reading needs viewer; creating, renaming and deleting need admin.
    """

    queryset = AwsOrganization.objects.none()
    serializer_class = OrganizationSerializer
    read_role = Role.VIEWER
    write_role = Role.ADMIN

    def get_queryset(self) -> Any:
        return super().get_queryset().prefetch_related("accounts")

    @extend_schema(request=OrganizationWriteSerializer, responses={201: OrganizationSerializer})
    def create(self, request: Request) -> Response:
        body = OrganizationWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        organization = services.create_organization(self.tenant, self.actor, **body.validated_data)
        return Response(OrganizationSerializer(organization).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=OrganizationWriteSerializer, responses=OrganizationSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        organization = self.get_object()
        body = OrganizationWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        organization = services.update_organization(
            self.tenant, self.actor, organization, name=body.validated_data["name"]
        )
        return Response(OrganizationSerializer(organization).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_organization(self.tenant, self.actor, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "kind",
                str,
                enum=["stackset", "account"],
                description="stackset (default): for the management account; account: the same role "
                "as a single stack (for the management account itself, which a service-managed "
                "StackSet never reaches)",
            ),
            OpenApiParameter("syntax", str, enum=["json", "yaml"]),
        ],
        responses=TEMPLATE_RESPONSES,
    )
    @action(detail=True, methods=["get"])
    def template(self, request: Request, pk: str | None = None) -> Any:
        organization = self.get_object()
        kind = _template_kind(request, default="stackset")
        return _template_response(request, organization.external_id, kind, f"s3av-org-{organization.pk}")

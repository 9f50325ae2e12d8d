"""REST API for notification channels: /api/v1/channels/, /{id}, /{id}/test.

Channels are settings: viewers read, admins write. A webhook's signing secret is in the create
answer only.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Role, role_at_least
from linked_accounts.models import AwsAccount
from s3av.api.viewsets import TenantCrudViewSet, request_tenant
from scanning.models import NotificationChannel, Verdict
from scanning.notifications import services as channels
from scanning.notifications.events import EVENT_KINDS


class ChannelSerializer(serializers.ModelSerializer):
    account = serializers.UUIDField(source="account_id", required=False, allow_null=True)
    results = serializers.ListField(
        child=serializers.ChoiceField(choices=[*Verdict.values, *EVENT_KINDS]),
        required=False,
        min_length=1,
        max_length=20,
        help_text="Verdicts to send, and operational events (webhook and SNS): " + ", ".join(EVENT_KINDS),
    )

    class Meta:
        model = NotificationChannel
        fields = [
            "id", "name", "kind", "target", "account", "results", "enabled", "last_error",
            "last_delivered_at", "created_at",
        ]  # fmt: skip
        read_only_fields = ["id", "last_error", "last_delivered_at", "created_at"]
        extra_kwargs = {"target": {"required": False, "allow_blank": True}}

    def to_representation(self, instance: NotificationChannel) -> dict[str, Any]:
        data = super().to_representation(instance)
        request = self.context.get("request")
        role = getattr(getattr(request, "_request", None), "role", None)
        if not role_at_least(role, Role.ADMIN):  # only admins (who manage channels) see whole URLs
            data["target"] = channels.masked_target(instance)
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance: NotificationChannel | None = self.instance
        if instance is not None and "kind" in attrs and attrs["kind"] != instance.kind:
            raise serializers.ValidationError({"kind": ["Create a new channel to change the kind."]})
        kind = attrs.get("kind", instance.kind if instance else None)
        target = attrs.get("target", instance.target if instance else "")
        results = attrs.get("results", instance.results if instance else [Verdict.INFECTED.value])
        if "account_id" in attrs or instance is None:
            account = self._account(attrs.get("account_id"))
            attrs["account_id"] = account.pk if account is not None else None
        else:
            account = instance.account
        errors = channels.channel_problems(
            kind=kind,
            target=target,
            account=account,
            results=results,
            check_target="target" in attrs or instance is None,
        )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def _account(self, account_id: Any) -> AwsAccount | None:
        if account_id is None:
            return None
        # Another tenant's account is "no such account", like a missing one.
        tenant = request_tenant(self.context["request"])
        account = AwsAccount.objects.filter(tenant=tenant, pk=account_id).first()
        if account is None:
            raise serializers.ValidationError({"account": ["No such account."]})
        return account


class ChannelCreatedSerializer(ChannelSerializer):
    secret = serializers.CharField(read_only=True, help_text="The webhook signing secret; shown only now.")

    class Meta(ChannelSerializer.Meta):
        fields = [*ChannelSerializer.Meta.fields, "secret"]


TestAnswer = inline_serializer(
    "ChannelTestAnswer", {"delivered": serializers.BooleanField(), "error": serializers.CharField()}
)


class ChannelViewSet(TenantCrudViewSet):
    """Notification channels. Viewers read; admins write and test."""

    queryset = NotificationChannel.objects.none()
    serializer_class = ChannelSerializer
    read_role = Role.VIEWER
    write_role = Role.ADMIN

    @extend_schema(request=ChannelSerializer, responses={201: ChannelCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ChannelSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        channel = channels.create_channel(self.tenant, self.actor, **serializer.validated_data)
        return Response(ChannelCreatedSerializer(channel).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = channels.update_channel(
            self.tenant, self.actor, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: NotificationChannel) -> None:
        channels.delete_channel(self.tenant, self.actor, instance)

    @extend_schema(request=None, responses=TestAnswer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Send a test message now (``notificationType: test``) and say whether it was delivered."""
        error = channels.send_test_message(self.tenant, self.actor, self.get_object())
        return Response({"delivered": not error, "error": error})

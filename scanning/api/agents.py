"""``GET /api/v1/agents/``: the worker fleet. Agents are the deployment's, not a tenant's: every member
sees their health (status, queues, engine and signature version and age); support staff also see what
each one does (host, process, scans in flight and done, last error), which may name other tenants' work.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import models
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets

from s3av.api.pagination import CursorPagination
from scanning.fleet import agents as fleet
from scanning.models import Agent


class AgentSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField(help_text="active, lost (no heartbeat lately) or stopped")

    class Meta:
        model = Agent
        fields = [
            "id", "status", "queues", "engine", "signature_version", "signature_age", "engine_ok",
            "last_seen_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_status(self, agent: Agent) -> str:
        return agent.status_at(self.context["now"], fleet.lost_after())


class StaffAgentSerializer(AgentSerializer):
    class Meta(AgentSerializer.Meta):
        fields = [
            *AgentSerializer.Meta.fields, "host", "pid", "scans_in_flight", "scans_done", "last_error",
            "last_error_at", "started_at", "stopped_at",
        ]  # fmt: skip
        read_only_fields = fields


class AgentPagination(CursorPagination):
    # Not last_seen_at: a cursor over a field every heartbeat rewrites would skip and repeat rows.
    ordering = ("-started_at", "-id")


@extend_schema(responses=StaffAgentSerializer(many=True))
class AgentViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = AgentSerializer
    pagination_class = AgentPagination

    def get_queryset(self) -> models.QuerySet[Agent]:
        # What fleet.current_agents lists: running, plus stopped within the hour.
        now = timezone.now()
        return Agent.objects.filter(last_seen_at__gte=now - timedelta(days=1)).filter(
            models.Q(stopped_at__isnull=True) | models.Q(stopped_at__gte=now - timedelta(hours=1))
        )

    def get_serializer_class(self) -> Any:
        user = getattr(self.request, "user", None)
        if getattr(user, "is_staff", False) and getattr(self.request._request, "api_key", None) is None:
            return StaffAgentSerializer
        return AgentSerializer

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "now": timezone.now()}

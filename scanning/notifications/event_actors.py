"""Delivery of a tenant's operational events (protection changes, newly discovered buckets) to one
channel, retried with backoff like result notifications (scanning/notifications/actors.py)."""

from __future__ import annotations

import dramatiq
from django_scopes import scope, scopes_disabled
from dramatiq.middleware import CurrentMessage

from accounts.models import Tenant
from scanning.models import NotificationChannel
from scanning.notifications import delivery as notifications
from scanning.notifications import events as ops_notifications

DELIVER_MAX_RETRIES = 8


@dramatiq.actor(
    queue_name="default",
    max_retries=DELIVER_MAX_RETRIES,
    min_backoff=10_000,
    max_backoff=3_600_000,
    time_limit=120_000,
)
def deliver_event(tenant_id: str, channel_id: str, kind: str, text: str) -> None:
    with scopes_disabled():
        tenant = Tenant.objects.filter(pk=tenant_id, status=Tenant.Status.ACTIVE).first()
    if tenant is None:
        return
    with scope(tenant=tenant):
        channel = (
            NotificationChannel.objects.select_related("account").filter(tenant=tenant, pk=channel_id).first()
        )
        # Deleted, disabled or refiltered since the event: nothing to send.
        if channel is None or not channel.wants(kind):
            return
        try:
            notifications.send(channel, ops_notifications.message_for(kind, text))
        except notifications.DeliveryFailed as exc:
            message = CurrentMessage.get_current_message()
            final = message is None or int(message.options.get("retries", 0)) >= DELIVER_MAX_RETRIES
            if exc.permanent or final:
                return  # recorded in the channel's last_error
            raise

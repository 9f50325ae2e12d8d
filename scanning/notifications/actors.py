"""Dramatiq actors of notifications: fan a result out to its channels, one message per channel, so one
failing webhook never holds up the others. Delivery is at least once (a retry may send twice)."""

from __future__ import annotations

import dramatiq
from django_scopes import scope, scopes_disabled
from dramatiq.middleware import CurrentMessage

from accounts.models import Tenant
from scanning.models import NotificationChannel, ScanResult
from scanning.notifications import delivery as notifications

NOTIFY_QUEUE = "default"
DELIVER_MAX_RETRIES = 8


def _active_tenant(tenant_id: str) -> Tenant | None:
    with scopes_disabled():
        return Tenant.objects.filter(pk=tenant_id, status=Tenant.Status.ACTIVE).first()


def _is_final_attempt() -> bool:
    message = CurrentMessage.get_current_message()
    return message is None or int(message.options.get("retries", 0)) >= DELIVER_MAX_RETRIES


@dramatiq.actor(queue_name=NOTIFY_QUEUE, max_retries=3)
def notify_result(tenant_id: str, result_id: str) -> None:
    tenant = _active_tenant(tenant_id)
    if tenant is None:
        return
    with scope(tenant=tenant):
        result = ScanResult.objects.final().filter(tenant=tenant, pk=result_id).first()
        if result is None:
            return
        for channel in notifications.channels_for(tenant, result.verdict):
            deliver.send(tenant_id, str(channel.pk), result_id)


@dramatiq.actor(
    queue_name=NOTIFY_QUEUE,
    max_retries=DELIVER_MAX_RETRIES,
    min_backoff=10_000,
    max_backoff=3_600_000,
    time_limit=120_000,
)
def deliver(tenant_id: str, channel_id: str, result_id: str) -> None:
    tenant = _active_tenant(tenant_id)
    if tenant is None:
        return
    with scope(tenant=tenant):
        channel = (
            NotificationChannel.objects.select_related("account").filter(tenant=tenant, pk=channel_id).first()
        )
        result = (
            ScanResult.objects.final()
            .select_related("bucket__account")
            .filter(tenant=tenant, pk=result_id)
            .first()
        )
        # The channel may have been deleted, disabled or refiltered since the result was fanned out.
        if channel is None or result is None or not channel.wants(result.verdict):
            return
        try:
            notifications.send(channel, notifications.message_for(result))
        except notifications.DeliveryFailed as exc:
            if exc.permanent or _is_final_attempt():
                return  # recorded in the channel's last_error
            raise

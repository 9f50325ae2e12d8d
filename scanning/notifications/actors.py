"""Dramatiq actors of notifications: fan a result out to its channels, one message per channel, so one
failing webhook never holds up the others. Delivery is at least once (a retry may send twice)."""

from __future__ import annotations

from accounts.models import Tenant
from s3av.actors import is_final_attempt, send_on_commit, tenant_actor
from scanning.models import NotificationChannel, ScanResult
from scanning.notifications import delivery as notifications

NOTIFY_QUEUE = "default"
DELIVER_MAX_RETRIES = 8


def result_recorded(tenant: Tenant, result: ScanResult) -> None:
    """Called when a result's actions are settled: publish it after commit if any channel wants it."""
    if result.action_status not in {ScanResult.ActionStatus.DONE, ScanResult.ActionStatus.FAILED}:
        return
    if result.verdict not in NotificationChannel.wanted_verdicts(tenant):
        return
    send_on_commit(notify_result, str(tenant.pk), str(result.pk))


@tenant_actor(queue_name=NOTIFY_QUEUE, max_retries=3)
def notify_result(tenant: Tenant, result_id: str) -> None:
    result = ScanResult.objects.final().filter(tenant=tenant, pk=result_id).first()
    if result is None:
        return
    for channel in notifications.channels_for(tenant, result.verdict):
        deliver.send(str(tenant.pk), str(channel.pk), result_id)


@tenant_actor(
    queue_name=NOTIFY_QUEUE,
    max_retries=DELIVER_MAX_RETRIES,
    min_backoff=10_000,
    max_backoff=3_600_000,
    time_limit=120_000,
)
def deliver(tenant: Tenant, channel_id: str, result_id: str) -> None:
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
        if exc.permanent or is_final_attempt():
            return  # recorded in the channel's last_error
        raise

"""Operational events sent to the channels whose ``results`` filter names the event kind, beside the
verdicts it may name: the deployment's (a worker lost, its engine silent, stale or rejected signatures:
to every tenant's channels that ask, sent by the scheduler) and a tenant's own (a bucket protected or
unprotected, buckets newly discovered: to that tenant's channels, after commit, by an actor).

The same JSON as a scan result with ``notificationType: operationalEvent`` and the kind in ``result``,
so SNS subscribers filter on ``scanResult`` as they do for verdicts. Webhook and SNS channels only
(email goes to admins for verdicts). Deployment events are sent by the scheduler once per trouble
(scanning/fleet/agents.py) without the broker, which may be what is down.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from accounts.models import Tenant
from s3av.actors import is_final_attempt, tenant_actor
from scanning.models import ChannelKind, NotificationChannel
from scanning.notifications import delivery as notifications

log = logging.getLogger(__name__)

DEPLOYMENT_EVENTS = ("agent.lost", "engine.down", "signatures.stale", "signatures.rejected")
TENANT_EVENTS = ("bucket.protected", "bucket.unprotected", "bucket.discovered")
EVENT_KINDS = DEPLOYMENT_EVENTS + TENANT_EVENTS


def message_for(kind: str, text: str) -> dict[str, Any]:
    return {
        "notificationType": "operationalEvent",
        "resultId": None,
        "bucket": "",
        "key": "",
        "versionId": None,
        "result": kind,
        "virusNames": [],
        "message": text,
        "dateScanned": timezone.now().isoformat(),
        "engine": "",
        "signatureVersion": "",
        "action": "",
        "account": "",
    }


def publish(kind: str, text: str) -> int:
    """Send to every active tenant's enabled channel that asks for ``kind``; returns how many took it."""
    with scopes_disabled():
        channels = list(
            NotificationChannel.objects.filter(
                enabled=True,
                kind__in=[ChannelKind.WEBHOOK, ChannelKind.SNS],
                tenant__status=Tenant.Status.ACTIVE,
            ).select_related("tenant", "account")
        )
    delivered = 0
    for channel in channels:
        if kind not in (channel.results or []):
            continue
        message = message_for(kind, text)
        try:
            with scope(tenant=channel.tenant):
                notifications.send(channel, message)
            delivered += 1
        except notifications.DeliveryFailed:
            pass  # recorded on the channel (last_error) and counted as a notification failure
        except Exception:
            log.exception("operational notification failed", extra={"channel": str(channel.pk)})
    return delivered


def tenant_event(tenant: Tenant, kind: str, text: str) -> None:
    """After the current transaction commits, send ``kind`` to the tenant's channels that ask for it."""
    wanted = [
        str(channel.pk)
        for channel in NotificationChannel.objects.filter(
            tenant=tenant, enabled=True, kind__in=[ChannelKind.WEBHOOK, ChannelKind.SNS]
        )
        if kind in (channel.results or [])
    ]
    if not wanted:
        return
    tenant_id = str(tenant.pk)
    transaction.on_commit(lambda: [deliver_event.send(tenant_id, pk, kind, text) for pk in wanted])


DELIVER_MAX_RETRIES = 8


@tenant_actor(
    queue_name="default",
    max_retries=DELIVER_MAX_RETRIES,
    min_backoff=10_000,
    max_backoff=3_600_000,
    time_limit=120_000,
)
def deliver_event(tenant: Tenant, channel_id: str, kind: str, text: str) -> None:
    """Deliver a tenant's operational event to one channel, retried with backoff like result
    notifications (``notifications.actors.deliver``)."""
    channel = (
        NotificationChannel.objects.select_related("account").filter(tenant=tenant, pk=channel_id).first()
    )
    # Deleted, disabled or refiltered since the event: nothing to send.
    if channel is None or not channel.wants(kind):
        return
    try:
        notifications.send(channel, message_for(kind, text))
    except notifications.DeliveryFailed as exc:
        if exc.permanent or is_final_attempt():
            return  # recorded in the channel's last_error
        raise

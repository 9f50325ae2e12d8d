"""Write operations on notification channels: create, update, delete, send a test message.

Each takes the tenant and the acting identity first and writes the change and its audit event in one
transaction; the audit event records the validated values, with a webhook URL masked.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.db import transaction

from accounts.models import Tenant
from accounts.services import Actor, ServiceError, get_owned, record
from linked_accounts.models import AwsAccount
from s3av import outbound
from scanning.models import ChannelKind, NotificationChannel
from scanning.notifications import delivery as notifications

CHANNEL_FIELDS = ("name", "kind", "target", "account_id", "results", "enabled")


def masked_target(channel: NotificationChannel) -> str:
    """A webhook URL's path and query may carry a credential (Slack, Teams): show scheme and host only."""
    if channel.kind != ChannelKind.WEBHOOK or not channel.target:
        return channel.target
    parts = urlsplit(channel.target)
    return (
        f"{parts.scheme}://{parts.netloc}/…" if parts.path not in {"", "/"} or parts.query else channel.target
    )


def audit_details(channel: NotificationChannel) -> dict[str, Any]:
    return {
        "name": channel.name,
        "kind": channel.kind,
        "target": masked_target(channel),
        "account": str(channel.account_id) if channel.account_id else None,
        "results": channel.results,
        "enabled": channel.enabled,
    }


def _check(tenant: Tenant, changes: dict[str, Any]) -> None:
    unknown = set(changes) - set(CHANNEL_FIELDS)
    if unknown:
        raise ServiceError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    account_id = changes.get("account_id")
    if account_id is not None and not AwsAccount.objects.filter(tenant=tenant, pk=account_id).exists():
        raise ServiceError("No such account.", field="account")


def channel_problems(
    *,
    kind: str | None,
    target: str,
    account: AwsAccount | None,
    results: list[str],
    check_target: bool = True,
) -> dict[str, list[str]]:
    """What is wrong with a channel as it would be (the API's and the portal's one rule set), by field.

    ``account`` is already the tenant's own (or None); ``check_target`` False skips resolving a webhook
    URL that did not change.
    """

    errors: dict[str, list[str]] = {}
    if len(set(results)) != len(results):
        errors["results"] = ["List each verdict once."]
    if kind == ChannelKind.SNS:
        match = notifications.parse_topic_arn(target)
        if match is None:
            errors["target"] = ["Give an SNS topic ARN, e.g. arn:aws:sns:us-east-1:123456789012:scans."]
        if account is None:
            errors["account"] = ["Name the linked account that owns the topic."]
        elif match is not None and match["account"] != account.account_id:
            errors["target"] = [f"The topic is not in the linked account {account.account_id}."]
    elif kind == ChannelKind.WEBHOOK:
        if check_target:
            try:
                outbound.check_url(target)
            except outbound.UnsafeUrl as exc:
                errors["target"] = [str(exc)]
    elif kind == ChannelKind.EMAIL:
        if target:
            errors["target"] = ["Email goes to the tenant's admins; leave the target empty."]
        if set(results) - set(notifications.EMAIL_VERDICTS):
            errors["results"] = [f"Email is sent for {', '.join(notifications.EMAIL_VERDICTS)} only."]
    if kind != ChannelKind.SNS and account is not None:
        errors["account"] = ["Only SNS channels name an account."]
    return errors


@transaction.atomic
def create_channel(tenant: Tenant, actor: Actor, **fields: Any) -> NotificationChannel:
    """Create a channel; a webhook gets a new signing secret (the caller shows it once)."""
    _check(tenant, fields)
    secret = notifications.new_webhook_secret() if fields.get("kind") == ChannelKind.WEBHOOK else ""
    channel = NotificationChannel(tenant=tenant, secret=secret, **fields)
    channel.full_clean()
    channel.save()
    record(tenant, actor, "channel.create", channel, audit_details(channel))
    return channel


@transaction.atomic
def update_channel(
    tenant: Tenant, actor: Actor, channel: NotificationChannel, **changes: Any
) -> NotificationChannel:
    get_owned(NotificationChannel, tenant, channel, noun="channel")
    _check(tenant, changes)
    if "kind" in changes and changes["kind"] != channel.kind:
        raise ServiceError("Create a new channel to change the kind.", field="kind")
    channel = NotificationChannel.objects.select_for_update().get(pk=channel.pk, tenant=tenant)
    for name, value in changes.items():
        setattr(channel, name, value)
    channel.full_clean()
    channel.save()
    record(tenant, actor, "channel.update", channel, audit_details(channel))
    return channel


@transaction.atomic
def delete_channel(tenant: Tenant, actor: Actor, channel: NotificationChannel) -> None:
    get_owned(NotificationChannel, tenant, channel, noun="channel")
    record(tenant, actor, "channel.delete", channel, audit_details(channel))
    channel.delete()


def send_test_message(tenant: Tenant, actor: Actor, channel: NotificationChannel) -> str:
    """Send a test message now; return the delivery error, or "" when it was delivered.

    The send happens outside any transaction (a webhook may take its full timeout)."""
    get_owned(NotificationChannel, tenant, channel, noun="channel")
    error = ""
    try:
        notifications.send(channel, notifications.test_message(channel))
    except notifications.DeliveryFailed as exc:
        error = exc.message
    record(tenant, actor, "channel.test", channel, {"delivered": not error, "error": error})
    return error

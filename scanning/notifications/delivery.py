"""Notifications of scan results: the message, and sending it to an SNS topic, a webhook, or email.

Delivery is at least once: a retried message may reach a receiver twice, so the body carries
``resultId`` for receivers to deduplicate on.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import re
import secrets
import time
from datetime import UTC
from typing import Any

from django.core.mail import send_mail
from django.utils import timezone

from accounts.models import Membership, Role, Tenant
from linked_accounts.aws import AssumeRoleFailed, client_for, error_code
from s3av import outbound
from scanning.models import ChannelKind, NotificationChannel, ScanResult, Verdict

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 10
EMAIL_VERDICTS = (Verdict.INFECTED.value, Verdict.UNSCANNABLE.value, Verdict.ERROR.value)
SNS_TOPIC_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov):sns:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<name>[A-Za-z0-9_-]{1,251}(\.fifo)?)$"
)
# SNS answers these when retrying cannot help: the topic, its policy or the message is wrong.
SNS_PERMANENT_CODES = {
    "NotFound",
    "NotFoundException",
    "AuthorizationError",
    "InvalidParameter",
    "InvalidParameterValue",
    "InvalidSecurity",
    "KMSDisabled",
    "KMSAccessDenied",
    "KMSNotFound",
}


class DeliveryFailed(Exception):
    """A message was not delivered. ``permanent``: retrying cannot help (recorded, not retried)."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


# --- the message -----------------------------------------------------------------------------------


def _iso(when: Any) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def message_for(result: ScanResult) -> dict[str, Any]:
    """The JSON body of every channel kind (AWS's camelCase event style)."""
    bucket = result.bucket
    return {
        "notificationType": "scanResult",
        "resultId": str(result.pk),
        "bucket": result.bucket_name,
        "key": result.key,
        "versionId": result.version_id or None,
        "result": result.verdict,
        "virusNames": list(result.signatures or []),
        "message": result.message,
        "dateScanned": _iso(result.scanned_at),
        "engine": result.engine,
        "signatureVersion": result.signature_version,
        "action": result.action,
        "account": bucket.account.account_id if bucket is not None else "",
    }


def test_message(channel: NotificationChannel) -> dict[str, Any]:
    """What the channel's test sends: shaped like a result, marked ``notificationType: test``."""
    return {
        "notificationType": "test",
        "resultId": None,
        "bucket": "example-bucket",
        "key": "s3av-test/eicar.txt",
        "versionId": None,
        "result": Verdict.INFECTED.value,
        "virusNames": ["Eicar-Test-Signature"],
        "message": f"A test message from s3av for the channel {channel.name!r}.",
        "dateScanned": _iso(timezone.now()),
        "engine": "",
        "signatureVersion": "",
        "action": "none",
        "account": channel.account.account_id if channel.account is not None else "",
    }


# --- choosing channels -----------------------------------------------------------------------------


def channels_for(tenant: Tenant, verdict: str) -> list[NotificationChannel]:
    channels = NotificationChannel.objects.filter(tenant=tenant, enabled=True)
    return [channel for channel in channels if channel.wants(verdict)]


# --- sending ---------------------------------------------------------------------------------------


def send(channel: NotificationChannel, message: dict[str, Any]) -> None:
    """Deliver one message and record the outcome on the channel (``last_delivered_at``/``last_error``).

    Raises DeliveryFailed on failure; the caller retries it unless ``permanent``.
    """
    try:
        if channel.kind == ChannelKind.SNS:
            _send_sns(channel, message)
        elif channel.kind == ChannelKind.WEBHOOK:
            _send_webhook(channel, message)
        elif channel.kind == ChannelKind.EMAIL:
            _send_email(channel, message)
        else:
            raise DeliveryFailed(f"unknown channel kind {channel.kind!r}", permanent=True)
    except DeliveryFailed as exc:
        channel.mark_failed(exc.message)
        log.warning(
            "notification failed",
            extra={"tenant": str(channel.tenant_id), "channel": str(channel.pk), "error": exc.message},
        )
        raise
    channel.mark_delivered()


def parse_topic_arn(arn: str) -> re.Match[str] | None:
    return SNS_TOPIC_ARN.match(arn or "")


def _send_sns(channel: NotificationChannel, message: dict[str, Any]) -> None:
    match = parse_topic_arn(channel.target)
    if match is None or channel.account is None:
        raise DeliveryFailed("The channel names no SNS topic ARN and linked account.", permanent=True)
    attributes = {
        name: {"DataType": "String", "StringValue": str(value)}
        for name, value in (
            ("notificationType", message["notificationType"]),
            ("scanResult", message["result"]),
            ("bucket", message["bucket"]),
            ("account", message["account"]),
        )
        if value  # SNS refuses empty attribute values
    }
    kwargs: dict[str, Any] = {
        "TopicArn": channel.target,
        "Message": json.dumps(message),
        "MessageAttributes": attributes,
    }
    if match["name"].endswith(".fifo"):
        kwargs["MessageGroupId"] = message["bucket"] or "s3av"
        kwargs["MessageDeduplicationId"] = hashlib.sha256(kwargs["Message"].encode()).hexdigest()
    try:
        client_for(channel.account, "sns", match["region"]).publish(**kwargs)
    except AssumeRoleFailed as exc:
        raise DeliveryFailed(exc.message) from exc
    except Exception as exc:
        code = error_code(exc)
        if code in SNS_PERMANENT_CODES:
            raise DeliveryFailed(f"SNS refused the message: {code}: {exc}", permanent=True) from exc
        raise DeliveryFailed(f"SNS publish failed: {code or exc}") from exc


def _admin_emails(tenant_id: Any) -> list[str]:
    return sorted(
        Membership.objects.filter(tenant_id=tenant_id, role=Role.ADMIN, user__is_active=True)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(str(text).split())  # keys may hold newlines; a header may not
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _send_email(channel: NotificationChannel, message: dict[str, Any]) -> None:
    recipients = _admin_emails(channel.tenant_id)
    if not recipients:
        raise DeliveryFailed("The tenant has no active admins to email.", permanent=True)
    where = f"s3://{message['bucket']}/{message['key']}"
    prefix = "[s3av test]" if message["notificationType"] == "test" else "[s3av]"
    subject = _one_line(f"{prefix} {message['result']}: {where}", 200)
    lines = [
        f"Result:     {message['result']}",
        f"Object:     {where}",
        f"Version:    {message['versionId'] or '-'}",
        f"Signatures: {', '.join(message['virusNames']) or '-'}",
        f"Message:    {message['message'] or '-'}",
        f"Action:     {message['action'] or '-'}",
        f"Account:    {message['account'] or '-'}",
        f"Scanned:    {message['dateScanned'] or '-'} by {message['engine'] or '-'} "
        f"({message['signatureVersion'] or '-'})",
    ]
    try:
        send_mail(subject, "\n".join(lines) + "\n", None, recipients)
    except Exception as exc:  # SMTP errors are mostly transient (a relay down, a full queue)
        raise DeliveryFailed(f"Sending email failed: {exc}") from exc


# --- webhooks --------------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def _send_webhook(channel: NotificationChannel, message: dict[str, Any]) -> None:
    try:
        target = outbound.check_url(channel.target)
    except outbound.UnsafeUrl as exc:
        raise DeliveryFailed(f"Refused to call the webhook: {exc}", permanent=True) from exc
    body = json.dumps(message, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "s3av-webhook/1",
        "X-S3av-Timestamp": timestamp,
        "X-S3av-Signature": sign(channel.secret, timestamp, body),
    }
    connection = outbound.connect(target, WEBHOOK_TIMEOUT_SECONDS)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        status = response.status
        response.read(4096)
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryFailed(f"Could not reach the webhook: {exc}") from exc
    finally:
        connection.close()
    if 200 <= status < 300:
        return
    if status >= 500 or status in {408, 429}:
        raise DeliveryFailed(f"The webhook answered HTTP {status}.")
    # Redirects are not followed: the new location would escape the address check.
    raise DeliveryFailed(f"The webhook answered HTTP {status}; not retried.", permanent=True)

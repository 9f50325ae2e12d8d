"""Notification channels: the API, and delivery to SNS (moto's server), a local webhook, and email."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest
from django_scopes import scope

from accounts.models import Membership, Role
from linked_accounts.models import AwsAccount
from s3av import outbound
from scanning.models import NotificationChannel, ScanResult, Verdict
from scanning.notifications import actors as notify_actors
from scanning.notifications import delivery as notifications
from tests import factories
from tests.fixtures.broker import drain, queued
from tests.fixtures.s3server import make_test_client
from tests.fixtures.scanning import EICAR
from tests.fixtures.webhooks import WebhookReceiver

pytestmark = pytest.mark.django_db

ACCOUNT_ID = "123456789012"


@pytest.fixture
def receiver(webhook_receiver: WebhookReceiver) -> WebhookReceiver:
    return webhook_receiver


def _account(tenant: Any, account_id: str = ACCOUNT_ID) -> AwsAccount:
    account, _ = AwsAccount.objects.get_or_create(
        tenant=tenant,
        account_id=account_id,
        defaults={
            "role_arn": f"arn:aws:iam::{account_id}:role/s3av-scanner",
            "status": AwsAccount.Status.CONNECTED,
        },
    )
    return account


def _result(tenant: Any, verdict: str = Verdict.INFECTED, **fields: Any) -> ScanResult:
    from django.utils import timezone

    with scope(tenant=tenant):
        bucket = factories.make_bucket_row(tenant, _account(tenant), f"b-{uuid.uuid4().hex[:10]}")
        values: dict[str, Any] = {
            "key": "uploads/invoice.pdf",
            "version_id": "v1",
            "verdict": verdict,
            "signatures": ["Eicar-Test-Signature"] if verdict == Verdict.INFECTED else [],
            "engine": "ClamAV 1.4.3",
            "signature_version": "27000",
            "action": "tagged",
            "action_status": ScanResult.ActionStatus.DONE,
            "scanned_at": timezone.now(),
        }
        return factories.make_result(tenant, bucket, **{**values, **fields})


def _channel(tenant: Any, **fields: Any) -> NotificationChannel:
    with scope(tenant=tenant):
        return factories.make_channel(tenant, name="c", **fields)


def _deliver(tenant: Any, channel: NotificationChannel, result: ScanResult) -> None:
    notify_actors.deliver.fn(str(tenant.pk), str(channel.pk), str(result.pk))


# --- SNS ---------------------------------------------------------------------------------------------


def test_it_publishes_a_scanned_infected_object_to_sns_with_filterable_attributes(
    tenant, make_linked_bucket, s3_client, s3_endpoint, empty_broker, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    sns = make_test_client(s3_endpoint, "sns")
    sqs = make_test_client(s3_endpoint, "sqs")
    topic_arn = sns.create_topic(Name=f"scans-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"scans-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    with scope(tenant=tenant):
        channel = factories.make_channel(
            tenant, name="topic", kind="sns", target=topic_arn, account=bucket.account
        )
    etag = s3_client.put_object(Bucket=bucket.name, Key="eicar.com", Body=EICAR)["ETag"]

    from scanning.pipeline import services

    with scope(tenant=tenant), django_capture_on_commit_callbacks(execute=True):
        dedupe = services.dedupe_key_for(bucket, "eicar.com", None, etag, force=False)
        result = services.run_scan(
            tenant, bucket, "eicar.com", version_id=None, etag=etag, trigger="event", dedupe_key=dedupe
        )
    assert result.verdict == Verdict.INFECTED
    assert [m.actor_name for m in queued("default")] == ["notify_result"]
    assert drain(("default",)) == 2  # notify_result, then one deliver

    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2)["Messages"]
    envelope = json.loads(messages[0]["Body"])
    body = json.loads(envelope["Message"])
    assert body["notificationType"] == "scanResult"
    assert body["resultId"] == str(result.pk)
    assert body["bucket"] == bucket.name
    assert body["key"] == "eicar.com"
    assert body["versionId"] is None
    assert body["result"] == "Infected"
    assert body["virusNames"] == result.signatures
    assert body["engine"].startswith("ClamAV")
    assert body["signatureVersion"] == result.signature_version
    assert body["dateScanned"].endswith("Z")
    assert body["action"] == "tagged"
    assert body["account"] == ACCOUNT_ID
    assert "message" in body
    attributes = {name: a["Value"] for name, a in envelope["MessageAttributes"].items()}
    assert attributes == {
        "notificationType": "scanResult",
        "scanResult": "Infected",
        "bucket": bucket.name,
        "account": ACCOUNT_ID,
    }
    with scope(tenant=tenant):
        channel.refresh_from_db()
    assert channel.last_delivered_at is not None
    assert channel.last_error == ""


def test_a_missing_topic_is_recorded_and_not_retried(tenant, aws_settings, monkeypatch):
    monkeypatch.setattr(notify_actors, "is_final_attempt", lambda: False)
    result = _result(tenant)
    with scope(tenant=tenant):
        channel = factories.make_channel(
            tenant,
            name="gone",
            kind="sns",
            target=f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:no-such-topic-{uuid.uuid4().hex[:8]}",
            account=_account(tenant),
        )
    _deliver(tenant, channel, result)
    with scope(tenant=tenant):
        channel.refresh_from_db()
    assert "NotFound" in channel.last_error
    assert channel.last_delivered_at is None


# --- webhooks ----------------------------------------------------------------------------------------


def test_it_signs_webhook_requests_with_the_secret_shown_on_create(
    tenant, key_client, receiver, empty_broker
):
    client = key_client(tenant, Role.ADMIN)
    created = client.post(
        "/api/v1/channels/", {"name": "SIEM", "kind": "webhook", "target": receiver.url}, format="json"
    )
    assert created.status_code == 201, created.json()
    secret = created.json()["secret"]
    assert len(secret) >= 32
    assert "secret" not in client.get(f"/api/v1/channels/{created.json()['id']}").json()
    assert all("secret" not in c for c in client.get("/api/v1/channels/").json()["results"])

    result = _result(tenant)
    notify_actors.notify_result.fn(str(tenant.pk), str(result.pk))
    assert drain(("default",)) == 1

    [(headers, body)] = receiver.requests
    timestamp = headers["X-S3av-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-S3av-Signature"], f"sha256={expected}")
    assert headers["Content-Type"] == "application/json"
    message = json.loads(body)
    assert message["resultId"] == str(result.pk)
    assert message["result"] == "Infected"
    assert message["virusNames"] == ["Eicar-Test-Signature"]
    assert message["versionId"] == "v1"


def test_a_5xx_is_retried_and_then_delivered(tenant, receiver, monkeypatch):
    monkeypatch.setattr(notify_actors, "is_final_attempt", lambda: False)
    receiver.statuses = [500, 200]
    channel = _channel(tenant, kind="webhook", target=receiver.url, secret="s3cret")
    result = _result(tenant)
    with pytest.raises(notifications.DeliveryFailed):
        _deliver(tenant, channel, result)  # raising is what makes Dramatiq retry with backoff
    with scope(tenant=tenant):
        channel.refresh_from_db()
    assert "HTTP 500" in channel.last_error
    _deliver(tenant, channel, result)
    with scope(tenant=tenant):
        channel.refresh_from_db()
    assert channel.last_error == ""
    assert channel.last_delivered_at is not None
    assert len(receiver.requests) == 2


def test_the_last_attempt_gives_up_and_keeps_the_error(tenant, receiver, monkeypatch):
    import dramatiq
    from dramatiq.middleware import CurrentMessage

    receiver.statuses = [503]
    last = dramatiq.Message(
        queue_name="default",
        actor_name="deliver",
        args=(),
        kwargs={},
        options={"retries": notify_actors.DELIVER_MAX_RETRIES},
    )
    monkeypatch.setattr(CurrentMessage, "get_current_message", staticmethod(lambda: last))
    channel = _channel(tenant, kind="webhook", target=receiver.url, secret="s3cret")
    _deliver(tenant, channel, _result(tenant))  # returns: no retry after the last one
    with scope(tenant=tenant):
        channel.refresh_from_db()
    assert "HTTP 503" in channel.last_error
    assert len(receiver.requests) == 1


def test_a_4xx_is_recorded_and_not_retried(tenant, receiver, monkeypatch):
    monkeypatch.setattr(notify_actors, "is_final_attempt", lambda: False)
    receiver.statuses = [400]
    channel = _channel(tenant, kind="webhook", target=receiver.url, secret="s3cret")
    _deliver(tenant, channel, _result(tenant))  # returns: nothing for Dramatiq to retry
    with scope(tenant=tenant):
        channel.refresh_from_db()
    assert "HTTP 400" in channel.last_error
    assert channel.last_delivered_at is None
    assert len(receiver.requests) == 1


def test_an_unreachable_webhook_is_retried(tenant, local_webhooks, monkeypatch):
    monkeypatch.setattr(notify_actors, "is_final_attempt", lambda: False)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    channel = _channel(tenant, kind="webhook", target=f"http://127.0.0.1:{port}/", secret="s")
    with pytest.raises(notifications.DeliveryFailed):
        _deliver(tenant, channel, _result(tenant))


def test_the_channel_test_sends_a_test_message(tenant, key_client, receiver):
    channel = _channel(tenant, kind="webhook", target=receiver.url, secret="s")
    response = key_client(tenant, Role.ADMIN).post(f"/api/v1/channels/{channel.pk}/test")
    assert response.status_code == 200
    assert response.json() == {"delivered": True, "error": ""}
    assert json.loads(receiver.requests[0][1])["notificationType"] == "test"


def test_the_channel_test_reports_a_failure(tenant, key_client, receiver):
    receiver.statuses = [404]
    channel = _channel(tenant, kind="webhook", target=receiver.url, secret="s")
    response = key_client(tenant, Role.ADMIN).post(f"/api/v1/channels/{channel.pk}/test")
    assert response.json()["delivered"] is False
    assert "HTTP 404" in response.json()["error"]


# --- SSRF --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "https://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "https://[::ffff:192.168.1.1]/hook",
        "https://[fd00::1]/hook",
        "https://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
        "https://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
        "https://[2002:a9fe:a9fe::1]/hook",  # 6to4 of 169.254.169.254
        "https://[::a9fe:a9fe]/hook",  # IPv4-compatible 169.254.169.254
        "https://localhost/hook",
        "https://127.0.0.1/hook",
        "https://0.0.0.0/hook",
        "ftp://example.com/hook",
        "https://user:pw@example.com/hook",
    ],
)
def test_it_refuses_webhooks_to_internal_addresses(tenant, key_client, url):
    response = key_client(tenant, Role.ADMIN).post(
        "/api/v1/channels/", {"name": "x", "kind": "webhook", "target": url}, format="json"
    )
    assert response.status_code == 400
    assert "target" in response.json()


def test_http_is_refused_for_a_public_host_even_with_local_webhooks_on(local_webhooks):
    with pytest.raises(outbound.UnsafeUrl, match="https"):
        outbound.check_url("http://93.184.215.14/hook")
    with pytest.raises(outbound.UnsafeUrl):
        outbound.check_url("http://10.0.0.1/hook")
    assert outbound.check_url("http://127.0.0.1:8080/x").address == "127.0.0.1"


def test_it_checks_the_address_again_at_send_time(tenant, monkeypatch):
    monkeypatch.setattr(notify_actors, "is_final_attempt", lambda: False)
    # Saved while it resolved publicly (or planted): the send-time lookup refuses it.
    channel = _channel(tenant, kind="webhook", target="http://169.254.169.254/latest/", secret="s")
    _deliver(tenant, channel, _result(tenant))
    with scope(tenant=tenant):
        channel.refresh_from_db()
    assert channel.last_error.startswith("Refused to call the webhook")


# --- email -------------------------------------------------------------------------------------------


def test_it_emails_the_tenants_active_admins(tenant, make_user, mailoutbox):
    make_user("viewer@example.com", tenant=tenant, role=Role.VIEWER)
    make_user("admin2@example.com", tenant=tenant, role=Role.ADMIN)
    make_user("gone@example.com", tenant=tenant, role=Role.ADMIN, is_active=False)
    with scope(tenant=tenant):
        admins = set(
            Membership.objects.filter(tenant=tenant, role=Role.ADMIN, user__is_active=True).values_list(
                "user__email", flat=True
            )
        )
    channel = _channel(tenant, kind="email", results=["Infected", "Unscannable"])
    result = _result(tenant)
    _deliver(tenant, channel, result)
    [mail] = mailoutbox
    assert set(mail.to) == admins
    assert "admin2@example.com" in admins
    assert mail.subject == f"[s3av] Infected: s3://{result.bucket_name}/uploads/invoice.pdf"
    assert "Eicar-Test-Signature" in mail.body


# --- filters and the hook ----------------------------------------------------------------------------


def test_a_clean_result_is_not_sent_to_an_infected_only_channel(
    tenant, receiver, empty_broker, django_capture_on_commit_callbacks
):
    _channel(tenant, kind="webhook", target=receiver.url, secret="s")
    clean = _result(tenant, Verdict.CLEAN)
    with scope(tenant=tenant), django_capture_on_commit_callbacks() as callbacks:
        notify_actors.result_recorded(tenant, clean)
    assert callbacks == []
    notify_actors.notify_result.fn(str(tenant.pk), str(clean.pk))
    assert drain(("default",)) == 0
    assert receiver.requests == []


def test_only_matching_enabled_channels_get_the_result(
    tenant, receiver, empty_broker, django_capture_on_commit_callbacks
):
    wanted = _channel(tenant, kind="webhook", target=receiver.url, secret="s", results=["Clean", "Infected"])
    _channel(tenant, kind="webhook", target=receiver.url, secret="s", enabled=False)
    _channel(tenant, kind="webhook", target=receiver.url, secret="s", results=["Error"])
    result = _result(tenant)
    with scope(tenant=tenant), django_capture_on_commit_callbacks(execute=True) as callbacks:
        notify_actors.result_recorded(tenant, result)
    assert len(callbacks) == 1
    assert drain(("default",)) == 2
    assert len(receiver.requests) == 1
    with scope(tenant=tenant):
        wanted.refresh_from_db()
    assert wanted.last_delivered_at is not None


def test_a_channel_added_or_disabled_applies_to_the_next_result(
    tenant, receiver, django_capture_on_commit_callbacks
):
    # The verdicts channels want are kept per process; a change made here must not wait for them.
    with scope(tenant=tenant), django_capture_on_commit_callbacks() as callbacks:
        notify_actors.result_recorded(tenant, _result(tenant))
    assert callbacks == []
    channel = _channel(tenant, kind="webhook", target=receiver.url, secret="s")
    with scope(tenant=tenant), django_capture_on_commit_callbacks() as callbacks:
        notify_actors.result_recorded(tenant, _result(tenant))
    assert len(callbacks) == 1
    with scope(tenant=tenant):
        channel.enabled = False
        channel.save(update_fields=["enabled"])
    with scope(tenant=tenant), django_capture_on_commit_callbacks() as callbacks:
        notify_actors.result_recorded(tenant, _result(tenant))
    assert callbacks == []


def test_a_result_with_pending_actions_is_not_sent_yet(tenant, receiver, django_capture_on_commit_callbacks):
    _channel(tenant, kind="webhook", target=receiver.url, secret="s")
    result = _result(tenant, action_status=ScanResult.ActionStatus.PENDING)
    with scope(tenant=tenant), django_capture_on_commit_callbacks() as callbacks:
        notify_actors.result_recorded(tenant, result)
    assert callbacks == []


# --- the API -----------------------------------------------------------------------------------------


def test_it_creates_an_sns_channel_in_a_linked_account(tenant, key_client):
    with scope(tenant=tenant):
        account = _account(tenant)
    response = key_client(tenant, Role.ADMIN).post(
        "/api/v1/channels/",
        {
            "name": "security topic",
            "kind": "sns",
            "target": f"arn:aws:sns:eu-west-1:{ACCOUNT_ID}:scan-results",
            "account": str(account.pk),
            "results": ["Infected", "Error"],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["account"] == str(account.pk)
    assert data["results"] == ["Infected", "Error"]
    assert data["secret"] == ""
    assert data["enabled"] is True


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "sns", "target": "arn:aws:sns:us-east-1:123:bad"}, "target"),
        ({"kind": "sns", "target": f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:t"}, "account"),
        ({"kind": "sns", "target": "arn:aws:sns:us-east-1:999999999999:t", "with_account": True}, "target"),
        ({"kind": "email", "target": "someone@example.com"}, "target"),
        ({"kind": "email", "results": ["Clean"]}, "results"),
        ({"kind": "email", "results": []}, "results"),
        ({"kind": "email", "results": ["Infected", "Infected"]}, "results"),
        ({"kind": "webhook", "target": "https://hooks.example.com/x", "with_account": True}, "account"),
        ({"kind": "pager"}, "kind"),
    ],
)
def test_it_answers_field_errors(tenant, key_client, payload, field):
    payload = {"name": "x", **payload}
    if payload.pop("with_account", False):
        with scope(tenant=tenant):
            payload["account"] = str(_account(tenant).pk)
    response = key_client(tenant, Role.ADMIN).post("/api/v1/channels/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_another_tenants_account_is_no_such_account(tenant, outsider_tenant, key_client):
    with scope(tenant=outsider_tenant):
        theirs = _account(outsider_tenant)
    response = key_client(tenant, Role.ADMIN).post(
        "/api/v1/channels/",
        {
            "name": "x",
            "kind": "sns",
            "target": f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:t",
            "account": str(theirs.pk),
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["account"] == ["No such account."]


def test_admins_update_and_delete_channels_with_audit_events(tenant, key_client):
    from accounts.models import AuditEvent

    channel = _channel(tenant, kind="email")
    client = key_client(tenant, Role.ADMIN)
    response = client.patch(
        f"/api/v1/channels/{channel.pk}", {"results": ["Infected", "Error"], "enabled": False}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["results"] == ["Infected", "Error"]
    assert client.patch(f"/api/v1/channels/{channel.pk}", {"kind": "sns"}, format="json").status_code == 400
    assert client.delete(f"/api/v1/channels/{channel.pk}").status_code == 204
    with scope(tenant=tenant):
        actions = list(
            AuditEvent.objects.filter(tenant=tenant, target_id=str(channel.pk)).values_list(
                "action", flat=True
            )
        )
        assert not NotificationChannel.objects.filter(pk=channel.pk).exists()
    assert sorted(actions) == ["channel.delete", "channel.update"]


def test_an_outsider_gets_404(tenant, outsider_tenant, key_client):
    channel = _channel(tenant, kind="email")
    outsider = key_client(outsider_tenant, Role.ADMIN)
    assert outsider.get(f"/api/v1/channels/{channel.pk}").status_code == 404
    assert (
        outsider.patch(f"/api/v1/channels/{channel.pk}", {"enabled": False}, format="json").status_code == 404
    )
    assert outsider.post(f"/api/v1/channels/{channel.pk}/test").status_code == 404
    assert outsider.delete(f"/api/v1/channels/{channel.pk}").status_code == 404
    assert outsider.get("/api/v1/channels/").json()["results"] == []


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_a_viewer_or_operator_reads_but_gets_403_on_writes(tenant, key_client, role):
    channel = _channel(tenant, kind="email")
    client = key_client(tenant, role)
    assert client.get(f"/api/v1/channels/{channel.pk}").status_code == 200
    assert client.post("/api/v1/channels/", {"name": "x", "kind": "email"}, format="json").status_code == 403
    assert (
        client.patch(f"/api/v1/channels/{channel.pk}", {"enabled": False}, format="json").status_code == 403
    )
    assert client.post(f"/api/v1/channels/{channel.pk}/test").status_code == 403
    assert client.delete(f"/api/v1/channels/{channel.pk}").status_code == 403


def test_the_list_takes_a_constant_number_of_queries(tenant, key_client, django_assert_max_num_queries):
    with scope(tenant=tenant):
        account = _account(tenant)
    for n in range(5):
        _channel(tenant, kind="sns", target=f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:t{n}", account=account)
        _channel(tenant, kind="email")
    client = key_client(tenant, Role.VIEWER)
    with django_assert_max_num_queries(8):
        response = client.get("/api/v1/channels/")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 10


def test_staff_see_channels_in_the_admin_without_the_secret(client, tenant, make_user):
    staff = make_user(
        "support@example.com", password="a-long-staff-password", is_staff=True, is_superuser=True
    )
    client.force_login(staff)
    channel = _channel(tenant, kind="webhook", target="https://hooks.example.com/x", secret="do-not-show-me")
    listing = client.get("/admin/scanning/notificationchannel/")
    detail = client.get(f"/admin/scanning/notificationchannel/{channel.pk}/change/")
    assert listing.status_code == 200
    assert detail.status_code == 200
    assert b"hooks.example.com" in detail.content
    assert b"do-not-show-me" not in listing.content + detail.content


def test_viewers_and_the_audit_log_see_only_the_webhook_host(tenant, key_client, local_webhooks):
    admin = key_client(tenant, Role.ADMIN)
    url = "http://127.0.0.1:9/services/T000/B000/secret-token"
    created = admin.post(
        "/api/v1/channels/", {"name": "chat", "kind": "webhook", "target": url}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert admin.get(f"/api/v1/channels/{created.json()['id']}").json()["target"] == url
    shown = key_client(tenant, Role.VIEWER).get(f"/api/v1/channels/{created.json()['id']}").json()
    assert shown["target"] == "http://127.0.0.1:9/…"
    events = admin.get("/api/v1/audit-events/").json()["results"]
    assert "secret-token" not in json.dumps(events)

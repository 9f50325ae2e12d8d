"""The Notification channels pages (Settings): list with the last delivery, create (a webhook's secret
shown once), edit, delete, send a test; the API's rules answered next to their fields; roles,
outsiders, query counts."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django_scopes import scope

from accounts.models import AuditEvent, Role
from scanning.models import NotificationChannel
from tests import factories
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def _body(response) -> str:
    return response.content.decode()


def _channel(tenant, **fields):
    with scope(tenant=tenant):
        fields.setdefault("kind", "email")
        fields.setdefault("name", "Email admins")
        return factories.make_channel(tenant, **fields)


def test_an_admin_adds_a_webhook_sees_its_secret_once_and_sends_a_test(
    tenant, session_client, webhook_receiver
):
    client = session_client(tenant, Role.ADMIN)
    response = client.post(
        "/settings/channels/new",
        {
            "name": "SecOps hook",
            "kind": "webhook",
            "target": webhook_receiver.url,
            "results": ["Infected", "Error", "bucket.protected"],
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    with scope(tenant=tenant):
        channel = NotificationChannel.objects.get(tenant=tenant)
        event = AuditEvent.objects.get(tenant=tenant, action="channel.create")
    assert channel.results == ["Infected", "Error", "bucket.protected"]
    assert channel.secret and channel.secret in _body(response)
    assert response["Cache-Control"] == "no-store"
    assert channel.secret not in json.dumps(event.details)
    assert channel.secret not in _body(client.get(f"/settings/channels/{channel.pk}/"))  # only once

    tested = client.post(f"/settings/channels/{channel.pk}/test", follow=True)
    assert "A test message was delivered to &#x27;SecOps hook&#x27;." in _body(tested)
    headers, body = webhook_receiver.requests[-1]
    assert json.loads(body)["notificationType"] == "test"
    timestamp = headers["X-S3av-Timestamp"]
    expected = hmac.new(channel.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert expected in headers["X-S3av-Signature"]
    assert "Delivered" in _body(tested)  # the last delivery status


def test_a_failed_test_says_why_and_the_list_shows_it(tenant, session_client, webhook_receiver):
    webhook_receiver.status = 500
    channel = _channel(
        tenant, kind="webhook", name="Flaky", target=webhook_receiver.url, results=["Infected"]
    )
    client = session_client(tenant, Role.ADMIN)
    response = client.post(f"/settings/channels/{channel.pk}/test", follow=True)
    page = _body(response)
    assert "The test to &#x27;Flaky&#x27; was not delivered:" in page
    assert "Failed" in page
    channel.refresh_from_db()
    assert channel.last_error


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"kind": "webhook", "target": "http://10.1.2.3/hook"}, "target", "private, loopback"),
        ({"kind": "webhook", "target": "ftp://example.com/x"}, "target", "Use an https:// URL."),
        (
            {"kind": "webhook", "target": "https://user:pw@example.com/x"},
            "target",
            "Put no credentials in the URL",
        ),
        ({"kind": "sns", "target": "not-an-arn"}, "target", "Give an SNS topic ARN"),
        (
            {"kind": "sns", "target": "arn:aws:sns:us-east-1:123456789012:scans"},
            "account",
            "Name the linked account",
        ),
        ({"kind": "email", "target": "me@example.com"}, "target", "leave the target empty"),
        (
            {"kind": "email", "results": ["Clean"]},
            "results",
            "Email is sent for Infected, Unscannable, Error only.",
        ),
        ({"kind": "email", "results": []}, "results", "Choose at least one"),
        ({"kind": "pigeon"}, "kind", "Select a valid choice"),
        ({"name": ""}, "name", "This field is required."),
    ],
)
def test_a_bad_channel_is_answered_next_to_the_field(tenant, session_client, fields, field, message):
    data = {"name": "x", "kind": "email", "target": "", "results": ["Infected"], "enabled": "on", **fields}
    response = session_client(tenant, Role.ADMIN).post("/settings/channels/new", data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert any(message in e for e in errors.get(field, [])), errors
    with scope(tenant=tenant):
        assert not NotificationChannel.objects.exists()


def test_an_sns_channel_names_a_topic_in_its_linked_account(tenant, session_client):
    with scope(tenant=tenant):
        account = make_account(tenant, account_id="123456789012")
    client = session_client(tenant, Role.ADMIN)
    data = {
        "name": "Topic",
        "kind": "sns",
        "results": ["Infected"],
        "enabled": "on",
        "account": str(account.pk),
    }
    wrong = client.post(
        "/settings/channels/new", {**data, "target": "arn:aws:sns:us-east-1:999999999999:scans"}
    )
    assert "The topic is not in the linked account 123456789012." in wrong.context["form"].errors["target"]
    ok = client.post("/settings/channels/new", {**data, "target": "arn:aws:sns:us-east-1:123456789012:scans"})
    assert ok.status_code == 302
    with scope(tenant=tenant):
        assert NotificationChannel.objects.get(tenant=tenant).account_id == account.pk


def test_another_tenants_account_cannot_own_the_topic(tenant, outsider_tenant, session_client):
    with scope(tenant=outsider_tenant):
        theirs = make_account(outsider_tenant, account_id="123456789012", name="their account")
    response = session_client(tenant, Role.ADMIN).post(
        "/settings/channels/new",
        {
            "name": "T",
            "kind": "sns",
            "target": "arn:aws:sns:us-east-1:123456789012:t",
            "results": ["Infected"],
            "account": str(theirs.pk),
        },
    )
    assert response.status_code == 200 and response.context["form"].errors["account"]
    assert "their account" not in _body(response)


def test_an_admin_edits_and_deletes_a_channel(tenant, session_client):
    channel = _channel(tenant, results=["Infected"])
    client = session_client(tenant, Role.ADMIN)
    response = client.post(
        f"/settings/channels/{channel.pk}/",
        {"name": "Renamed", "target": "", "results": ["Infected", "Unscannable"], "kind": "webhook"},
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (
        channel.name == "Renamed" and channel.results == ["Infected", "Unscannable"] and not channel.enabled
    )
    assert channel.kind == "email"  # the kind of a channel never changes
    confirm = _body(client.get(f"/settings/channels/{channel.pk}/delete"))
    assert "Delete channel Renamed?" in confirm
    assert client.post(f"/settings/channels/{channel.pk}/delete").status_code == 302
    with scope(tenant=tenant):
        assert not NotificationChannel.objects.filter(pk=channel.pk).exists()


def test_a_viewer_sees_masked_targets_and_no_buttons(tenant, session_client):
    _channel(
        tenant, kind="webhook", name="Slack", target="https://hooks.example.com/services/T000/B000/secret"
    )
    main = _body(session_client(tenant, Role.VIEWER).get("/settings/channels/")).split("<main", 1)[1]
    assert "https://hooks.example.com/…" in main and "secret" not in main
    assert "<form" not in main and "New channel" not in main and "Send a test" not in main


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_only_an_admin_writes_or_tests_channels(tenant, session_client, role):
    channel = _channel(tenant)
    client = session_client(tenant, role)
    data = {"name": "x", "kind": "email", "results": ["Infected"]}
    assert client.post("/settings/channels/new", data).status_code == 403
    assert client.post(f"/settings/channels/{channel.pk}/", data).status_code == 403
    assert client.post(f"/settings/channels/{channel.pk}/test").status_code == 403
    assert client.post(f"/settings/channels/{channel.pk}/delete").status_code == 403
    channel.refresh_from_db()
    assert channel.name == "Email admins" and channel.last_delivered_at is None


@pytest.mark.parametrize(
    ("method", "path"), [("get", ""), ("post", ""), ("post", "test"), ("get", "delete"), ("post", "delete")]
)
def test_another_tenants_channel_is_not_found(tenant, outsider_tenant, session_client, method, path):
    theirs = _channel(outsider_tenant, name="Their channel")
    response = getattr(session_client(tenant, Role.ADMIN), method)(
        f"/settings/channels/{theirs.pk}/{path}", {"name": "x", "results": ["Infected"]}
    )
    assert response.status_code == 404
    assert "Their channel" not in _body(response)
    theirs.refresh_from_db()
    assert theirs.name == "Their channel" and theirs.last_delivered_at is None


def test_the_list_costs_the_same_queries_for_one_channel_or_many(tenant, session_client, queries_of):
    client = session_client(tenant, Role.ADMIN)
    with scope(tenant=tenant):
        account = make_account(tenant, account_id="123456789012")
    _channel(tenant, kind="sns", target="arn:aws:sns:us-east-1:123456789012:t", account=account)
    client.get("/settings/channels/")
    one = queries_of(client, "/settings/channels/")
    for n in range(20):
        _channel(
            tenant,
            name=f"c{n}",
            kind="sns",
            target=f"arn:aws:sns:us-east-1:123456789012:t{n}",
            account=account,
        )
    assert queries_of(client, "/settings/channels/") == one

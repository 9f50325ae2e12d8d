"""A tenant's operational events: protection changes and newly discovered buckets reach the channels
whose filter names them, and only those."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django_scopes import scope

from accounts.services import Actor
from scanning.buckets import discovery, protection
from scanning.models import ChannelKind
from scanning.notifications import services as channels
from tests.factories import make_bucket_row
from tests.fixtures.broker import drain
from tests.fixtures.webhooks import WebhookReceiver as Receiver

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")


@pytest.fixture
def receiver(webhook_receiver: Receiver) -> Receiver:
    return webhook_receiver


def _channel(tenant: Any, receiver: Receiver, results: list[str]) -> Any:
    with scope(tenant=tenant):
        return channels.create_channel(
            tenant,
            ACTOR,
            name=f"c{len(results)}",
            kind=ChannelKind.WEBHOOK,
            target=receiver.url,
            results=results,
        )


def _events(receiver: Receiver) -> list[tuple[str, str]]:
    return [(body["result"], body["message"]) for body in (json.loads(raw) for _, raw in receiver.requests)]


def test_it_notifies_protection_changes(
    tenant: Any,
    moto_account: Any,
    make_bucket: Any,
    receiver: Receiver,
    empty_broker: Any,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    _channel(tenant, receiver, ["bucket.protected", "bucket.unprotected"])
    _channel(tenant, receiver, ["Infected"])
    name = make_bucket()
    with scope(tenant=tenant), django_capture_on_commit_callbacks(execute=True):
        bucket = make_bucket_row(tenant, moto_account, name)
        protection.protect_bucket(tenant, ACTOR, bucket, scan_existing=False)
        protection.unprotect_bucket(tenant, ACTOR, bucket)
    drain(("default",))
    assert _events(receiver) == [
        ("bucket.protected", f"s3://{name} is now protected"),
        ("bucket.unprotected", f"s3://{name} is no longer protected"),
    ]


def test_it_notifies_newly_discovered_buckets_once(
    tenant: Any,
    outsider_tenant: Any,
    moto_account: Any,
    make_bucket: Any,
    receiver: Receiver,
    empty_broker: Any,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    _channel(tenant, receiver, ["bucket.discovered"])
    _channel(outsider_tenant, receiver, ["bucket.discovered"])
    name = make_bucket()
    with scope(tenant=tenant), django_capture_on_commit_callbacks(execute=True):
        discovery.discover_buckets(tenant, ACTOR, moto_account)
        discovery.discover_buckets(tenant, ACTOR, moto_account)
    drain(("default",))
    events = _events(receiver)
    assert len(events) == 1  # the second discovery found nothing new; the other tenant heard nothing
    assert events[0][0] == "bucket.discovered" and name in events[0][1]

"""Object history: every verdict of one key and its versions, and the audit events about them."""

from __future__ import annotations

import html
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scope

from accounts.models import Role
from accounts.services import Actor, record

pytestmark = pytest.mark.django_db


def _url(bucket, key):
    from urllib.parse import urlencode

    return "/objects/history?" + urlencode({"bucket": str(bucket.pk), "key": key})


def test_it_shows_every_verdict_of_the_key_and_its_versions_with_engine_and_action(
    tenant, session_client, make_db_bucket, make_result
):
    bucket = make_db_bucket(tenant, versioning="Enabled")
    now = timezone.now()
    first = make_result(
        tenant, bucket, "inbox/a b+c.exe", "Clean", version_id="v-one", signature_version="27000",
        scanned_at=now - timedelta(days=3), signatures=[],
    )  # fmt: skip
    second = make_result(
        tenant, bucket, "inbox/a b+c.exe", "Infected", version_id="v-two", signature_version="27810",
        action="tagged+quarantined", scanned_at=now - timedelta(hours=1),
    )  # fmt: skip
    make_result(tenant, bucket, "inbox/other.exe", "Infected", version_id="v-other")
    make_result(tenant, make_db_bucket(tenant), "inbox/a b+c.exe", "Infected", version_id="v-elsewhere")
    body = html.unescape(
        session_client(tenant, Role.VIEWER).get(_url(bucket, "inbox/a b+c.exe")).content.decode()
    )
    assert "<h1>Object history</h1>" in body
    assert "v-one" in body and "v-two" in body
    assert "v-other" not in body and "v-elsewhere" not in body
    assert "27000" in body and "27810" in body and "ClamAV 1.4.3" in body
    assert "tagged, moved to quarantine" in body
    assert body.index("v-two") < body.index("v-one")
    assert f"/findings/{first.pk}/" in body and f"/findings/{second.pk}/" in body


def test_it_shows_the_audit_events_that_touched_the_key(
    tenant, session_client, make_db_bucket, make_result, make_user
):
    bucket = make_db_bucket(tenant)
    finding = make_result(tenant, bucket, "x.exe")
    unrelated = make_result(tenant, bucket, "y.exe")
    person = make_user("triager@example.com", tenant=tenant, role=Role.OPERATOR)
    with scope(tenant=tenant):
        record(tenant, Actor(user=person), "result.delete_object", finding, {"key": "x.exe"})
        record(tenant, Actor(user=person), "scan.request", bucket, {"key": "x.exe", "version_id": None})
        record(tenant, Actor(user=person), "scan.request", bucket, {"key": "y.exe", "version_id": None})
        record(tenant, Actor(user=person), "result.release", unrelated, {})
    body = session_client(tenant, Role.VIEWER).get(_url(bucket, "x.exe")).content.decode()
    assert "result.delete_object" in body and "scan.request" in body
    assert "result.release" not in body
    assert body.count("<code>scan.request</code>") == 1
    assert "triager@example.com" in body


def test_another_tenants_bucket_is_404_and_bad_parameters_a_message(
    tenant, outsider_tenant, session_client, make_db_bucket, make_result
):
    theirs = make_db_bucket(outsider_tenant)
    make_result(outsider_tenant, theirs, "secret.exe")
    client = session_client(tenant, Role.VIEWER)
    assert client.get(_url(theirs, "secret.exe")).status_code == 404
    assert client.get(f"/objects/history?bucket={uuid.uuid4()}&key=x").status_code == 404
    for query in ("", "?bucket=nope&key=x", f"?bucket={theirs.pk}", f"?bucket={theirs.pk}&key=a%00b"):
        response = client.get(f"/objects/history{query}")
        assert response.status_code == 400, query
        assert "Name " in response.content.decode()
    mine = make_db_bucket(tenant)
    damaged = client.get(_url(mine, "k") + "&cursor=zzz")
    assert damaged.status_code == 200 and "This page link is damaged" in damaged.content.decode()


def test_a_viewer_sees_the_history_and_a_member_without_role_does_not(
    tenant, session_client, make_db_bucket, make_result
):
    bucket = make_db_bucket(tenant)
    make_result(tenant, bucket, "x.exe")
    assert session_client(tenant, Role.VIEWER).get(_url(bucket, "x.exe")).status_code == 200
    assert session_client(tenant, Role.NONE).get(_url(bucket, "x.exe")).status_code == 403
    page = session_client(tenant, Role.VIEWER).get(_url(bucket, "x.exe")).content.decode()
    assert "/delete" not in page and '<form method="post" action="/findings' not in page


def test_the_history_costs_the_same_queries_for_one_verdict_and_for_many(
    tenant, session_client, make_db_bucket, make_result
):
    bucket = make_db_bucket(tenant, versioning="Enabled")
    make_result(tenant, bucket, "hot.exe", version_id="v0")
    client = session_client(tenant, Role.VIEWER)
    with CaptureQueriesContext(connection) as one:
        client.get(_url(bucket, "hot.exe"))
    for n in range(1, 80):
        make_result(
            tenant, bucket, "hot.exe", version_id=f"v{n}", scanned_at=timezone.now() - timedelta(minutes=n)
        )
    with CaptureQueriesContext(connection) as many:
        body = client.get(_url(bucket, "hot.exe")).content.decode()
    assert len(many) == len(one) <= 10
    assert 'rel="next">Older</a>' in body

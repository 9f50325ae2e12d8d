"""Usage: objects and bytes scanned per month, from every kind of scan."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django_scopes import scope

from accounts.models import Role
from scanning.models import UsageMonth
from scanning.pipeline import services
from tests.fixtures.scanning import EICAR

pytestmark = pytest.mark.django_db


def test_it_adds_up_per_month(tenant):
    with scope(tenant=tenant):
        UsageMonth.add(tenant, 1, 100, when=datetime(2026, 1, 31, 23, 59, tzinfo=UTC))
        UsageMonth.add(tenant, 2, 50, when=datetime(2026, 1, 1, tzinfo=UTC))
        UsageMonth.add(tenant, 1, 7, when=datetime(2026, 2, 1, tzinfo=UTC))
        rows = {f"{m.month:%Y-%m}": (m.objects_scanned, m.bytes_scanned) for m in UsageMonth.objects.all()}
    assert rows == {"2026-01": (3, 150), "2026-02": (1, 7)}


def test_the_scan_api_and_bucket_scans_count(tenant, make_linked_bucket, key_client, s3_client, aws_settings):
    client = key_client(tenant, Role.OPERATOR)
    assert (
        client.post("/api/v1/scan", b"x" * 1000, content_type="application/octet-stream").status_code == 200
    )
    bucket = make_linked_bucket(tenant)
    etag = s3_client.put_object(Bucket=bucket.name, Key="e.com", Body=EICAR)["ETag"]
    with scope(tenant=tenant):
        dedupe = services.dedupe_key_for(bucket, "e.com", None, etag, False)
        services.run_scan(
            tenant, bucket, "e.com", version_id=None, etag=etag, trigger="event", dedupe_key=dedupe
        )
        # The same version again: folded into the first verdict, not counted twice.
        services.run_scan(
            tenant, bucket, "e.com", version_id=None, etag=etag, trigger="event", dedupe_key=dedupe
        )
    usage = key_client(tenant, Role.VIEWER).get("/api/v1/usage")
    assert usage.status_code == 200
    [month] = usage.json()["months"]
    assert (month["objects"], month["bytes"]) == (2, 1000 + len(EICAR))
    assert month["month"] == datetime.now(UTC).strftime("%Y-%m")


def test_usage_is_per_tenant_and_needs_credentials(tenant, outsider_tenant, key_client, client):
    with scope(tenant=tenant):
        UsageMonth.add(tenant, 5, 500)
    assert key_client(outsider_tenant, Role.VIEWER).get("/api/v1/usage").json()["months"] == []
    assert client.get("/api/v1/usage").status_code == 401


def test_the_usage_report_is_one_cheap_query(tenant, key_client, django_assert_max_num_queries):
    with scope(tenant=tenant):
        for month in range(1, 13):
            UsageMonth.add(tenant, month, month * 10, when=datetime(2025, month, 5, tzinfo=UTC))
    client = key_client(tenant, Role.VIEWER)
    client.get("/api/v1/usage")
    with django_assert_max_num_queries(4):
        response = client.get("/api/v1/usage")
    assert len(response.json()["months"]) == 12

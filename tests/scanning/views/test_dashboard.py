"""The dashboard: scanning over time, open findings, buckets, running scans, fleet health, usage."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scope

from accounts.models import Role
from scanning.models import Agent, ScanJob, SignatureUpdate, UsageMonth
from tests import factories

pytestmark = pytest.mark.django_db


def _page(client):
    response = client.get("/")
    assert response.status_code == 200
    return html.unescape(response.content.decode()).replace("\xa0", " ")


def test_it_charts_the_last_day_and_month_from_the_tenants_results_only(
    tenant, outsider_tenant, session_client, make_db_bucket, make_result
):
    bucket = make_db_bucket(tenant)
    now = timezone.now()
    make_result(tenant, bucket, "a.exe", "Infected", scanned_at=now - timedelta(hours=2), size=1000)
    make_result(tenant, bucket, "b.txt", "Clean", scanned_at=now - timedelta(hours=2), size=3000)
    make_result(tenant, bucket, "c.txt", "Clean", scanned_at=now - timedelta(days=3), size=500)
    make_result(tenant, bucket, "old.txt", "Clean", scanned_at=now - timedelta(days=45), size=9)
    make_result(outsider_tenant, make_db_bucket(outsider_tenant), "x", "Infected", scanned_at=now, size=7)
    body = _page(session_client(tenant, Role.VIEWER))
    assert "<h1>Dashboard</h1>" in body
    day, month = body.split('id="chart-day-title"')[1].split('id="chart-month-title"')
    assert "2 objects (3.9 KB) scanned, 1 Clean, 1 Infected." in day
    assert "3 objects (4.4 KB) scanned, 2 Clean, 1 Infected." in month
    slot = timezone.localtime(now - timedelta(hours=2)).strftime("%H:00")
    assert f"<title>{slot}: 2 objects (1 Clean, 1 Infected)</title>" in day
    assert len(re.findall(r"<g><title>", day.split("Bytes scanned")[0])) == 24
    assert len(re.findall(r"<g><title>", month.split("Bytes scanned")[0])) == 30
    assert 'style="' not in body  # the CSP refuses inline style


def test_the_hours_and_days_follow_the_readers_zone(
    tenant, session_client, make_db_bucket, make_result, settings
):
    bucket = make_db_bucket(tenant)
    make_result(tenant, bucket, "late.exe", scanned_at=timezone.now() - timedelta(minutes=1))
    client = session_client(tenant, Role.VIEWER)
    client.cookies["s3av_tz"] = "Asia/Kolkata"  # UTC+05:30: hours start at :30 UTC
    body = _page(client)
    local = timezone.now().astimezone(__import__("zoneinfo").ZoneInfo("Asia/Kolkata"))
    assert f"<title>{local:%H}:00: 1 object (1 Infected)</title>" in body
    assert "in Asia/Kolkata" in body


def test_it_counts_open_findings_buckets_running_scans_and_links_them(
    tenant, session_client, make_db_bucket, make_result
):
    from scanning.models import Resolution

    protected = make_db_bucket(tenant, protected=True)
    make_db_bucket(tenant)
    make_db_bucket(tenant, missing_since=timezone.now())
    make_result(tenant, protected, "a.exe")
    make_result(tenant, protected, "b.iso", "Unscannable")
    done = make_result(tenant, protected, "c.exe")
    with scope(tenant=tenant):
        done.resolve(Resolution.DELETED, "x")
        factories.make_job(tenant, protected, prefix="big/", status="scanning", listed=10, scanned=4)
        factories.make_job(tenant, protected, prefix="old/", status="done")
    body = _page(session_client(tenant, Role.VIEWER))
    assert re.search(r'href="/findings/\?state=open">\s*<span class="stat__value">2</span>', body)
    assert '1 <small class="muted">of 2</small>' in body and "1 missing from the account" in body
    assert re.search(
        r'<span class="stat__value">1</span>\s*<span class="stat__label">bucket scan running', body
    )
    assert f"s3://{protected.name}/big/" in body and "4 of 10 listed scanned" in body


def test_fleet_health_is_counts_only_and_usage_is_shown_against_the_limit(
    tenant, session_client, make_db_bucket, settings
):
    now = timezone.now()
    Agent.objects.create(host="worker-a.internal", pid=11, signature_version="27810", signature_age=3600)
    Agent.objects.create(host="worker-b.internal", pid=12, signature_version="27810", engine_ok=False,
                         last_error="clamd: connection refused by /run/clamd.sock")  # fmt: skip
    Agent.objects.create(host="worker-c.internal", pid=13, last_seen_at=now - timedelta(hours=2))
    SignatureUpdate.objects.create(status="updated", started_at=now - timedelta(hours=1))
    tenant.monthly_scan_bytes_limit = 1000
    tenant.save()
    with scope(tenant=tenant):
        UsageMonth.add(tenant, objects=3, size=250)
    body = _page(session_client(tenant, Role.VIEWER))
    assert "2 workers scanning, 1 not heard from lately, 1 whose engine does not answer." in body
    assert "version 27810" in body and "at most 1 h old" in body
    assert "worker-a" not in body and "connection refused" not in body
    assert 'value="25"' in body and "25% of the 1000 bytes monthly limit" in body


def test_a_fleet_without_workers_says_so(tenant, session_client):
    body = _page(session_client(tenant, Role.VIEWER))
    assert "No worker is running" in body
    assert "No monthly limit set." in body


def test_the_dashboard_costs_the_same_queries_for_one_result_and_for_many(
    tenant, session_client, make_db_bucket, make_result, many_results
):
    bucket = make_db_bucket(tenant)
    make_result(tenant, bucket)
    client = session_client(tenant, Role.VIEWER)
    with CaptureQueriesContext(connection) as one:
        _page(client)
    many_results(tenant, bucket, 300, verdict="Clean")
    many_results(tenant, bucket, 50)
    for n in range(8):
        make_db_bucket(tenant, protected=bool(n % 2))
    with scope(tenant=tenant):
        for n in range(7):
            factories.make_job(tenant, bucket, prefix=f"p{n}/", status="scanning")
    for n in range(5):
        Agent.objects.create(host=f"h{n}", pid=n)
    with CaptureQueriesContext(connection) as many:
        body = _page(client)
    assert len(many) <= len(one) + 1  # the count of running scans when more than five run
    assert len(many) <= 16
    assert "All 7 running scans" in body


def test_without_a_role_the_home_page_says_who_grants_one(tenant, session_client, client):
    body = session_client(tenant, Role.NONE).get("/").content.decode()
    assert "Dashboard" not in body.split("<main")[1]
    assert client.get("/").status_code == 302


def test_the_charts_put_each_result_in_the_hour_it_was_scanned(tenant, make_db_bucket, make_result):
    from scanning.views.dashboard import chart

    bucket = make_db_bucket(tenant)
    now = datetime(2026, 5, 10, 12, 40, tzinfo=UTC)
    make_result(tenant, bucket, "edge.exe", scanned_at=datetime(2026, 5, 10, 12, 0, tzinfo=UTC))
    make_result(tenant, bucket, "prev.exe", scanned_at=datetime(2026, 5, 10, 11, 59, 59, tzinfo=UTC))
    make_result(tenant, bucket, "out.exe", scanned_at=datetime(2026, 5, 9, 12, 59, tzinfo=UTC))
    with scope(tenant=tenant):
        day = chart(tenant, "hour", now)
    assert [s.objects for s in day.slots[-2:]] == [1, 1]
    assert day.slots[0].start == datetime(2026, 5, 9, 13, 0, tzinfo=UTC)
    assert day.objects == 2


def test_a_settled_day_is_counted_once_and_today_on_every_view(
    tenant, session_client, make_db_bucket, make_result
):
    bucket = make_db_bucket(tenant)
    now = timezone.now()
    make_result(tenant, bucket, "a.exe", scanned_at=now - timedelta(days=3))
    client = session_client(tenant, Role.VIEWER)
    assert "1 object (68 bytes) scanned, 1 Infected." in _page(client).split('id="chart-month-title"')[1]
    # Results are recorded as they are scanned, never into a past day: a row written there now (as no
    # scan does) shows that the day's figures come from the cache, while today's are counted afresh.
    make_result(tenant, bucket, "b.exe", scanned_at=now - timedelta(days=3))
    make_result(tenant, bucket, "c.exe", scanned_at=timezone.now())
    month = _page(client).split('id="chart-month-title"')[1]
    assert "2 objects (136 bytes) scanned, 2 Infected." in month


def test_the_running_scans_card_refreshes_itself_while_scans_run(
    tenant, outsider_tenant, session_client, make_db_bucket, django_assert_max_num_queries
):
    bucket = make_db_bucket(tenant)
    client = session_client(tenant, Role.VIEWER)
    assert "hx-trigger" not in _page(client)  # nothing running: nothing to poll
    with scope(tenant=tenant):
        job = factories.make_job(tenant, bucket, prefix="big/", status="scanning", listed=10)
    with scope(tenant=outsider_tenant):
        factories.make_job(
            outsider_tenant,
            make_db_bucket(outsider_tenant),
            prefix="theirs/",
            status="scanning",
        )
    assert 'hx-get="/dashboard/running" hx-trigger="every 10s"' in _page(client)
    with scope(tenant=tenant):
        ScanJob.objects.filter(pk=job.pk).update(scanned=6, skipped=1)
    with django_assert_max_num_queries(6):
        card = client.get("/dashboard/running")
    body = card.content.decode()
    assert card.status_code == 200
    assert "6 of 10 listed scanned" in body and 'value="7"' in body and "theirs/" not in body
    assert "<html" not in body
    with scope(tenant=tenant):
        ScanJob.objects.filter(pk=job.pk).update(status="done")
    assert "hx-trigger" not in client.get("/dashboard/running").content.decode()
    assert session_client(tenant, Role.NONE).get("/dashboard/running").status_code == 403

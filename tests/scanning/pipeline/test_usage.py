"""Usage: objects and bytes scanned per month, from every kind of scan."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django_scopes import scope

from accounts.models import Role
from scanning.models import Agent, UsageMonth
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


# --- in a worker: added up in the process, written every few seconds (pipeline/usage.py) -----------


def _scan_new(tenant, bucket, s3_client, key, body):
    etag = s3_client.put_object(Bucket=bucket.name, Key=key, Body=body)["ETag"]
    with scope(tenant=tenant):
        dedupe = services.dedupe_key_for(bucket, key, None, etag, False)
        return services.run_scan(
            tenant, bucket, key, version_id=None, etag=etag, trigger="event", dedupe_key=dedupe
        )


def _months(tenant):
    with scope(tenant=tenant):
        return {f"{m.month:%Y-%m}": (m.objects_scanned, m.bytes_scanned) for m in UsageMonth.objects.all()}


def test_a_worker_adds_usage_up_and_writes_it_when_due(
    tenant, make_linked_bucket, s3_client, aws_settings, worker_usage, monkeypatch
):
    from scanning.pipeline import usage

    bucket = make_linked_bucket(tenant)
    _scan_new(tenant, bucket, s3_client, "a.txt", b"a" * 100)
    _scan_new(tenant, bucket, s3_client, "b.txt", b"b" * 50)
    assert _months(tenant) == {}  # not yet: no statement per scan
    month = f"{datetime.now(UTC):%Y-%m}"
    assert usage.PENDING.pending() == {(tenant.pk, UsageMonth.month_of()): (2, 150)}
    monkeypatch.setattr(usage.PENDING, "flush_seconds", 0.0)  # the oldest count is due now
    _scan_new(tenant, bucket, s3_client, "c.txt", b"c" * 10)
    assert _months(tenant) == {month: (3, 160)}
    assert usage.PENDING.pending() == {}


def test_usage_is_added_to_the_month_of_the_scan_not_of_the_write(tenant, worker_usage):
    from scanning.pipeline import usage

    usage.add(tenant.pk, 1, 100, when=datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC))
    usage.add(tenant.pk, 1, 7, when=datetime(2026, 2, 1, tzinfo=UTC))
    assert usage.flush() == 2
    assert _months(tenant) == {"2026-01": (1, 100), "2026-02": (1, 7)}


def test_a_failed_write_keeps_the_counts_for_the_next_one(tenant, worker_usage, monkeypatch):
    from django.db import OperationalError

    from scanning.pipeline import usage

    usage.add(tenant.pk, 2, 20)
    real = UsageMonth.add_to

    def database_away(*args, **kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(UsageMonth, "add_to", database_away)
    with pytest.raises(OperationalError):
        usage.flush()
    usage.add(tenant.pk, 1, 5)
    monkeypatch.setattr(UsageMonth, "add_to", real)
    assert usage.flush() == 1
    assert list(_months(tenant).values()) == [(3, 25)]  # written once, nothing lost or doubled


@pytest.mark.django_db(transaction=True)  # as the heartbeat runs: autocommit
def test_the_heartbeat_writes_an_idle_workers_usage(tenant, worker_usage, settings):
    from scanning.fleet.agents import Heartbeat
    from scanning.pipeline import usage

    settings.CLAMD_ADDRESS = "tcp://127.0.0.1:9"  # the beat's engine check fails fast; the flush still runs
    usage.add(tenant.pk, 4, 40)
    heartbeat = Heartbeat(["scans"], every=0.01)
    heartbeat._stop.wait = lambda timeout: heartbeat._stop.set()  # type: ignore[method-assign] # one beat
    heartbeat._run()  # the heartbeat thread's loop, here
    assert list(_months(tenant).values()) == [(4, 40)]


@pytest.mark.django_db(transaction=True)  # as the heartbeat runs: autocommit
def test_an_idle_workers_last_usage_is_written_when_due_not_at_the_next_beat(
    tenant, worker_usage, settings, monkeypatch
):
    import time

    from scanning.fleet.agents import Heartbeat
    from scanning.pipeline import usage

    settings.CLAMD_ADDRESS = "tcp://127.0.0.1:9"  # the beat's engine check fails fast
    monkeypatch.setattr(usage, "FLUSH_SECONDS", 0.05)
    monkeypatch.setattr(usage.PENDING, "flush_seconds", 0.05)
    heartbeat = Heartbeat(["scans"], every=60)  # one beat now, the next in a minute
    heartbeat.start()
    try:
        deadline = time.monotonic() + 10
        while not Agent.objects.filter(pk=heartbeat.agent_id).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        usage.add(tenant.pk, 3, 30)  # the worker's last scans, after the beat
        while not _months(tenant) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(_months(tenant).values()) == [(3, 30)]
    finally:
        heartbeat.stop()


def test_a_worker_shutting_down_writes_its_usage_and_counts_at_once_after(tenant, worker_usage):
    from scanning.fleet.middleware import FleetMiddleware
    from scanning.pipeline import usage

    middleware = FleetMiddleware()
    usage.add(tenant.pk, 1, 10)  # batching, as after the worker booted
    assert _months(tenant) == {}
    middleware.after_worker_shutdown(None, None)  # type: ignore[arg-type]
    assert list(_months(tenant).values()) == [(1, 10)]
    assert not usage.PENDING.batching
    usage.add(tenant.pk, 1, 10)
    assert list(_months(tenant).values()) == [(2, 20)]


def test_a_scan_counted_while_the_worker_shuts_down_is_written_not_left_in_memory(tenant, monkeypatch):
    # A worker thread still finishing its scan (past the shutdown's join) counts it just as the
    # shutdown turns batching off and writes what is pending: the count is written, never stranded.
    from scanning.pipeline import usage

    pending = usage.PendingUsage()
    pending.batching = True

    class ShutdownMidAdd:
        @staticmethod
        def monotonic():
            pending.batching = False  # stop_batching, between the thread's look and its count
            pending.flush()
            return 0.0

    monkeypatch.setattr(usage, "time", ShutdownMidAdd)
    pending.add(tenant.pk, 1, 10)
    with scope(tenant=tenant):
        assert list(UsageMonth.objects.values_list("objects_scanned", "bytes_scanned")) == [(1, 10)]
    assert pending.pending() == {}

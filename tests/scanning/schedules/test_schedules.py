"""Cron schedules: validation, the API, firing, one job per target, the scheduler process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone
from django_scopes import scope

from accounts.models import Role
from scanning.models import JobStatus, JobTrigger, ScanJob, Schedule, validate_cron
from scanning.schedules import services as schedules
from tests import factories
from tests.fixtures.broker import queued

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_broker")]


@pytest.mark.parametrize(
    "cron", ["0 * * * *", "15 3 * * 1-5", "0 0 1 1 *", "@hourly", "@yearly", "30 2 29 2 *"]
)
def test_it_accepts_hourly_to_yearly(cron):
    validate_cron(cron)


@pytest.mark.parametrize(
    "cron",
    ["* * * * *", "*/30 * * * *", "0,30 * * * *", "0 * * * * *", "@reboot", "0 0 31 2 *", "nonsense", ""],
)
def test_it_refuses_more_than_hourly_and_nonsense(cron):
    with pytest.raises(ValidationError):
        validate_cron(cron)


def _schedule(tenant, bucket, cron="0 * * * *", prefix="", due=True):
    with scope(tenant=tenant):
        schedule = Schedule.objects.create(tenant=tenant, bucket=bucket, cron=cron, prefix=prefix)
        schedule.next_run_at = (
            timezone.now() - timedelta(minutes=1) if due else timezone.now() + timedelta(hours=1)
        )
        schedule.save()
        return schedule


def test_a_due_schedule_starts_a_job_and_moves_on(
    tenant, make_linked_bucket, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    schedule = _schedule(tenant, bucket, prefix="nightly/")
    _schedule(tenant, bucket, prefix="later/", due=False)
    with django_capture_on_commit_callbacks(execute=True):
        report = schedules.run_due_schedules()
    assert len(report.fired) == 1
    with scope(tenant=tenant):
        job = ScanJob.objects.get(pk=report.fired[0])
        schedule.refresh_from_db()
    assert (job.trigger, job.prefix, job.status) == (JobTrigger.SCHEDULE, "nightly/", JobStatus.QUEUED)
    assert schedule.last_job_id == job.pk
    assert schedule.next_run_at > timezone.now()
    assert [m.args for m in queued("listing")] == [(str(job.pk),)]


def test_a_schedule_never_starts_a_second_job_while_one_runs(
    tenant, make_linked_bucket, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    schedule = _schedule(tenant, bucket)
    with django_capture_on_commit_callbacks(execute=True):
        assert len(schedules.run_due_schedules().fired) == 1
    with scope(tenant=tenant):
        Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        report = schedules.run_due_schedules()
    assert (report.fired, report.busy) == ([], 1)
    with scope(tenant=tenant):
        assert ScanJob.objects.count() == 1


def test_a_firing_is_claimed_once(tenant, make_linked_bucket, django_capture_on_commit_callbacks):
    bucket = make_linked_bucket(tenant)
    schedule = _schedule(tenant, bucket)
    now = timezone.now()
    stale = Schedule(pk=schedule.pk, next_run_at=schedule.next_run_at, cron=schedule.cron)
    report = schedules.TickReport()
    with scope(tenant=tenant), django_capture_on_commit_callbacks(execute=True):
        schedule = Schedule.objects.select_related("bucket", "tenant").get(pk=schedule.pk)
        schedules._fire(schedule, now, report)
        stale.tenant, stale.bucket = schedule.tenant, schedule.bucket
        schedules._fire(stale, now, report)  # a second scheduler with the old next_run_at
    assert len(report.fired) == 1


def test_run_scheduler_once(tenant, make_linked_bucket, django_capture_on_commit_callbacks, capsys):
    bucket = make_linked_bucket(tenant)
    _schedule(tenant, bucket)
    from scanning.jobs import services as jobs

    jobs_sig = jobs.current_signature_version
    try:
        jobs.current_signature_version = lambda: "sig"  # type: ignore[assignment]
        with django_capture_on_commit_callbacks(execute=True):
            call_command("run_scheduler", "--once")
    finally:
        jobs.current_signature_version = jobs_sig  # type: ignore[assignment]
    assert "fired=1" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_run_scheduler_stops_cleanly_on_sigterm(tenant):
    from django.db import connection

    database = connection.settings_dict
    host, port = database["HOST"] or "127.0.0.1", database["PORT"] or 5432
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{host}:{port}/{database['NAME']}",
        "S3AV_LOG_LEVEL": "INFO",
        "S3AV_CLAMD": "tcp://127.0.0.1:9",  # unreachable: the signature check fails and is logged, not fatal
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_scheduler", "--interval", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        output = ""
        while "run_scheduler started" not in output and time.monotonic() < deadline:
            line = process.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            output += line
        assert "run_scheduler started" in output, output
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output + rest
    assert "run_scheduler stopped" in rest


def test_new_signatures_rescan_recent_objects_once(
    tenant, make_linked_bucket, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant, rescan_days_on_signature_change=7)
    with scope(tenant=tenant):
        type(bucket).objects.filter(pk=bucket.pk).update(protected=True)
        factories.make_result(
            tenant, bucket, "k", "Clean", signature_version="old", scanned_at=timezone.now()
        )
    with django_capture_on_commit_callbacks(execute=True):
        # clamd is still loading the new set: no rescan for a set in between, one once it runs.
        assert schedules.rescan_after_signature_change(signature_version="new-reloading") == []
        started = schedules.rescan_after_signature_change(signature_version="new")
        assert schedules.rescan_after_signature_change(signature_version="old") == []
    assert len(started) == 1
    with scope(tenant=tenant):
        job = ScanJob.objects.get(pk=started[0])
        assert (job.trigger, job.signature_version) == (JobTrigger.SIGNATURES, "new")
        assert job.modified_after is not None
        ScanJob.objects.filter(pk=job.pk).update(status=JobStatus.DONE)
    with django_capture_on_commit_callbacks(execute=True):
        assert schedules.rescan_after_signature_change(signature_version="new") == []


# --- API ---------------------------------------------------------------------------------------------


def test_an_operator_manages_schedules(tenant, make_linked_bucket, key_client):
    bucket = make_linked_bucket(tenant)
    client = key_client(tenant, Role.OPERATOR)
    response = client.post(
        "/api/v1/schedules/", {"bucket": str(bucket.pk), "prefix": "in/", "cron": "0 3 * * *"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["next_run_at"] and body["cron"] == "0 3 * * *"
    refused = client.post(
        "/api/v1/schedules/", {"bucket": str(bucket.pk), "cron": "*/5 * * * *"}, format="json"
    )
    assert refused.status_code == 400
    assert "cron" in refused.json()
    changed = client.patch(
        f"/api/v1/schedules/{body['id']}", {"cron": "0 4 * * *", "enabled": False}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["cron"], changed.json()["enabled"]) == ("0 4 * * *", False)
    assert client.delete(f"/api/v1/schedules/{body['id']}").status_code == 204
    with scope(tenant=tenant):
        assert not Schedule.objects.exists()


def test_schedules_refuse_viewers_and_other_tenants(tenant, outsider_tenant, make_linked_bucket, key_client):
    bucket = make_linked_bucket(tenant)
    schedule = _schedule(tenant, bucket)
    viewer = key_client(tenant, Role.VIEWER)
    assert viewer.get(f"/api/v1/schedules/{schedule.pk}").status_code == 200
    assert (
        viewer.patch(f"/api/v1/schedules/{schedule.pk}", {"enabled": False}, format="json").status_code == 403
    )
    assert viewer.delete(f"/api/v1/schedules/{schedule.pk}").status_code == 403
    outsider = key_client(outsider_tenant, Role.ADMIN)
    for method in ("get", "patch", "delete"):
        assert (
            getattr(outsider, method)(f"/api/v1/schedules/{schedule.pk}", {}, format="json").status_code
            == 404
        )
    response = outsider.post(
        "/api/v1/schedules/", {"bucket": str(bucket.pk), "cron": "0 * * * *"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"bucket": ["No such bucket."]}


def test_the_schedule_list_costs_a_fixed_number_of_queries(
    tenant, make_linked_bucket, key_client, django_assert_max_num_queries
):
    bucket = make_linked_bucket(tenant)
    for n in range(6):
        _schedule(tenant, bucket, prefix=f"p{n}/")
    client = key_client(tenant, Role.VIEWER)
    client.get("/api/v1/schedules/")
    with django_assert_max_num_queries(6):
        response = client.get("/api/v1/schedules/")
    assert len(response.json()["results"]) == 6


# --- one tenant's bad row never stops the others ------------------------------------------------------


def _stale_result(tenant, bucket):
    with scope(tenant=tenant):
        type(bucket).objects.filter(pk=bucket.pk).update(protected=True)
        factories.make_result(
            tenant, bucket, "k", "Clean", signature_version="old", scanned_at=timezone.now()
        )


def test_a_bad_policy_row_does_not_stop_other_tenants_rescans(
    tenant, outsider_tenant, make_linked_bucket, django_capture_on_commit_callbacks
):
    bad = make_linked_bucket(outsider_tenant, rescan_days_on_signature_change=7)
    good = make_linked_bucket(tenant, rescan_days_on_signature_change=7)
    _stale_result(outsider_tenant, bad)
    _stale_result(tenant, good)
    with scope(tenant=outsider_tenant):
        # Written past the API's bound, straight into the database: the window would reach before year 1.
        # Named to sort first, so that it is the first policy the loop meets.
        type(bad.policy).objects.filter(pk=bad.policy_id).update(
            name="a bad policy", rescan_days_on_signature_change=2_000_000_000
        )
    with django_capture_on_commit_callbacks(execute=True):
        started = schedules.rescan_after_signature_change(signature_version="new")
    with scope(tenant=tenant):
        assert [str(j.pk) for j in ScanJob.objects.filter(bucket=good)] == started
    assert len(started) == 1


def test_a_bad_schedule_row_does_not_stop_other_tenants_schedules(
    tenant, outsider_tenant, make_linked_bucket, django_capture_on_commit_callbacks
):
    bad = _schedule(outsider_tenant, make_linked_bucket(outsider_tenant))
    good = _schedule(tenant, make_linked_bucket(tenant))
    with scope(tenant=outsider_tenant):
        # A cron the API would refuse, written directly, and due before the good one.
        Schedule.objects.filter(pk=bad.pk).update(
            cron="nonsense", next_run_at=timezone.now() - timedelta(hours=1)
        )
    with django_capture_on_commit_callbacks(execute=True):
        report = schedules.run_due_schedules()
    assert report.failed == 1
    with scope(tenant=tenant):
        assert report.fired == [str(ScanJob.objects.get(bucket=good.bucket).pk)]

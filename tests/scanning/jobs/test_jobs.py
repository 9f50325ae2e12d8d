"""Bucket scans on real parts (moto's S3 server, clamd), with the stub broker drained in the test."""

from __future__ import annotations

import pytest
from django_scopes import scope

from accounts.models import Role
from accounts.services import Actor, ServiceError
from scanning.jobs import services as jobs
from scanning.models import JobStatus, JobTrigger, ScanJob, ScanJobItem, ScanResult, Verdict
from scanning.pipeline import services
from scanning.pipeline.services import scan_object
from scanning.s3 import ops as s3ops
from tests import factories
from tests.fixtures.broker import drain, queued
from tests.fixtures.scanning import EICAR, assert_gone_for_good, next_second

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_broker")]

SYSTEM = Actor.system("test")


def _put_many(s3_client, bucket, objects):
    for key, body in objects.items():
        s3_client.put_object(Bucket=bucket.name, Key=key, Body=body)


def _start(tenant, bucket, prefix="", django_capture_on_commit_callbacks=None, **kwargs):
    with scope(tenant=tenant), django_capture_on_commit_callbacks(execute=True):
        return jobs.start_bucket_scan(tenant, SYSTEM, bucket, prefix, **kwargs)


def _run_all(tenant):
    with scope(tenant=tenant):
        drain()


def _job(tenant, job):
    with scope(tenant=tenant):
        return ScanJob.objects.get(pk=job.pk)


def test_it_scans_a_prefix_with_clean_and_infected_objects(
    tenant, make_linked_bucket, s3_client, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    _put_many(
        s3_client,
        bucket,
        {
            "in/a.txt": b"alpha " * 50,
            "in/b.txt": b"beta " * 50,
            "in/eicar.com": EICAR,
            "out/eicar.com": EICAR,
        },
    )
    job = _start(tenant, bucket, "in/", django_capture_on_commit_callbacks)
    assert [m.actor_name for m in queued("listing")] == ["list_job"]
    _run_all(tenant)
    job = _job(tenant, job)
    assert job.status == JobStatus.DONE
    assert (job.listed, job.queued, job.scanned, job.clean_count, job.infected, job.skipped) == (
        3,
        3,
        3,
        2,
        1,
        0,
    )
    assert job.finished_at is not None
    with scope(tenant=tenant):
        assert sorted(ScanResult.objects.final().values_list("key", flat=True)) == [
            "in/a.txt",
            "in/b.txt",
            "in/eicar.com",
        ]
        assert not ScanJobItem.objects.filter(job=job).exists()


def test_a_restarted_listing_resumes_from_its_checkpoint(
    tenant, make_linked_bucket, s3_client, s3_calls, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    _put_many(s3_client, bucket, {f"k/{n:03d}.txt": f"object {n}".encode() for n in range(25)})
    job = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    with scope(tenant=tenant):
        # The first worker lists one page of ten, then dies before the next page.
        assert jobs.list_slice(str(job.pk), max_pages=1, page_size=10) == "continue"
    first = _job(tenant, job)
    assert (first.status, first.listed, first.queued, first.pages_listed) == (JobStatus.LISTING, 10, 10, 1)
    assert first.list_token
    assert s3_calls["ListObjectsV2"] == 1
    with scope(tenant=tenant):
        # A restarted worker continues at the checkpoint: two more pages, not three.
        assert jobs.list_slice(str(job.pk), page_size=10) == "done"
    resumed = _job(tenant, job)
    assert s3_calls["ListObjectsV2"] == 3
    assert (resumed.status, resumed.listed, resumed.queued, resumed.pages_listed) == (
        JobStatus.SCANNING,
        25,
        25,
        3,
    )
    assert len({m.args[2] for m in queued("scans")}) == 25
    assert len(queued("scans")) == 25
    _run_all(tenant)
    done = _job(tenant, job)
    assert (done.status, done.scanned, done.clean_count) == (JobStatus.DONE, 25, 25)


def test_a_page_listed_twice_after_a_crash_is_counted_once(
    tenant, make_linked_bucket, s3_client, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    _put_many(s3_client, bucket, {f"k/{n}.txt": f"object {n}".encode() for n in range(4)})
    job = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    with scope(tenant=tenant):
        ScanJob.objects.filter(pk=job.pk).update(status=JobStatus.LISTING, signature_version="sig-1")
        job = ScanJob.objects.select_related("bucket").get(pk=job.pk)
        s3 = jobs.s3_client_for(bucket)
        page = next(s3ops.iter_keys(s3, bucket.name))
        policy = bucket.effective_policy()
        # The first copy sent the scans and checkpointed; a redelivered copy that listed the same page
        # from the same token loses the conditional checkpoint and counts nothing.
        stale = ScanJob.objects.select_related("bucket").get(pk=job.pk)
        assert jobs.enqueue_page(job, page, policy, "sig-1") is True
        assert jobs.enqueue_page(stale, page, policy, "sig-1") is False
        assert ScanJobItem.objects.filter(job=job).count() == 4
    _run_all(tenant)
    done = _job(tenant, job)
    assert (done.listed, done.scanned, done.status) == (4, 4, JobStatus.DONE)
    with scope(tenant=tenant):
        assert ScanResult.objects.final().count() == 4  # the duplicate messages scanned nothing twice


def test_a_redelivered_scan_message_counts_once(
    tenant, make_linked_bucket, s3_client, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    _put_many(s3_client, bucket, {"one.txt": b"just one", "two.txt": b"and two"})
    job = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    with scope(tenant=tenant):
        drain(queues=("listing",))
    message = queued("scans")[0]
    scan_object.fn(*message.args, **message.kwargs)
    scan_object.fn(*message.args, **message.kwargs)
    assert _job(tenant, job).scanned == 1
    _run_all(tenant)
    assert (_job(tenant, job).scanned, _job(tenant, job).status) == (2, JobStatus.DONE)


def test_cancel_stops_listing_and_drops_pending_scans(
    tenant, make_linked_bucket, s3_client, s3_calls, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    _put_many(s3_client, bucket, {f"k/{n:02d}.txt": f"object {n}".encode() for n in range(15)})
    job = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    with scope(tenant=tenant):
        assert jobs.list_slice(str(job.pk), max_pages=1, page_size=10) == "continue"
        cancelled = jobs.cancel_job(tenant, SYSTEM, ScanJob.objects.get(pk=job.pk))
        assert cancelled.status == JobStatus.CANCELLED
        assert jobs.list_slice(str(job.pk), page_size=10) == "stop"
        with pytest.raises(ServiceError):
            jobs.cancel_job(tenant, SYSTEM, cancelled)
    _run_all(tenant)
    assert s3_calls["GetObject"] == 0
    assert s3_calls["ListObjectsV2"] == 1
    final = _job(tenant, job)
    assert (final.status, final.listed, final.scanned) == (JobStatus.CANCELLED, 10, 0)
    with scope(tenant=tenant):
        assert not ScanResult.objects.exists()


def test_a_second_scan_of_unchanged_objects_downloads_nothing(
    tenant, make_linked_bucket, s3_client, s3_calls, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    _put_many(s3_client, bucket, {f"k/{n}.txt": f"object {n}".encode() for n in range(6)})
    first = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    _run_all(tenant)
    assert _job(tenant, first).scanned == 6
    assert s3_calls["GetObject"] == 6

    s3_calls.clear()
    s3_client.put_object(Bucket=bucket.name, Key="k/0.txt", Body=b"changed bytes")
    second = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    _run_all(tenant)
    again = _job(tenant, second)
    assert (again.status, again.listed, again.skipped, again.scanned) == (JobStatus.DONE, 6, 5, 1)
    assert s3_calls["GetObject"] == 1  # only the changed object


def test_new_signatures_rescan_what_is_known(
    tenant, make_linked_bucket, s3_client, s3_calls, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    _put_many(s3_client, bucket, {f"k/{n}.txt": f"object {n}".encode() for n in range(3)})
    _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    _run_all(tenant)
    s3_calls.clear()
    # A job pinned to another signature version treats the old verdicts as stale.
    job = _start(
        tenant,
        bucket,
        "",
        django_capture_on_commit_callbacks,
        trigger=JobTrigger.SIGNATURES,
        signature_version="new",
    )
    _run_all(tenant)
    assert (_job(tenant, job).skipped, _job(tenant, job).scanned) == (0, 3)
    assert s3_calls["GetObject"] == 3


def test_a_time_window_limits_what_is_listed(
    tenant, make_linked_bucket, s3_client, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    bucket = make_linked_bucket(tenant)
    _put_many(s3_client, bucket, {"a.txt": b"a", "b.txt": b"b"})
    job = _start(
        tenant,
        bucket,
        "",
        django_capture_on_commit_callbacks,
        modified_after=timezone.now() + timedelta(hours=1),
    )
    _run_all(tenant)
    assert (_job(tenant, job).listed, _job(tenant, job).status) == (0, JobStatus.DONE)


def test_every_version_is_scanned_when_asked(
    tenant, make_linked_bucket, s3_client, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant, versioned=True)
    s3_client.put_object(Bucket=bucket.name, Key="doc.txt", Body=EICAR)
    s3_client.put_object(Bucket=bucket.name, Key="doc.txt", Body=b"cleaned up")
    job = _start(tenant, bucket, "", django_capture_on_commit_callbacks, all_versions=True)
    _run_all(tenant)
    done = _job(tenant, job)
    assert (done.listed, done.clean_count, done.infected) == (2, 1, 1)


def test_one_running_job_per_target(tenant, make_linked_bucket, django_capture_on_commit_callbacks):
    bucket = make_linked_bucket(tenant)
    _start(tenant, bucket, "p/", django_capture_on_commit_callbacks)
    with pytest.raises(ServiceError, match="already running"):
        _start(tenant, bucket, "p/", django_capture_on_commit_callbacks)
    _start(tenant, bucket, "other/", django_capture_on_commit_callbacks)  # another target is fine


def test_listing_a_missing_bucket_fails_the_job(
    tenant, make_linked_bucket, s3_client, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    with scope(tenant=tenant):
        type(bucket).objects.filter(pk=bucket.pk).update(name="s3av-no-such-bucket-here")
        bucket.refresh_from_db()
    job = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    _run_all(tenant)
    failed = _job(tenant, job)
    assert failed.status == JobStatus.FAILED
    assert "does not exist" in failed.error


def test_malware_found_scans_the_rest_of_the_bucket(
    tenant, make_linked_bucket, s3_client, django_capture_on_commit_callbacks
):
    from scanning.pipeline import services

    bucket = make_linked_bucket(tenant, scan_bucket_on_infected=True)
    _put_many(
        s3_client, bucket, {"new/eicar.com": EICAR, "old/a.txt": b"never scanned", "old/b.txt": b"nor this"}
    )
    etag = s3_client.head_object(Bucket=bucket.name, Key="new/eicar.com")["ETag"]
    with scope(tenant=tenant), django_capture_on_commit_callbacks(execute=True):
        dedupe = services.dedupe_key_for(bucket, "new/eicar.com", None, etag, False)
        result = services.run_scan(
            tenant, bucket, "new/eicar.com", version_id=None, etag=etag, trigger="event", dedupe_key=dedupe
        )
    assert result.verdict == Verdict.INFECTED
    with scope(tenant=tenant):
        job = ScanJob.objects.get(bucket=bucket)
    assert (job.trigger, job.prefix) == (JobTrigger.INFECTED, "")
    _run_all(tenant)
    done = _job(tenant, job)
    assert (done.status, done.listed, done.skipped, done.scanned) == (JobStatus.DONE, 3, 1, 2)
    with scope(tenant=tenant):
        assert ScanJob.objects.count() == 1  # the job's own findings start no further job


# --- API ---------------------------------------------------------------------------------------------


def test_an_operator_starts_watches_and_cancels_scans(
    tenant, make_linked_bucket, s3_client, key_client, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    _put_many(s3_client, bucket, {"p/a.txt": b"a", "p/eicar.com": EICAR})
    client = key_client(tenant, Role.OPERATOR)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/jobs/", {"bucket": str(bucket.pk), "prefix": "p/"}, format="json")
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    assert response.json()["trigger"] == "api"
    _run_all(tenant)
    progress = client.get(f"/api/v1/jobs/{job_id}").json()
    assert (progress["status"], progress["scanned"], progress["infected"], progress["clean"]) == (
        "done",
        2,
        1,
        1,
    )

    with django_capture_on_commit_callbacks(execute=True):
        other = client.post("/api/v1/jobs/", {"bucket": str(bucket.pk), "prefix": "q/"}, format="json").json()
    response = client.post(f"/api/v1/jobs/{other['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert client.post(f"/api/v1/jobs/{other['id']}/cancel").status_code == 400


def test_jobs_refuse_viewers_and_other_tenants(
    tenant, outsider_tenant, make_linked_bucket, key_client, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    job = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    viewer = key_client(tenant, Role.VIEWER)
    assert viewer.get(f"/api/v1/jobs/{job.pk}").status_code == 200
    assert viewer.post("/api/v1/jobs/", {"bucket": str(bucket.pk)}, format="json").status_code == 403
    assert viewer.post(f"/api/v1/jobs/{job.pk}/cancel").status_code == 403
    outsider = key_client(outsider_tenant, Role.ADMIN)
    assert outsider.get(f"/api/v1/jobs/{job.pk}").status_code == 404
    assert outsider.post(f"/api/v1/jobs/{job.pk}/cancel").status_code == 404
    assert outsider.get("/api/v1/jobs/").json()["results"] == []
    # Another tenant's bucket is refused like a missing one.
    response = outsider.post("/api/v1/jobs/", {"bucket": str(bucket.pk)}, format="json")
    assert response.status_code == 400
    assert response.json() == {"bucket": ["No such bucket."]}


def test_the_job_list_costs_a_fixed_number_of_queries(
    tenant, make_linked_bucket, key_client, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    for n in range(8):
        _start(tenant, bucket, f"p{n}/", django_capture_on_commit_callbacks)
    client = key_client(tenant, Role.VIEWER)
    client.get("/api/v1/jobs/")
    with django_assert_max_num_queries(6):
        response = client.get("/api/v1/jobs/")
    assert len(response.json()["results"]) == 8


@pytest.mark.django_db(transaction=True)  # autocommit, usage added up in the process: as the worker runs
def test_a_bucket_scan_costs_a_fixed_number_of_statements_per_object(
    tenant,
    make_linked_bucket,
    s3_client,
    django_assert_num_queries,
    django_capture_on_commit_callbacks,
    worker_usage,
):
    bucket = make_linked_bucket(tenant)
    _put_many(s3_client, bucket, {f"in/{n}.txt": f"object {n} ".encode() * 50 for n in range(4)})
    job = _start(tenant, bucket, "in/", django_capture_on_commit_callbacks)
    with scope(tenant=tenant):
        jobs.list_slice(str(job.pk))
    first, *counted, last = queued("scans")
    dramatiq_broker = scan_object.broker
    dramatiq_broker.flush("scans")
    scan_object.fn(*first.args, **first.kwargs)  # per-process caches
    # The bucket with whether the job still wants the scan; the claim; one look at the key's newer
    # verdicts; verdict and action in one UPDATE, after the tagging; counting (one statement).
    for message in counted:
        with django_assert_num_queries(5):
            scan_object.fn(*message.args, **message.kwargs)
    # The last one's count also finishes the job (the counters say so), which then drops its items (a
    # DELETE in its own transaction: BEGIN, DELETE, COMMIT).
    with django_assert_num_queries(8):
        scan_object.fn(*last.args, **last.kwargs)
    job = _job(tenant, job)
    assert job.status == JobStatus.DONE
    assert (job.listed, job.scanned, job.clean_count, job.skipped) == (4, 4, 4, 0)


def test_a_scan_killed_between_tagging_and_recording_is_counted_once_when_redelivered(
    tenant, make_linked_bucket, s3_client, django_capture_on_commit_callbacks, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    bucket = make_linked_bucket(tenant)
    _put_many(s3_client, bucket, {"a.txt": b"alpha " * 50, "b.txt": b"beta " * 50})
    job = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    with scope(tenant=tenant):
        drain(queues=("listing",))
    first, second = queued("scans")
    real = services._save

    def dies(result, fields):
        if "tagged" in fields:
            raise SystemExit("worker killed between tagging and recording")
        return real(result, fields)

    monkeypatch.setattr(services, "_save", dies)
    with pytest.raises(SystemExit):
        scan_object.fn(*first.args, **first.kwargs)
    monkeypatch.setattr(services, "_save", real)
    scan_object.fn(*second.args, **second.kwargs)
    running = _job(tenant, job)
    assert (running.status, running.scanned, running.clean_count) == (JobStatus.SCANNING, 1, 1)
    with scope(tenant=tenant):  # the dead worker's lease runs out
        ScanResult.objects.filter(verdict="").update(claimed_until=timezone.now() - timedelta(seconds=1))
    scan_object.fn(*first.args, **first.kwargs)  # redelivered
    scan_object.fn(*first.args, **first.kwargs)  # and once more: counted already
    done = _job(tenant, job)
    assert (done.status, done.listed, done.scanned, done.clean_count, done.skipped) == (
        JobStatus.DONE, 2, 2, 2, 0
    )  # fmt: skip
    with scope(tenant=tenant):
        assert ScanResult.objects.final().count() == 2


def test_malware_uploaded_again_after_quarantine_is_not_skipped(
    tenant, make_linked_bucket, make_bucket, s3_client, s3_calls, django_capture_on_commit_callbacks
):
    quarantine = make_bucket()
    bucket = make_linked_bucket(tenant, on_infected="quarantine", quarantine_bucket=quarantine)
    _put_many(s3_client, bucket, {"evil.com": EICAR})
    first = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    _run_all(tenant)
    assert _job(tenant, first).infected == 1
    _put_many(s3_client, bucket, {"evil.com": EICAR})  # the same bytes come back
    second = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    _run_all(tenant)
    again = _job(tenant, second)
    assert (again.skipped, again.infected) == (0, 1)
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket.name)


def test_an_error_verdict_is_not_reused_by_a_later_job(
    tenant, make_linked_bucket, s3_client, s3_calls, django_capture_on_commit_callbacks, aws_settings
):
    bucket = make_linked_bucket(tenant)
    _put_many(s3_client, bucket, {"a.txt": b"fine"})
    with scope(tenant=tenant):
        factories.make_result(
            tenant,
            bucket,
            "a.txt",
            "Error",
            etag=s3_client.head_object(Bucket=bucket.name, Key="a.txt")["ETag"].strip('"'),
            size=4,
            message="gave up after retries: clamd down",
            signature_version=services.engine_identity().get()[1],
        )
    job = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    _run_all(tenant)
    done = _job(tenant, job)
    assert (done.skipped, done.scanned, done.clean_count) == (0, 1, 1)


@pytest.mark.parametrize("value", ["bogus", "%00"])
def test_a_bad_status_filter_is_a_400(tenant, key_client, value):
    response = key_client(tenant, Role.VIEWER).get(f"/api/v1/jobs/?status={value}")
    assert response.status_code == 400
    assert "status" in response.json()


# --- the exact version, on versioned and unversioned buckets (issue 8) ------------------------------

BUCKET_KINDS = pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])


@BUCKET_KINDS
@pytest.mark.parametrize("on_infected", ["quarantine", "delete"])
def test_a_bucket_scan_of_the_latest_versions_removes_the_infected_version_for_good(
    tenant,
    make_linked_bucket,
    make_bucket,
    s3_client,
    django_capture_on_commit_callbacks,
    versioned,
    on_infected,
):
    quarantine = make_bucket()
    bucket = make_linked_bucket(
        tenant, versioned=versioned, on_infected=on_infected, quarantine_bucket=quarantine
    )
    version = s3_client.put_object(Bucket=bucket.name, Key="evil.com", Body=EICAR).get("VersionId")
    s3_client.put_object(Bucket=bucket.name, Key="fine.txt", Body=b"fine")
    job = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    _run_all(tenant)
    done = _job(tenant, job)
    assert (done.status, done.infected, done.clean_count) == (JobStatus.DONE, 1, 1)
    assert_gone_for_good(s3_client, bucket.name, "evil.com", version)
    with scope(tenant=tenant):
        result = ScanResult.objects.get(key="evil.com")
    assert result.version_id == (version or "")  # the listing named none: GetObject's answer pins it
    assert result.action == f"tagged+{on_infected}d"
    assert s3_client.get_object(Bucket=bucket.name, Key="fine.txt")["Body"].read() == b"fine"


@BUCKET_KINDS
@pytest.mark.parametrize("on_infected", ["quarantine", "delete"])
def test_a_bucket_scan_of_all_versions_removes_each_infected_version_for_good(
    tenant,
    make_linked_bucket,
    make_bucket,
    s3_client,
    django_capture_on_commit_callbacks,
    versioned,
    on_infected,
):
    quarantine = make_bucket()
    bucket = make_linked_bucket(
        tenant, versioned=versioned, on_infected=on_infected, quarantine_bucket=quarantine
    )
    bad = s3_client.put_object(Bucket=bucket.name, Key="doc.txt", Body=EICAR).get("VersionId")
    good = s3_client.put_object(Bucket=bucket.name, Key="doc.txt", Body=b"cleaned up").get("VersionId")
    evil = s3_client.put_object(Bucket=bucket.name, Key="evil.com", Body=EICAR).get("VersionId")
    job = _start(tenant, bucket, "", django_capture_on_commit_callbacks, all_versions=True)
    _run_all(tenant)
    done = _job(tenant, job)
    # Unversioned: the clean upload replaced the first doc.txt, so only evil.com is infected.
    assert (done.status, done.clean_count, done.infected) == (JobStatus.DONE, 1, 2 if versioned else 1)
    assert_gone_for_good(s3_client, bucket.name, "evil.com", evil)
    if versioned:
        assert_gone_for_good(s3_client, bucket.name, "doc.txt", bad)
    listing = s3_client.list_object_versions(Bucket=bucket.name, Prefix="doc.txt")
    assert [v["VersionId"] for v in listing["Versions"]] == [good or "null"]
    assert s3_client.get_object(Bucket=bucket.name, Key="doc.txt")["Body"].read() == b"cleaned up"


@BUCKET_KINDS
def test_a_bucket_scan_tags_the_same_bytes_uploaded_again(
    tenant, make_linked_bucket, s3_client, s3_calls, django_capture_on_commit_callbacks, versioned
):
    bucket = make_linked_bucket(tenant, versioned=versioned)
    _put_many(s3_client, bucket, {"same.txt": b"known bytes", "other.txt": b"untouched"})
    _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    _run_all(tenant)
    next_second()
    _put_many(s3_client, bucket, {"same.txt": b"known bytes"})  # a new object: its tags are gone
    assert s3_client.get_object_tagging(Bucket=bucket.name, Key="same.txt")["TagSet"] == []
    s3_calls.clear()
    second = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    _run_all(tenant)
    again = _job(tenant, second)
    assert (again.status, again.listed, again.skipped, again.scanned) == (JobStatus.DONE, 2, 1, 1)
    assert s3_calls["GetObject"] == 1  # the untouched object is still known
    tags = {
        t["Key"]: t["Value"]
        for t in s3_client.get_object_tagging(Bucket=bucket.name, Key="same.txt")["TagSet"]
    }
    assert tags["scan-result"] == "Clean"


@BUCKET_KINDS
def test_a_redelivered_job_scan_of_malware_uploaded_again_is_scanned_not_skipped(
    tenant,
    make_linked_bucket,
    make_bucket,
    s3_client,
    django_capture_on_commit_callbacks,
    monkeypatch,
    versioned,
):
    # The worker scanned and quarantined, then died before counting: the message comes back after the
    # same bytes were uploaded again. That new object must be scanned and counted, not skipped.
    quarantine = make_bucket()
    bucket = make_linked_bucket(
        tenant, versioned=versioned, on_infected="quarantine", quarantine_bucket=quarantine
    )
    _put_many(s3_client, bucket, {"evil.com": EICAR})
    job = _start(tenant, bucket, "", django_capture_on_commit_callbacks)
    with scope(tenant=tenant):
        drain(queues=("listing",))
    (message,) = queued("scans")
    real_count = jobs.count_scan

    def worker_dies(*args, **kwargs):
        raise SystemExit("worker killed before counting")

    monkeypatch.setattr(jobs, "count_scan", worker_dies)
    with pytest.raises(SystemExit):
        scan_object.fn(*message.args, **message.kwargs)
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket.name)
    monkeypatch.setattr(jobs, "count_scan", real_count)
    version = s3_client.put_object(Bucket=bucket.name, Key="evil.com", Body=EICAR).get("VersionId")
    scan_object.fn(*message.args, **message.kwargs)  # redelivered
    done = _job(tenant, job)
    assert (done.status, done.skipped, done.scanned, done.infected) == (JobStatus.DONE, 0, 1, 1)
    assert_gone_for_good(s3_client, bucket.name, "evil.com", version)


@pytest.mark.django_db(transaction=True)  # two connections, each in autocommit, as two workers
def test_the_last_two_scans_counted_at_once_finish_the_job_once_with_exact_counts(tenant, make_linked_bucket):
    import threading
    import time

    from django.db import connection, transaction

    bucket = make_linked_bucket(tenant)
    with scope(tenant=tenant):
        job = factories.make_job(tenant, bucket, status=JobStatus.SCANNING, listed=3, skipped=1)
        for key in ("a", "b"):
            ScanJobItem.objects.create(tenant=tenant, job=job, dedupe_key=key)
    counted = []

    def other_worker():
        try:
            with scope(tenant=tenant):  # waits for the first one's row lock
                counted.append(jobs.count_scan(str(job.pk), "b", None))
        finally:
            connection.close()

    with transaction.atomic():  # the first count holds the job row until it commits
        assert jobs.count_scan(str(job.pk), "a", None)
        thread = threading.Thread(target=other_worker)
        thread.start()
        time.sleep(0.5)
        with scope(tenant=tenant):
            assert ScanJob.objects.filter(pk=job.pk).values_list("status", flat=True).get() == "scanning"
    thread.join(10)
    assert counted == [True]
    job = _job(tenant, job)
    assert (job.status, job.listed, job.skipped, job.finished_at is not None) == (JobStatus.DONE, 3, 3, True)
    with scope(tenant=tenant):
        assert not ScanJobItem.objects.filter(job_id=job.pk).exists()

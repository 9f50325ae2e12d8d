"""The Scans page: running scans with a progress bar htmx polls until the scan ends, cancel, start,
history; roles, outsiders, bad input, query counts."""

from __future__ import annotations

import pytest
from django_scopes import scope

from accounts.models import Role
from scanning.models import JobStatus, JobTrigger, ScanJob
from tests import factories

pytestmark = pytest.mark.django_db


def _body(response) -> str:
    return response.content.decode()


def _job(tenant, bucket, **fields):
    with scope(tenant=tenant):
        return factories.make_job(tenant, bucket, **fields)


def test_the_page_and_the_nav_both_say_scans(tenant, session_client):
    page = _body(session_client(tenant, Role.VIEWER).get("/jobs/"))
    assert "<h1>Scans</h1>" in page
    assert 'aria-current="page">Scans</a>' in page
    assert "Bucket scans" not in page


def test_a_running_scan_shows_a_progress_bar_that_polls_until_the_scan_ends(
    tenant, session_client, bucket_row
):
    bucket = bucket_row(tenant, name="big-bucket")
    job = _job(
        tenant,
        bucket,
        status=JobStatus.SCANNING,
        listed=200,
        scanned=120,
        skipped=30,
        clean_count=118,
        infected=2,
    )
    client = session_client(tenant, Role.VIEWER)
    page = _body(client.get("/jobs/"))
    assert f'hx-get="/jobs/{job.pk}/progress"' in page and 'hx-trigger="every 2s"' in page
    assert '<progress class="progress" max="200" value="150"' in page
    assert "150 of 200" in page and "2 infected" in page

    fragment = client.get(f"/jobs/{job.pk}/progress")
    assert fragment.status_code == 200
    assert "<html" not in _body(fragment) and 'hx-trigger="every 2s"' in _body(fragment)

    with scope(tenant=tenant):
        ScanJob.objects.filter(pk=job.pk).update(status=JobStatus.DONE, scanned=170)
    done = _body(client.get(f"/jobs/{job.pk}/progress"))
    assert "hx-trigger" not in done and "hx-get" not in done  # finished: the polling stops
    assert 'value="200"' in done and "Done" in done


def test_a_scan_still_listing_says_so(tenant, session_client, bucket_row):
    bucket = bucket_row(tenant)
    _job(tenant, bucket, status=JobStatus.QUEUED)
    page = _body(session_client(tenant, Role.VIEWER).get("/jobs/"))
    assert "Waiting for a worker" in page


def test_an_operator_cancels_a_running_scan(tenant, session_client, bucket_row):
    bucket = bucket_row(tenant)
    job = _job(tenant, bucket, status=JobStatus.LISTING)
    client = session_client(tenant, Role.OPERATOR)
    assert f"/jobs/{job.pk}/cancel" in _body(client.get("/jobs/"))
    response = client.post(f"/jobs/{job.pk}/cancel", follow=True)
    assert "cancelled" in _body(response)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    again = client.post(f"/jobs/{job.pk}/cancel", follow=True)
    assert "This job is cancelled already." in _body(again)


def test_an_operator_starts_a_scan_from_the_scans_page(tenant, session_client, bucket_row):
    bucket = bucket_row(tenant, name="pick-me")
    response = session_client(tenant, Role.OPERATOR).post(
        "/jobs/start", {"bucket": str(bucket.pk), "prefix": "in/"}
    )
    assert response.status_code == 302
    with scope(tenant=tenant):
        job = ScanJob.objects.get(bucket=bucket)
    assert job.prefix == "in/" and job.trigger == JobTrigger.MANUAL and job.status == JobStatus.QUEUED


def test_another_tenants_bucket_cannot_be_scanned_from_the_scans_page(
    tenant, outsider_tenant, session_client, bucket_row
):
    theirs = bucket_row(outsider_tenant, name="their-bucket")
    response = session_client(tenant, Role.OPERATOR).post("/jobs/start", {"bucket": str(theirs.pk)})
    assert response.status_code == 200
    assert any("Select a valid choice" in e for e in response.context["scan_form"].errors["bucket"])
    assert "their-bucket" not in _body(response)
    with scope(tenant=outsider_tenant):
        assert not ScanJob.objects.filter(bucket=theirs).exists()


def test_a_bad_start_is_answered_next_to_the_field(tenant, session_client, bucket_row):
    bucket = bucket_row(tenant)
    response = session_client(tenant, Role.OPERATOR).post(
        "/jobs/start", {"bucket": str(bucket.pk), "modified_before": "2026-13-45T99:00"}
    )
    assert response.status_code == 200
    assert response.context["scan_form"].errors["modified_before"]


def test_the_history_pages_and_costs_the_same_queries_for_few_or_many(
    tenant, session_client, bucket_row, queries_of
):
    bucket = bucket_row(tenant)
    client = session_client(tenant, Role.VIEWER)
    _job(tenant, bucket, status=JobStatus.DONE, prefix="p0/")
    _job(tenant, bucket, status=JobStatus.SCANNING, prefix="running/")
    client.get("/jobs/")
    one = queries_of(client, "/jobs/")
    for n in range(1, 60):
        _job(tenant, bucket_row(tenant), status=JobStatus.DONE, prefix=f"p{n}/")
    for _ in range(5):
        _job(tenant, bucket_row(tenant), status=JobStatus.SCANNING, listed=10)
    assert queries_of(client, "/jobs/") == one
    response = client.get("/jobs/")
    assert len(response.context["history"]) == 50
    assert "Showing 1–50 of 60 scans" in _body(response)
    assert len(client.get("/jobs/?page=2").context["history"]) == 10


def test_a_viewer_sees_no_forms_or_buttons(tenant, session_client, bucket_row):
    _job(tenant, bucket_row(tenant), status=JobStatus.SCANNING, listed=3)
    main = _body(session_client(tenant, Role.VIEWER).get("/jobs/")).split("<main", 1)[1]
    assert "<form" not in main and "Cancel" not in main


@pytest.mark.parametrize("path", ["start", "{id}/cancel"])
def test_a_viewer_may_not_start_or_cancel(tenant, session_client, bucket_row, path):
    bucket = bucket_row(tenant)
    job = _job(tenant, bucket, status=JobStatus.LISTING, prefix="x/")
    response = session_client(tenant, Role.VIEWER).post(
        f"/jobs/{path.format(id=job.pk)}", {"bucket": str(bucket.pk)}
    )
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.LISTING
    with scope(tenant=tenant):
        assert ScanJob.objects.count() == 1


@pytest.mark.parametrize(("method", "path"), [("get", "progress"), ("post", "cancel")])
def test_another_tenants_scan_is_not_found(tenant, outsider_tenant, session_client, bucket_row, method, path):
    theirs = _job(outsider_tenant, bucket_row(outsider_tenant, name="their-bucket"), status=JobStatus.LISTING)
    response = getattr(session_client(tenant, Role.ADMIN), method)(f"/jobs/{theirs.pk}/{path}")
    assert response.status_code == 404
    assert "their-bucket" not in _body(response)
    theirs.refresh_from_db()
    assert theirs.status == JobStatus.LISTING


def test_a_signed_out_poll_sends_the_whole_page_to_the_sign_in(tenant, client, bucket_row):
    job = _job(tenant, bucket_row(tenant), status=JobStatus.LISTING)
    response = client.get(f"/jobs/{job.pk}/progress", HTTP_HX_REQUEST="true")
    assert response.status_code == 401
    assert response["HX-Redirect"] == "/accounts/login/?next=/jobs/"
    assert response.content == b""

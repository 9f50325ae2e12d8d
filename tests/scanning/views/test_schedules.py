"""The Schedules page (under Scans): create, edit, delete cron schedules; the next run in the member's
time zone; roles, outsiders, bad input, query counts."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django_scopes import scope

from accounts.models import AuditEvent, Role
from accounts.services import Actor
from scanning.models import Schedule
from scanning.schedules import services as schedules

pytestmark = pytest.mark.django_db


def _body(response) -> str:
    return response.content.decode()


def _schedule(tenant, bucket, cron="0 2 * * *", **fields):
    with scope(tenant=tenant):
        return schedules.create_schedule(tenant, Actor.system("test"), bucket, cron, **fields)


def test_an_operator_creates_a_schedule(tenant, session_client, bucket_row):
    bucket = bucket_row(tenant, name="nightly-bucket")
    client = session_client(tenant, Role.OPERATOR)
    response = client.post(
        "/jobs/schedules/new",
        {"bucket": str(bucket.pk), "prefix": "in/", "cron": " 0 2 * * * ", "enabled": "on"},
    )
    assert response.status_code == 302 and response["Location"] == "/jobs/schedules/"
    with scope(tenant=tenant):
        schedule = Schedule.objects.get(bucket=bucket)
        assert AuditEvent.objects.filter(tenant=tenant, action="schedule.create").exists()
    assert schedule.cron == "0 2 * * *" and schedule.prefix == "in/" and schedule.enabled
    assert schedule.next_run_at.astimezone(UTC).hour == 2
    page = _body(client.get("/jobs/schedules/"))
    assert "nightly-bucket" in page and "<code>0 2 * * *</code>" in page


def test_the_next_run_is_shown_in_the_members_time_zone(tenant, session_client, bucket_row):
    schedule = _schedule(tenant, bucket_row(tenant), "0 2 * * *")
    client = session_client(tenant, Role.VIEWER)
    client.cookies["s3av_tz"] = "Asia/Tokyo"
    page = _body(client.get("/jobs/schedules/"))
    local = schedule.next_run_at.astimezone(UTC) + timedelta(hours=9)  # Tokyo has no summer time
    assert "your time zone, Asia/Tokyo" in page
    assert f"{local:%Y-%m-%d} 11:00 JST" in page

    client.cookies["s3av_tz"] = "Not/AZone"  # a cookie is client input: ignored when it is no zone
    assert "your time zone, UTC" in _body(client.get("/jobs/schedules/"))


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * * *", "at most once an hour"),
        ("0 2 * *", "five fields"),
        ("0 25 * * *", "is not a valid cron expression"),
        ("@often", "Use one of"),
        ("0 0 31 2 *", "never fires"),
        ("", "This field is required."),
    ],
)
def test_a_bad_cron_is_answered_next_to_the_field(tenant, session_client, bucket_row, cron, message):
    bucket = bucket_row(tenant)
    response = session_client(tenant, Role.OPERATOR).post(
        "/jobs/schedules/new", {"bucket": str(bucket.pk), "cron": cron}
    )
    assert response.status_code == 200
    assert any(message in e for e in response.context["form"].errors["cron"])
    with scope(tenant=tenant):
        assert not Schedule.objects.exists()


def test_an_operator_edits_and_pauses_a_schedule(tenant, session_client, bucket_row):
    bucket = bucket_row(tenant)
    other = bucket_row(tenant, name="other-bucket")
    schedule = _schedule(tenant, bucket)
    client = session_client(tenant, Role.OPERATOR)
    page = _body(client.get(f"/jobs/schedules/{schedule.pk}/"))
    assert 'value="0 2 * * *"' in page
    response = client.post(
        f"/jobs/schedules/{schedule.pk}/", {"bucket": str(other.pk), "prefix": "", "cron": "30 * * * 1-5"}
    )
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.cron == "30 * * * 1-5" and not schedule.enabled and schedule.bucket_id == other.pk
    assert "Paused" in _body(client.get("/jobs/schedules/"))


def test_an_operator_deletes_a_schedule_after_confirming(tenant, session_client, bucket_row):
    schedule = _schedule(tenant, bucket_row(tenant, name="doomed-bucket"))
    client = session_client(tenant, Role.OPERATOR)
    confirm = _body(client.get(f"/jobs/schedules/{schedule.pk}/delete"))
    assert "Delete the schedule of s3://doomed-bucket/?" in confirm
    assert client.post(f"/jobs/schedules/{schedule.pk}/delete").status_code == 302
    with scope(tenant=tenant):
        assert not Schedule.objects.filter(pk=schedule.pk).exists()


def test_the_list_costs_the_same_queries_for_one_schedule_or_many(
    tenant, session_client, bucket_row, queries_of
):
    client = session_client(tenant, Role.VIEWER)
    _schedule(tenant, bucket_row(tenant))
    client.get("/jobs/schedules/")
    one = queries_of(client, "/jobs/schedules/")
    for _ in range(20):
        _schedule(tenant, bucket_row(tenant), "15 * * * *")
    assert queries_of(client, "/jobs/schedules/") == one


def test_a_viewer_sees_no_forms_and_may_not_write(tenant, session_client, bucket_row):
    bucket = bucket_row(tenant)
    schedule = _schedule(tenant, bucket)
    client = session_client(tenant, Role.VIEWER)
    main = _body(client.get("/jobs/schedules/")).split("<main", 1)[1]
    assert "<form" not in main and "Edit" not in main
    assert (
        client.post("/jobs/schedules/new", {"bucket": str(bucket.pk), "cron": "0 * * * *"}).status_code == 403
    )
    assert (
        client.post(
            f"/jobs/schedules/{schedule.pk}/", {"bucket": str(bucket.pk), "cron": "0 * * * *"}
        ).status_code
        == 403
    )
    assert client.post(f"/jobs/schedules/{schedule.pk}/delete").status_code == 403
    schedule.refresh_from_db()
    assert schedule.cron == "0 2 * * *"


@pytest.mark.parametrize(
    ("method", "path"), [("get", ""), ("post", ""), ("get", "delete"), ("post", "delete")]
)
def test_another_tenants_schedule_is_not_found(
    tenant, outsider_tenant, session_client, bucket_row, method, path
):
    theirs = _schedule(outsider_tenant, bucket_row(outsider_tenant, name="their-bucket"))
    mine = bucket_row(tenant)
    response = getattr(session_client(tenant, Role.ADMIN), method)(
        f"/jobs/schedules/{theirs.pk}/{path}", {"bucket": str(mine.pk), "cron": "0 * * * *"}
    )
    assert response.status_code == 404
    assert "their-bucket" not in _body(response)
    with scope(tenant=outsider_tenant):
        assert Schedule.objects.get(pk=theirs.pk).cron == "0 2 * * *"


def test_another_tenants_bucket_cannot_be_scheduled(tenant, outsider_tenant, session_client, bucket_row):
    theirs = bucket_row(outsider_tenant)
    response = session_client(tenant, Role.OPERATOR).post(
        "/jobs/schedules/new", {"bucket": str(theirs.pk), "cron": "0 * * * *"}
    )
    assert response.status_code == 200 and response.context["form"].errors["bucket"]

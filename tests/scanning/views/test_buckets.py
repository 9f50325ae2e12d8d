"""The Buckets pages: protection on and off (with a scan of what it holds), policy, last scan, read gate,
starting a scan of a bucket or prefix; roles, outsiders, bad input, query counts."""

from __future__ import annotations

import json

import pytest
from django_scopes import scope

from accounts.models import Role
from accounts.services import Actor
from scanning.models import Bucket, JobStatus, JobTrigger, ScanJob, ScanPolicy
from tests import factories

pytestmark = pytest.mark.django_db


def _body(response) -> str:
    return response.content.decode()


def _policy(tenant, **fields):
    with scope(tenant=tenant):
        return factories.make_policy(tenant, **fields)


def test_the_list_shows_protection_policy_and_last_scan(tenant, session_client, bucket_row):
    policy = _policy(tenant, name="Strict")
    protected = bucket_row(tenant, name="uploads-bucket", protected=True, policy=policy)
    plain = bucket_row(tenant, name="plain-bucket")
    with scope(tenant=tenant):
        factories.make_job(tenant, protected, status=JobStatus.DONE, infected=2)
    page = _body(session_client(tenant, Role.VIEWER).get("/buckets/"))
    assert f"/buckets/{protected.pk}/" in page and f"/buckets/{plain.pk}/" in page
    assert "Strict" in page
    assert "2 infected" in page
    assert "never" in page  # plain-bucket was never scanned


def test_a_quarantine_bucket_is_not_shown_with_the_default_policy(tenant, session_client, bucket_row):
    bucket_row(tenant, name="the-quarantine")
    bucket_row(tenant, name="ordinary-bucket")
    _policy(tenant, name="Move infected", on_infected="quarantine", quarantine_bucket="the-quarantine")
    response = session_client(tenant, Role.OPERATOR).get("/buckets/")
    rows = {b.name: b.policy_label for b in response.context["buckets"]}
    assert rows["the-quarantine"] == "None (quarantine of Move infected)"
    assert rows["ordinary-bucket"].startswith("Default")
    page = _body(response)
    # Nothing offers to protect the quarantine bucket (s3av would scan its own quarantine copies).
    quarantine = next(b for b in response.context["buckets"] if b.name == "the-quarantine")
    assert f"/buckets/{quarantine.pk}/#protection" not in page


def test_the_list_costs_the_same_queries_for_one_bucket_or_many(
    tenant, session_client, bucket_row, queries_of
):
    client = session_client(tenant, Role.ADMIN)
    first = bucket_row(tenant)
    with scope(tenant=tenant):
        factories.make_job(tenant, first, status=JobStatus.DONE)
    client.get("/buckets/")
    one = queries_of(client, "/buckets/")
    policy = _policy(tenant, name="Other")
    for n in range(30):
        bucket = bucket_row(tenant, policy=policy if n % 2 else None, protected=bool(n % 3))
        with scope(tenant=tenant):
            factories.make_job(tenant, bucket, status=JobStatus.DONE)
    assert queries_of(client, "/buckets/") == one


def test_an_operator_protects_a_bucket_and_scans_what_it_holds(tenant, session_client, make_linked_bucket):
    bucket = make_linked_bucket(tenant)
    client = session_client(tenant, Role.OPERATOR)
    page = _body(client.get(f"/buckets/{bucket.pk}/"))
    assert "Also scan what it already holds" in page
    response = client.post(f"/buckets/{bucket.pk}/protect", {"scan_existing": "on"}, follow=True)
    assert "is protected" in _body(response) and "A scan of what it already holds has started" in _body(
        response
    )
    bucket.refresh_from_db()
    assert bucket.protected and bucket.protection["queue_url"]
    with scope(tenant=tenant):
        assert ScanJob.objects.get(bucket=bucket).trigger == JobTrigger.PROTECT

    response = client.post(f"/buckets/{bucket.pk}/unprotect", {"next": "list"})
    assert response["Location"] == "/buckets/"
    bucket.refresh_from_db()
    assert not bucket.protected and bucket.protection == {}


def test_protecting_without_scanning_what_it_holds_starts_no_scan(tenant, session_client, make_linked_bucket):
    bucket = make_linked_bucket(tenant, versioned=True)
    session_client(tenant, Role.OPERATOR).post(f"/buckets/{bucket.pk}/protect", {})
    bucket.refresh_from_db()
    assert bucket.protected
    with scope(tenant=tenant):
        assert not ScanJob.objects.filter(bucket=bucket).exists()
        from scanning.buckets import protection

        protection.unprotect_bucket(tenant, Actor.system("test"), bucket)


def test_protecting_a_bucket_of_an_unverified_account_says_why(tenant, session_client, bucket_row):
    from tests.factories import make_account

    with scope(tenant=tenant):
        account = make_account(tenant, connected=False)
    bucket = bucket_row(tenant, account=account)
    response = session_client(tenant, Role.OPERATOR).post(f"/buckets/{bucket.pk}/protect", {}, follow=True)
    assert "Verify the bucket&#x27;s account before protecting its buckets." in _body(response)


def test_an_admin_chooses_a_policy_and_a_looping_one_is_refused_next_to_the_field(
    tenant, session_client, bucket_row
):
    bucket = bucket_row(tenant, name="staging-bucket")
    good = _policy(tenant, name="Good")
    looping = _policy(tenant, name="Loop", on_infected="quarantine", quarantine_bucket="elsewhere-bucket")
    client = session_client(tenant, Role.ADMIN)
    assert client.post(f"/buckets/{bucket.pk}/policy", {"policy": str(good.pk)}).status_code == 302
    bucket.refresh_from_db()
    assert bucket.policy_id == good.pk

    with scope(tenant=tenant):
        ScanPolicy.objects.filter(pk=looping.pk).update(quarantine_bucket="staging-bucket")
    response = client.post(f"/buckets/{bucket.pk}/policy", {"policy": str(looping.pk)})
    assert response.status_code == 200
    errors = response.context["policy_form"].errors["policy"]
    assert any("quarantines into staging-bucket itself" in e for e in errors)
    bucket.refresh_from_db()
    assert bucket.policy_id == good.pk

    assert client.post(f"/buckets/{bucket.pk}/policy", {"policy": "default"}).status_code == 302
    bucket.refresh_from_db()
    assert bucket.policy_id is None


def test_another_tenants_policy_cannot_be_chosen(tenant, outsider_tenant, session_client, bucket_row):
    bucket = bucket_row(tenant)
    theirs = _policy(outsider_tenant, name="Theirs")
    response = session_client(tenant, Role.ADMIN).post(
        f"/buckets/{bucket.pk}/policy", {"policy": str(theirs.pk)}
    )
    assert response.status_code == 200
    assert response.context["policy_form"].errors["policy"]
    assert "Theirs" not in _body(response)


def test_the_read_gate_statement_is_shown_and_an_admin_applies_it(
    tenant, session_client, make_linked_bucket, s3_client
):
    bucket = make_linked_bucket(tenant)
    client = session_client(tenant, Role.ADMIN)
    page = _body(client.get(f"/buckets/{bucket.pk}/"))
    assert "S3avDenyReadUnlessClean" in page and 'data-copy="read-gate-json"' in page
    response = client.post(f"/buckets/{bucket.pk}/read-gate")
    assert response.status_code == 302
    policy = json.loads(s3_client.get_bucket_policy(Bucket=bucket.name)["Policy"])
    assert {s["Sid"] for s in policy["Statement"]} >= {"S3avDenyReadUnlessClean", "S3avDenyVerdictTagWrites"}


def test_an_operator_starts_a_scan_of_a_prefix_with_a_window_and_all_versions(
    tenant, session_client, bucket_row
):
    bucket = bucket_row(tenant, versioning="Enabled")
    response = session_client(tenant, Role.OPERATOR).post(
        f"/buckets/{bucket.pk}/scan",
        {
            "prefix": "uploads/2026/",
            "modified_after": "2026-01-01T00:00",
            "modified_before": "2026-02-01T12:30",
            "all_versions": "on",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    with scope(tenant=tenant):
        job = ScanJob.objects.get(bucket=bucket)
    assert job.prefix == "uploads/2026/" and job.all_versions
    assert job.modified_after.isoformat() == "2026-01-01T00:00:00+00:00"
    assert job.modified_before.isoformat() == "2026-02-01T12:30:00+00:00"
    assert job.trigger == JobTrigger.MANUAL


def test_the_time_window_is_read_in_the_members_time_zone(tenant, session_client, bucket_row):
    bucket = bucket_row(tenant)
    client = session_client(tenant, Role.OPERATOR)
    client.cookies["s3av_tz"] = "Asia/Tokyo"
    client.post(f"/buckets/{bucket.pk}/scan", {"modified_after": "2026-01-01T09:00"})
    with scope(tenant=tenant):
        job = ScanJob.objects.get(bucket=bucket)
    assert job.modified_after.isoformat() == "2026-01-01T00:00:00+00:00"  # 09:00 in Tokyo


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"modified_after": "2026-02-01T00:00", "modified_before": "2026-01-01T00:00"},
            "modified_before",
            "Give a time after",
        ),
        ({"modified_after": "yesterday"}, "modified_after", "Enter a valid date/time."),
        ({"prefix": "x" * 1025}, "prefix", "at most 1024 characters"),
    ],
)
def test_a_bad_scan_request_is_answered_next_to_the_field(
    tenant, session_client, bucket_row, fields, field, message
):
    bucket = bucket_row(tenant)
    response = session_client(tenant, Role.OPERATOR).post(f"/buckets/{bucket.pk}/scan", fields)
    assert response.status_code == 200
    assert any(message in e for e in response.context["scan_form"].errors[field])
    with scope(tenant=tenant):
        assert not ScanJob.objects.filter(bucket=bucket).exists()


def test_a_second_scan_of_the_same_target_is_refused_while_one_runs(tenant, session_client, bucket_row):
    bucket = bucket_row(tenant)
    with scope(tenant=tenant):
        factories.make_job(tenant, bucket, prefix="a/", status=JobStatus.LISTING)
    response = session_client(tenant, Role.OPERATOR).post(f"/buckets/{bucket.pk}/scan", {"prefix": "a/"})
    assert response.status_code == 200
    assert any("already running" in e for e in response.context["scan_form"].errors["prefix"])


def test_a_viewer_sees_no_forms_or_buttons(tenant, session_client, bucket_row):
    bucket = bucket_row(tenant)
    client = session_client(tenant, Role.VIEWER)
    for url in ("/buckets/", f"/buckets/{bucket.pk}/"):
        main = _body(client.get(url)).split("<main", 1)[1]
        assert "<form" not in main
        for action in (
            "Protect…",
            "Protect this bucket",
            "Turn off",
            "Start the scan",
            "Add these statements",
        ):
            assert action not in main


@pytest.mark.parametrize(
    ("role", "action", "allowed"),
    [
        (Role.VIEWER, "protect", False),
        (Role.VIEWER, "unprotect", False),
        (Role.VIEWER, "scan", False),
        (Role.VIEWER, "policy", False),
        (Role.VIEWER, "read-gate", False),
        (Role.OPERATOR, "policy", False),
        (Role.OPERATOR, "read-gate", False),
        (Role.OPERATOR, "scan", True),
    ],
)
def test_writes_need_the_apis_roles(tenant, session_client, bucket_row, role, action, allowed):
    bucket = bucket_row(tenant)
    response = session_client(tenant, role).post(f"/buckets/{bucket.pk}/{action}", {"policy": "default"})
    assert (response.status_code != 403) is allowed
    if not allowed:
        with scope(tenant=tenant):
            assert not ScanJob.objects.filter(bucket=bucket).exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("post", "protect"),
        ("post", "unprotect"),
        ("post", "policy"),
        ("post", "read-gate"),
        ("post", "scan"),
    ],
)
def test_another_tenants_bucket_is_not_found(
    tenant, outsider_tenant, session_client, bucket_row, method, path
):
    theirs = bucket_row(outsider_tenant, name="their-secret-bucket")
    response = getattr(session_client(tenant, Role.ADMIN), method)(
        f"/buckets/{theirs.pk}/{path}", {"policy": "default"}
    )
    assert response.status_code == 404
    assert "their-secret-bucket" not in _body(response)
    with scope(tenant=outsider_tenant):
        assert not Bucket.objects.get(pk=theirs.pk).protected
        assert not ScanJob.objects.filter(bucket=theirs).exists()

"""The Findings page: what it lists, its filters, pagination and count, and who sees which buttons."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_scopes import scope

from accounts.models import Role
from scanning.models import Resolution
from scanning.views import keyset

pytestmark = pytest.mark.django_db


def _page(client, query=""):
    response = client.get(f"/findings/{query}")
    assert response.status_code == 200
    return response.content.decode().replace("\xa0", " ")


def test_it_lists_infected_unscannable_and_error_results_of_the_tenant_only(
    tenant, outsider_tenant, session_client, make_db_bucket, make_result
):
    mine, theirs = make_db_bucket(tenant), make_db_bucket(outsider_tenant)
    make_result(tenant, mine, "a/infected.exe", "Infected")
    make_result(tenant, mine, "a/huge.iso", "Unscannable", message="larger than the policy's limit")
    make_result(tenant, mine, "a/locked.bin", "Error", message="AccessDenied")
    make_result(tenant, mine, "a/clean.txt", "Clean")
    make_result(outsider_tenant, theirs, "theirs/infected.exe", "Infected")
    body = _page(session_client(tenant, Role.VIEWER))
    assert "<h1>Findings</h1>" in body
    for key in ("a/infected.exe", "a/huge.iso", "a/locked.bin"):
        assert key in body
    assert "a/clean.txt" not in body
    assert "theirs/infected.exe" not in body and theirs.name not in body
    assert "<strong>3</strong>" in body


def test_a_viewer_sees_no_triage_buttons_and_an_operator_sees_them_for_open_findings(
    tenant, session_client, make_db_bucket, make_result
):
    bucket = make_db_bucket(tenant)
    waiting = make_result(tenant, bucket, "waiting.exe")
    handled = make_result(tenant, bucket, "handled.exe")
    with scope(tenant=tenant):
        handled.resolve(Resolution.DELETED, "someone@example.com")
    viewer = _page(session_client(tenant, Role.VIEWER))
    assert "waiting.exe" in viewer and "handled.exe" in viewer
    assert f"/findings/{waiting.pk}/delete" not in viewer and "/rescan" not in viewer
    operator = _page(session_client(tenant, Role.OPERATOR))
    assert f"/findings/{waiting.pk}/delete" in operator
    assert f"/findings/{waiting.pk}/rescan" in operator
    assert f"/findings/{handled.pk}/delete" not in operator
    assert "The object version was deleted (by an operator)" in operator


def test_filters_apply_together_and_are_shown_with_a_link_that_removes_each(
    tenant, session_client, make_db_bucket, make_result
):
    one, two = make_db_bucket(tenant, "alpha-bucket"), make_db_bucket(tenant, "beta-bucket")
    make_result(tenant, one, "reports/q1.pdf", "Infected")
    make_result(tenant, one, "reports/q2.pdf", "Error")
    make_result(tenant, two, "reports/q3.pdf", "Infected")
    make_result(tenant, one, "images/cat.png", "Infected")
    client = session_client(tenant, Role.VIEWER)
    body = _page(client, f"?verdict=Infected&bucket={one.pk}&q=REPORTS")
    assert "reports/q1.pdf" in body
    assert "q2.pdf" not in body and "q3.pdf" not in body and "cat.png" not in body
    assert "Verdict: Infected" in body and "Bucket: alpha-bucket" in body and "Key contains: REPORTS" in body
    removes = re.findall(r'<a href="([^"]+)" aria-label="Remove the filter ([^"]+)"', body)
    by_filter = {label.split(":")[0]: href.replace("&amp;", "&") for href, label in removes}
    assert set(by_filter) == {"Verdict", "Bucket", "Key contains"}
    without_bucket = _page(client, by_filter["Bucket"])
    assert "reports/q1.pdf" in without_bucket and "reports/q3.pdf" in without_bucket
    assert "q2.pdf" not in without_bucket


def test_it_filters_by_account_state_and_dates_in_the_readers_zone(
    tenant, session_client, make_db_bucket, make_result, make_tenant
):
    bucket = make_db_bucket(tenant)
    # 23:30 UTC on 31 January is 1 February in Berlin (UTC+1).
    late = make_result(tenant, bucket, "late.exe", scanned_at=datetime(2026, 1, 31, 23, 30, tzinfo=UTC))
    make_result(tenant, bucket, "early.exe", scanned_at=datetime(2026, 1, 31, 10, 0, tzinfo=UTC))
    with scope(tenant=tenant):
        late.resolve(Resolution.RELEASED, "x@example.com")
    client = session_client(tenant, Role.VIEWER)
    client.cookies["s3av_tz"] = "Europe/Berlin"
    body = _page(client, "?since=2026-02-01&until=2026-02-01")
    assert "late.exe" in body and "early.exe" not in body
    assert "2026-02-01 00:30:00 CET" in body
    assert "late.exe" not in _page(client, "?state=open")
    assert "late.exe" in _page(client, "?state=resolved")
    account = bucket.account
    assert "late.exe" in _page(client, f"?account={account.pk}")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?verdict=Clean", "Verdict: Select a valid choice."),
        ("?verdict=%00", "Verdict: Select a valid choice."),
        ("?state=closed", "State: Select a valid choice."),
        ("?bucket=not-a-uuid", "Bucket: Select a valid choice."),
        ("?account=00000000-0000-0000-0000-000000000000", "Account: Select a valid choice."),
        ("?since=2026-13-45", "From: Enter a valid date."),
        ("?since=2026-02-02&until=2026-02-01", "To: The end date is before the start date."),
        ("?q=a%00b", "Key contains: Null characters are not allowed."),
        ("?cursor=garbage", "This page link is damaged"),
        ("?cursor=b2xkZXJ8eHx5", "This page link is damaged"),
    ],
)
def test_a_bad_filter_value_is_a_message_on_the_page_not_an_error(
    tenant, session_client, make_db_bucket, make_result, query, message
):
    bucket = make_db_bucket(tenant)
    make_result(tenant, bucket, "still-listed.exe")
    body = _page(session_client(tenant, Role.VIEWER), query)
    assert message in body
    assert "still-listed.exe" in body


def test_another_tenants_bucket_is_not_a_filter_choice(
    tenant, outsider_tenant, session_client, make_db_bucket, make_result
):
    theirs = make_db_bucket(outsider_tenant, "their-private-bucket")
    make_result(outsider_tenant, theirs, "secret.exe")
    body = _page(session_client(tenant, Role.VIEWER), f"?bucket={theirs.pk}")
    assert "Bucket: Select a valid choice." in body
    assert "secret.exe" not in body and "their-private-bucket" not in body


def test_pages_follow_each_other_without_gaps_or_repeats(
    tenant, session_client, make_db_bucket, many_results
):
    bucket = make_db_bucket(tenant)
    many_results(tenant, bucket, keyset.PAGE_SIZE * 2 + 7)
    client = session_client(tenant, Role.VIEWER)
    seen: list[str] = []
    body = _page(client)
    pages = 0
    while True:
        pages += 1
        seen += re.findall(r"bulk/(\d{5})\.bin", body)
        older = re.search(r'<a href="([^"]+)" rel="next">Older</a>', body)
        if older is None:
            break
        body = _page(client, older.group(1).replace("&amp;", "&"))
    assert pages == 3
    assert seen == [f"{i:05d}" for i in range(keyset.PAGE_SIZE * 2 + 6, -1, -1)]
    newer = re.search(r'<a href="([^"]+)" rel="prev">Newer</a>', body)
    assert newer is not None
    back = re.findall(r"bulk/(\d{5})\.bin", _page(client, newer.group(1).replace("&amp;", "&")))
    assert back == seen[keyset.PAGE_SIZE : keyset.PAGE_SIZE * 2]


def test_the_count_is_capped_and_says_so(tenant, session_client, make_db_bucket, many_results, monkeypatch):
    bucket = make_db_bucket(tenant)
    many_results(tenant, bucket, 30)
    monkeypatch.setattr(keyset, "COUNT_CAP", 25)
    body = _page(session_client(tenant, Role.VIEWER))
    assert "<strong>More than 25</strong>" in body


def test_the_page_costs_the_same_queries_for_one_finding_and_for_many(
    tenant, session_client, make_db_bucket, make_result, many_results, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    bucket = make_db_bucket(tenant)
    make_result(tenant, bucket)
    client = session_client(tenant, Role.OPERATOR)
    with CaptureQueriesContext(connection) as one:
        _page(client)
    many_results(tenant, bucket, 120)
    for _ in range(5):
        make_db_bucket(tenant)
    with CaptureQueriesContext(connection) as many:
        _page(client, "?verdict=Infected")
    assert len(many) == len(one)
    assert len(one) <= 12


def test_timestamps_name_their_zone_utc_without_a_cookie_and_a_bad_cookie_is_ignored(
    tenant, session_client, make_db_bucket, make_result
):
    bucket = make_db_bucket(tenant)
    make_result(tenant, bucket, scanned_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    client = session_client(tenant, Role.VIEWER)
    assert '<time datetime="2026-03-01T12:00:00Z">2026-03-01 12:00:00 UTC</time>' in _page(client)
    client.cookies["s3av_tz"] = "Mars/Olympus_Mons"
    assert "2026-03-01 12:00:00 UTC" in _page(client)
    client.cookies["s3av_tz"] = "America/New_York"
    assert "2026-03-01 07:00:00 EST" in _page(client)


def test_the_page_needs_a_role_and_a_sign_in(tenant, session_client, client):
    assert session_client(tenant, Role.NONE).get("/findings/").status_code == 403
    assert client.get("/findings/").status_code == 302


def test_the_old_results_address_redirects_with_its_filters(
    tenant, session_client, make_db_bucket, make_result
):
    response = session_client(tenant, Role.VIEWER).get("/results/?state=open")
    assert response.status_code == 301
    assert response["Location"] == "/findings/?state=open"


def test_the_detail_page_shows_what_the_api_shows(
    tenant, outsider_tenant, session_client, make_db_bucket, make_result
):
    bucket = make_db_bucket(tenant, versioning="Enabled")
    result = make_result(
        tenant,
        bucket,
        "docs/invoice.pdf",
        version_id="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
        message="Heuristics found a macro",
        action="tagged+quarantined",
        quarantine_bucket="quarantine-bucket",
        quarantine_key=f"quarantine/{bucket.name}/x/docs/invoice.pdf",
    )
    body = (
        session_client(tenant, Role.VIEWER)
        .get(f"/findings/{result.pk}/")
        .content.decode()
        .replace("\xa0", " ")
    )
    for shown in (
        "68 bytes",
        result.etag,
        result.sha256,
        "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
        "ClamAV 1.4.3",
        "27810",
        "tagged, moved to quarantine",
        "Heuristics found a macro",
        "Eicar-Signature",
        "s3://quarantine-bucket/quarantine/",
        "UTC</time>",
    ):
        assert shown in body, shown
    assert "/release" not in body and "/delete" not in body  # a viewer
    assert session_client(outsider_tenant, Role.ADMIN).get(f"/findings/{result.pk}/").status_code == 404
    operator = session_client(tenant, Role.OPERATOR).get(f"/findings/{result.pk}/").content.decode()
    assert f"/findings/{result.pk}/release" in operator and f"/findings/{result.pk}/delete" in operator
    assert f"/findings/{result.pk}/rescan" not in operator  # quarantined: nothing is left where it was


def test_the_detail_page_of_a_missing_result_is_404(tenant, session_client):
    client = session_client(tenant, Role.VIEWER)
    assert client.get("/findings/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.get("/findings/not-a-uuid/").status_code == 404


def test_recent_findings_come_first(tenant, session_client, make_db_bucket, make_result):
    bucket = make_db_bucket(tenant)
    now = timezone.now()
    make_result(tenant, bucket, "older.exe", scanned_at=now - timedelta(days=2))
    make_result(tenant, bucket, "newer.exe", scanned_at=now - timedelta(minutes=1))
    body = _page(session_client(tenant, Role.VIEWER))
    assert body.index("newer.exe") < body.index("older.exe")


def test_the_api_answers_in_utc_whatever_the_browsers_zone(
    tenant, session_client, make_db_bucket, make_result
):
    make_result(tenant, make_db_bucket(tenant), scanned_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    client = session_client(tenant, Role.VIEWER)
    client.cookies["s3av_tz"] = "America/New_York"
    row = client.get("/api/v1/results/").json()["results"][0]
    assert row["scanned_at"] == "2026-03-01T12:00:00Z"


def test_the_reading_pages_refuse_a_post(tenant, session_client, make_db_bucket, make_result):
    finding = make_result(tenant, make_db_bucket(tenant))
    operator = session_client(tenant, Role.OPERATOR)
    for path in ("/", "/dashboard/running", "/findings/", "/findings/export.csv", f"/findings/{finding.pk}/"):
        assert operator.post(path).status_code == 405, path
    assert operator.post("/objects/history").status_code == 405

"""CSV export of the filtered findings: streamed from a server-side cursor, spreadsheet-safe cells."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from scanning.views import findings as findings_views

pytestmark = pytest.mark.django_db


def _rows(response):
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"].startswith('attachment; filename="s3av-findings-')
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_it_exports_the_filtered_findings_with_their_details(
    tenant, outsider_tenant, session_client, make_db_bucket, make_result
):
    bucket = make_db_bucket(tenant, "exported-bucket")
    other = make_db_bucket(tenant)
    make_result(tenant, bucket, "a/one.exe", version_id="v1", message="first")
    make_result(tenant, bucket, "a/two.iso", "Unscannable")
    make_result(tenant, other, "b/three.exe")
    make_result(tenant, bucket, "a/clean.txt", "Clean")
    make_result(outsider_tenant, make_db_bucket(outsider_tenant), "a/theirs.exe")
    rows = _rows(session_client(tenant, Role.VIEWER).get(f"/findings/export.csv?bucket={bucket.pk}"))
    assert {r["key"] for r in rows} == {"a/one.exe", "a/two.iso"}
    one = next(r for r in rows if r["key"] == "a/one.exe")
    assert one["bucket"] == "exported-bucket" and one["version_id"] == "v1" and one["verdict"] == "Infected"
    assert one["signatures"] == "Eicar-Signature" and one["message"] == "first"
    assert one["action"] == "tagged" and one["triage_state"] == "open" and one["size"] == "68"
    assert one["account"] == "210987654321" and one["engine"] == "ClamAV 1.4.3"
    assert one["scanned_at"].endswith("+00:00")


def test_the_list_page_links_the_export_with_its_filters(tenant, session_client, make_db_bucket, make_result):
    make_result(tenant, make_db_bucket(tenant))
    body = session_client(tenant, Role.VIEWER).get("/findings/?verdict=Infected&q=eicar").content.decode()
    assert 'href="/findings/export.csv?verdict=Infected&amp;q=eicar"' in body


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_that_starts_like_a_formula_is_prefixed(
    tenant, session_client, make_db_bucket, make_result, start
):
    make_result(tenant, make_db_bucket(tenant), f'{start}HYPERLINK("http://evil")', message=f"{start}1+1")
    rows = _rows(session_client(tenant, Role.VIEWER).get("/findings/export.csv"))
    assert rows[0]["key"] == f'\'{start}HYPERLINK("http://evil")'
    assert rows[0]["message"] == f"'{start}1+1"


def test_the_export_is_streamed_in_chunks_with_queries_that_do_not_grow_with_rows(
    tenant, session_client, make_db_bucket, many_results, monkeypatch
):
    bucket = make_db_bucket(tenant)
    monkeypatch.setattr(findings_views, "EXPORT_CHUNK", 40)
    client = session_client(tenant, Role.VIEWER)

    def export() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            rows = _rows(client.get("/findings/export.csv"))
        return len(rows), len(queries)

    many_results(tenant, bucket, 30)
    small, small_queries = export()
    many_results(tenant, bucket, 270)
    big, big_queries = export()
    assert (small, big) == (30, 300)
    # One SELECT through a server-side cursor (fetched 40 rows at a time), whatever the number of rows.
    assert big_queries == small_queries


def test_the_export_fetches_rows_as_it_writes_them(
    tenant, session_client, make_db_bucket, many_results, monkeypatch
):
    """The first lines are out before the cursor has read the rest: nothing holds all rows."""
    bucket = make_db_bucket(tenant)
    many_results(tenant, bucket, 100)
    monkeypatch.setattr(findings_views, "EXPORT_CHUNK", 10)
    fetched: list[int] = []
    real = findings_views._csv_rows

    def counting(tenant, queryset):
        for n, line in enumerate(real(tenant, queryset)):
            fetched.append(n)
            yield line

    monkeypatch.setattr(findings_views, "_csv_rows", counting)
    response = session_client(tenant, Role.VIEWER).get("/findings/export.csv")
    stream = iter(response.streaming_content)
    next(stream), next(stream)
    assert fetched == [0, 1]  # nothing is produced ahead of the reader
    rest = list(stream)
    assert len(rest) == 99


def test_the_export_needs_a_role_and_drops_a_bad_filter(tenant, session_client, make_db_bucket, make_result):
    make_result(tenant, make_db_bucket(tenant), "x.exe")
    assert session_client(tenant, Role.NONE).get("/findings/export.csv").status_code == 403
    rows = _rows(session_client(tenant, Role.VIEWER).get("/findings/export.csv?verdict=Bogus&since=never"))
    assert [r["key"] for r in rows] == ["x.exe"]


def test_the_exports_memory_does_not_grow_with_its_rows(
    tenant, session_client, make_db_bucket, many_results, monkeypatch
):
    import tracemalloc

    bucket = make_db_bucket(tenant)
    monkeypatch.setattr(findings_views, "EXPORT_CHUNK", 100)
    client = session_client(tenant, Role.VIEWER)

    def peak() -> int:
        response = client.get("/findings/export.csv")
        tracemalloc.start()
        try:
            lines = sum(1 for _ in response.streaming_content)
            return tracemalloc.get_traced_memory()[1], lines
        finally:
            tracemalloc.stop()

    many_results(tenant, bucket, 300, message="x" * 500)
    small, small_lines = peak()
    many_results(tenant, bucket, 2700, message="x" * 500)
    big, big_lines = peak()
    assert (small_lines, big_lines) == (301, 3001)
    # Ten times the rows (each over 500 bytes) in about the same memory: only a chunk is held at once.
    assert big < small * 2, (small, big)

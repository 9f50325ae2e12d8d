import uuid

import pytest
from django_scopes import scope

from accounts.models import Role
from scanning.models import ScanResult

pytestmark = pytest.mark.django_db


def _result(tenant, bucket, key, verdict):
    with scope(tenant=tenant):
        return ScanResult.objects.create(
            tenant=tenant,
            bucket=bucket,
            bucket_name=bucket.name,
            key=key,
            verdict=verdict,
            dedupe_key=uuid.uuid4().hex,
            scanned_at="2026-01-01T00:00:00Z",
        )


@pytest.fixture
def bucket_of(make_linked_bucket):
    return make_linked_bucket


def test_the_results_page_shows_only_the_members_tenant(
    tenant, outsider_tenant, session_client, bucket_of, django_assert_max_num_queries
):
    mine = bucket_of(tenant)
    theirs = bucket_of(outsider_tenant)
    _result(tenant, mine, "mine/eicar.com", "Infected")
    _result(outsider_tenant, theirs, "theirs/secret.txt", "Clean")
    client = session_client(tenant, Role.VIEWER)
    with django_assert_max_num_queries(8):
        body = client.get("/results/").content.decode()
    assert "mine/eicar.com" in body
    assert "theirs/secret.txt" not in body
    assert theirs.name not in client.get("/buckets/").content.decode()
    assert mine.name in client.get("/buckets/").content.decode()


def test_the_results_page_filters_by_verdict(tenant, session_client, bucket_of):
    bucket = bucket_of(tenant)
    _result(tenant, bucket, "a.txt", "Clean")
    _result(tenant, bucket, "b.exe", "Infected")
    body = session_client(tenant, Role.VIEWER).get("/results/?verdict=Infected").content.decode()
    assert "b.exe" in body and "a.txt" not in body


def test_a_member_without_role_sees_no_results(tenant, session_client):
    assert session_client(tenant, Role.NONE).get("/results/").status_code == 403


def test_the_portal_needs_a_sign_in(client):
    assert client.get("/results/").status_code == 302


def test_the_scans_page_lists_only_the_tenants_jobs(tenant, outsider_tenant, session_client, bucket_of):
    from scanning.models import ScanJob

    mine, theirs = bucket_of(tenant), bucket_of(outsider_tenant)
    with scope(tenant=tenant):
        ScanJob.objects.create(tenant=tenant, bucket=mine, prefix="mine/", listed=7)
    with scope(tenant=outsider_tenant):
        ScanJob.objects.create(tenant=outsider_tenant, bucket=theirs, prefix="theirs/")
    body = session_client(tenant, Role.VIEWER).get("/jobs/").content.decode()
    assert f"s3://{mine.name}/mine/" in body
    assert theirs.name not in body


def test_an_operator_releases_a_quarantined_finding_from_the_portal(
    tenant, session_client, make_linked_bucket, make_bucket, s3_client
):
    from scanning.pipeline import services
    from tests.fixtures.scanning import EICAR

    quarantine = make_bucket()
    bucket = make_linked_bucket(tenant, on_infected="quarantine", quarantine_bucket=quarantine)
    etag = s3_client.put_object(Bucket=bucket.name, Key="fp.exe", Body=EICAR)["ETag"]
    with scope(tenant=tenant):
        found = services.run_scan(
            tenant,
            bucket,
            "fp.exe",
            version_id=None,
            etag=etag,
            trigger="event",
            dedupe_key=services.dedupe_key_for(bucket, "fp.exe", None, etag, False),
        )
    operator = session_client(tenant, Role.OPERATOR)
    page = operator.get("/results/").content.decode()
    assert f"/results/{found.pk}/release" in page
    response = operator.post(f"/results/{found.pk}/release", follow=True)
    assert "Released from quarantine" in response.content.decode()
    assert s3_client.get_object(Bucket=bucket.name, Key="fp.exe")["Body"].read() == EICAR
    again = operator.post(f"/results/{found.pk}/release", follow=True)
    assert "already released" in again.content.decode()


def test_a_viewer_cannot_triage_and_an_outsider_gets_404(tenant, outsider_tenant, session_client, bucket_of):
    bucket = bucket_of(tenant)
    result = _result(tenant, bucket, "x.exe", "Infected")
    viewer = session_client(tenant, Role.VIEWER)
    assert "/rescan" not in viewer.get("/results/").content.decode()
    assert viewer.post(f"/results/{result.pk}/rescan").status_code == 403
    outsider = session_client(outsider_tenant, Role.ADMIN)
    assert outsider.post(f"/results/{result.pk}/rescan").status_code == 404
    assert session_client(tenant, Role.OPERATOR).post(f"/results/{result.pk}/explode").status_code == 404


def test_the_portal_lists_open_findings_and_offers_triage_only_for_them(tenant, session_client, bucket_of):
    from scanning.models import Resolution

    bucket = bucket_of(tenant)
    handled = _result(tenant, bucket, "handled.exe", "Infected")
    _result(tenant, bucket, "waiting.exe", "Infected")
    with scope(tenant=tenant):
        handled.resolve(Resolution.DELETED, "someone@example.com")
    operator = session_client(tenant, Role.OPERATOR)
    page = operator.get("/results/?state=open").content.decode()
    assert "waiting.exe" in page and "handled.exe" not in page
    page = operator.get("/results/").content.decode()
    assert "resolved: The object version was deleted" in page
    assert page.count("/delete") == 1  # only the open finding can still be deleted

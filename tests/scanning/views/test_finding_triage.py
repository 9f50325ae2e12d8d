"""Triage from the portal: a confirmation page that says exactly what will happen, then the same
service functions as the API's /results/{id}/rescan|release|delete-object, on versioned and unversioned
buckets of the moto server."""

from __future__ import annotations

import html

import pytest
from django_scopes import scope

from accounts.models import AuditEvent, Role
from scanning.models import ScanResult
from scanning.pipeline import services
from tests.fixtures.scanning import EICAR

pytestmark = pytest.mark.django_db
VERSIONING = pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])


def _scan(tenant, bucket, s3_client, key, body=EICAR):
    put = s3_client.put_object(Bucket=bucket.name, Key=key, Body=body)
    with scope(tenant=tenant):
        return services.run_scan(
            tenant,
            bucket,
            key,
            version_id=put.get("VersionId"),
            etag=put["ETag"],
            trigger="event",
            dedupe_key=services.dedupe_key_for(bucket, key, put.get("VersionId"), put["ETag"], False),
        )


def _versions(s3_client, bucket, key):
    listed = s3_client.list_object_versions(Bucket=bucket.name, Prefix=key).get("Versions", [])
    return {v["VersionId"] for v in listed if v["Key"] == key}


def _text(response):
    return html.unescape(response.content.decode())


@VERSIONING
def test_an_operator_deletes_a_kept_finding_after_reading_what_will_happen(
    tenant, session_client, make_linked_bucket, s3_client, versioned
):
    bucket = make_linked_bucket(tenant, versioned=versioned)  # on_infected: keep (tag only)
    infected = _scan(tenant, bucket, s3_client, "inbox/kept.exe")
    operator = session_client(tenant, Role.OPERATOR)
    page = operator.get(f"/findings/{infected.pk}/delete")
    assert page.status_code == 200
    text = _text(page)
    if versioned:
        assert (
            f"s3://{bucket.name}/inbox/kept.exe (version {infected.version_id}) is deleted permanently"
            in text
        )
        assert (
            "The bucket is versioned: that version itself is removed, not hidden behind a delete marker"
            in text
        )
    else:
        assert f"s3://{bucket.name}/inbox/kept.exe is deleted permanently" in text
        assert "The bucket is not versioned" in text
    # Nothing happened on GET.
    assert s3_client.get_object(Bucket=bucket.name, Key="inbox/kept.exe")["Body"].read() == EICAR

    done = operator.post(f"/findings/{infected.pk}/delete", follow=True)
    assert done.status_code == 200
    assert "Deleted s3://" in _text(done)
    assert s3_client.list_object_versions(Bucket=bucket.name).get("Versions", []) == []
    with scope(tenant=tenant):
        infected.refresh_from_db()
        event = AuditEvent.objects.get(action="result.delete_object")
    assert (infected.triage_state, infected.resolution) == ("resolved", "deleted")
    assert infected.resolved_by == operator.user.email
    assert event.actor_user == operator.user
    # Resolved: the buttons are gone and the page does nothing more.
    assert f"/findings/{infected.pk}/delete" not in _text(operator.get(f"/findings/{infected.pk}/"))
    again = operator.post(f"/findings/{infected.pk}/delete", follow=True)
    assert "resolved already" in _text(again)


@VERSIONING
def test_deleting_through_the_page_keeps_a_newer_upload(
    tenant, session_client, make_linked_bucket, s3_client, versioned
):
    bucket = make_linked_bucket(tenant, versioned=versioned)
    infected = _scan(tenant, bucket, s3_client, "kept.exe")
    newer = s3_client.put_object(Bucket=bucket.name, Key="kept.exe", Body=b"the newer upload")
    response = session_client(tenant, Role.OPERATOR).post(f"/findings/{infected.pk}/delete")
    if versioned:
        assert response.status_code == 302
        assert _versions(s3_client, bucket, "kept.exe") == {newer["VersionId"]}
    else:
        assert response.status_code == 409
        assert "Nothing was done." in _text(response) and "nothing was deleted" in _text(response)
        with scope(tenant=tenant):
            infected.refresh_from_db()
        assert infected.triage_state == "open"
    assert s3_client.get_object(Bucket=bucket.name, Key="kept.exe")["Body"].read() == b"the newer upload"


@VERSIONING
def test_an_operator_releases_a_quarantined_false_positive(
    tenant, session_client, make_linked_bucket, make_bucket, s3_client, versioned
):
    quarantine = make_bucket(versioned=versioned)
    bucket = make_linked_bucket(
        tenant, versioned=versioned, on_infected="quarantine", quarantine_bucket=quarantine
    )
    infected = _scan(tenant, bucket, s3_client, "inbox/report.exe")
    assert infected.quarantine_key
    operator = session_client(tenant, Role.OPERATOR)
    detail = _text(operator.get(f"/findings/{infected.pk}/"))
    assert f"/findings/{infected.pk}/release" in detail
    text = _text(operator.get(f"/findings/{infected.pk}/release"))
    assert f"The quarantined copy s3://{quarantine}/{infected.quarantine_key}" in text
    assert (
        f"is copied back to s3://{bucket.name}/inbox/report.exe and tagged scan-result=InfectedAllowed"
        in text
    )
    assert ("becomes the key's current version" in text) == versioned

    done = operator.post(f"/findings/{infected.pk}/release", follow=True)
    assert "Released: s3://" in _text(done)
    assert s3_client.get_object(Bucket=bucket.name, Key="inbox/report.exe")["Body"].read() == EICAR
    assert "Versions" not in s3_client.list_object_versions(Bucket=quarantine)
    with scope(tenant=tenant):
        infected.refresh_from_db()
        assert ScanResult.objects.filter(verdict="InfectedAllowed", key="inbox/report.exe").count() == 1
        assert AuditEvent.objects.filter(action="result.release", actor_user=operator.user).count() == 1
    assert (infected.triage_state, infected.resolution) == ("resolved", "released")


@VERSIONING
def test_a_release_onto_a_newer_upload_asks_before_replacing_it(
    tenant, session_client, make_linked_bucket, make_bucket, s3_client, versioned
):
    quarantine = make_bucket(versioned=versioned)
    bucket = make_linked_bucket(
        tenant, versioned=versioned, on_infected="quarantine", quarantine_bucket=quarantine
    )
    infected = _scan(tenant, bucket, s3_client, "inbox/report.exe")
    s3_client.put_object(Bucket=bucket.name, Key="inbox/report.exe", Body=b"the newer upload")
    operator = session_client(tenant, Role.OPERATOR)
    refused = operator.post(f"/findings/{infected.pk}/release")
    assert refused.status_code == 409
    text = _text(refused)
    assert "Nothing was done." in text and 'name="overwrite"' in text
    assert ("noncurrent version" in text) == versioned and ("lost for good" in text) == (not versioned)
    current = s3_client.get_object(Bucket=bucket.name, Key="inbox/report.exe")["Body"].read()
    assert current == b"the newer upload"
    released = operator.post(f"/findings/{infected.pk}/release", {"overwrite": "yes"})
    assert released.status_code == 302
    assert s3_client.get_object(Bucket=bucket.name, Key="inbox/report.exe")["Body"].read() == EICAR


def test_an_operator_queues_a_rescan_and_is_told_what_follows(
    tenant, session_client, make_linked_bucket, s3_client, django_capture_on_commit_callbacks
):
    from scanning.pipeline.services import scan_object

    bucket = make_linked_bucket(tenant, versioned=True)
    infected = _scan(tenant, bucket, s3_client, "kept.exe")
    operator = session_client(tenant, Role.OPERATOR)
    text = _text(operator.get(f"/findings/{infected.pk}/rescan"))
    assert f"A new scan of s3://{bucket.name}/kept.exe (version {infected.version_id}) is queued" in text
    assert f"the policy 'policy for {bucket.name}' applies: keep (tag only)" in text
    scan_object.broker.flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        done = operator.post(f"/findings/{infected.pk}/rescan", follow=True)
    assert "is queued" in _text(done)
    assert scan_object.broker.queues["scans"].qsize() == 1
    scan_object.broker.flush_all()
    with scope(tenant=tenant):
        assert AuditEvent.objects.filter(action="scan.request", actor_user=operator.user).count() == 1


def test_a_viewer_gets_403_on_every_triage_page_and_an_outsider_404(
    tenant, outsider_tenant, session_client, make_db_bucket, make_result
):
    bucket = make_db_bucket(tenant)
    finding = make_result(tenant, bucket, "x.exe")
    viewer = session_client(tenant, Role.VIEWER)
    outsider = session_client(outsider_tenant, Role.ADMIN)
    for what in ("rescan", "release", "delete"):
        assert viewer.get(f"/findings/{finding.pk}/{what}").status_code == 403
        assert viewer.post(f"/findings/{finding.pk}/{what}").status_code == 403
        assert outsider.get(f"/findings/{finding.pk}/{what}").status_code == 404
        assert outsider.post(f"/findings/{finding.pk}/{what}").status_code == 404
    assert session_client(tenant, Role.OPERATOR).post(f"/findings/{finding.pk}/explode").status_code == 404
    with scope(tenant=tenant):
        finding.refresh_from_db()
        assert not AuditEvent.objects.filter(action__startswith="result.").exists()
    assert finding.triage_state == "open"


def test_a_clean_result_offers_no_triage(tenant, session_client, make_db_bucket, make_result):
    clean = make_result(tenant, make_db_bucket(tenant), "fine.txt", "Clean")
    operator = session_client(tenant, Role.OPERATOR)
    page = _text(operator.get(f"/findings/{clean.pk}/"))
    assert "Scan result" in page and f"/findings/{clean.pk}/delete" not in page
    refused = operator.post(f"/findings/{clean.pk}/delete", follow=True)
    assert "nothing left to triage" in _text(refused) or "resolved" in _text(refused)


def test_the_old_triage_address_leads_to_the_confirmation_not_to_the_action(
    tenant, session_client, make_db_bucket, make_result
):
    finding = make_result(tenant, make_db_bucket(tenant), "x.exe")
    response = session_client(tenant, Role.OPERATOR).post(f"/results/{finding.pk}/delete")
    assert response.status_code == 302 and response["Location"] == f"/findings/{finding.pk}/delete"
    with scope(tenant=tenant):
        finding.refresh_from_db()
    assert finding.triage_state == "open"


def test_a_confirmation_post_needs_the_csrf_token(tenant, session_client, make_db_bucket, make_result):
    from rest_framework.test import APIClient

    finding = make_result(tenant, make_db_bucket(tenant), "x.exe")
    signed_in = session_client(tenant, Role.OPERATOR)
    strict = APIClient(enforce_csrf_checks=True)
    strict.force_login(signed_in.user)
    assert strict.post(f"/findings/{finding.pk}/delete").status_code == 403

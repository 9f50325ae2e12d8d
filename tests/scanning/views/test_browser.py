"""The findings pages in a real browser (Debian's chromium through Playwright) against the live server,
with a worker process on RabbitMQ, clamd and the moto S3 endpoint making the findings.

An operator releases one finding and deletes another through their confirmation pages and exports the
list as CSV; a viewer sees no action buttons. Screenshots of every page, at desktop and phone width,
go to the screenshot folder for a person to look at.
"""

from __future__ import annotations

import csv
import io
import time

import pytest
from django_scopes import scope, scopes_disabled

from scanning import services
from scanning.actors import scan_object
from scanning.models import ScanResult
from tests.fixtures.scanning import EICAR

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _finding(tenant, bucket, s3_client, rabbitmq_broker, key, worker):
    put = s3_client.put_object(Bucket=bucket.name, Key=key, Body=EICAR)
    with scope(tenant=tenant):
        dedupe = services.dedupe_key_for(bucket, key, put.get("VersionId"), put["ETag"], False)
    rabbitmq_broker.enqueue(
        scan_object.message(
            str(tenant.pk),
            str(bucket.pk),
            key,
            version_id=put.get("VersionId"),
            etag=put["ETag"],
            trigger="event",
            dedupe_key=dedupe,
        )  # fmt: skip
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with scopes_disabled():
            found = ScanResult.objects.filter(dedupe_key=dedupe, action_status="done").first()
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no finding for {key}\n{worker.log()}")


@pytest.fixture
def findings_world(tenant, make_linked_bucket, make_bucket, s3_client, start_worker, rabbitmq_broker):
    """Two real findings made by a worker: one quarantined (unversioned), one kept (versioned)."""
    quarantine = make_bucket()
    inbox = make_linked_bucket(tenant, on_infected="quarantine", quarantine_bucket=quarantine)
    archive = make_linked_bucket(tenant, versioned=True)  # keep: tag only
    worker = start_worker()
    released = _finding(tenant, inbox, s3_client, rabbitmq_broker, "inbox/false-positive.exe", worker)
    deleted = _finding(tenant, archive, s3_client, rabbitmq_broker, "archive/eicar.com", worker)
    waiting = _finding(tenant, inbox, s3_client, rabbitmq_broker, "inbox/still-open.exe", worker)
    assert released.verdict == deleted.verdict == waiting.verdict == "Infected"
    assert released.quarantine_key and not deleted.quarantine_key
    return {
        "inbox": inbox, "archive": archive, "quarantine": quarantine,
        "release": released, "delete": deleted, "open": waiting,
    }  # fmt: skip


def test_an_operator_triages_findings_and_exports_them_and_a_viewer_sees_no_buttons(
    live_server, findings_world, tenant, s3_client, browser_session, screenshot
):
    world = findings_world
    release, delete = world["release"], world["delete"]
    operator = browser_session(tenant, "operator", timezone_id="Europe/Berlin")
    page = operator.new_page()
    page.goto(f"{live_server.url}/")
    screenshot(page, "dashboard")
    page.goto(f"{live_server.url}/findings/")  # the second page has the browser's zone from its cookie
    assert page.locator("h1").inner_text() == "Findings"
    assert "CET" in page.locator("tbody time").first.inner_text()
    waiting = world["open"]
    assert page.locator(f'a[href="/findings/{waiting.pk}/delete"]').count() == 1
    screenshot(page, "findings")

    # Release the quarantined false positive through its confirmation page.
    page.click(f'a[href="/findings/{release.pk}/release"]')
    plan = page.locator("#triage-plan").inner_text()
    assert f"s3://{world['inbox'].name}/inbox/false-positive.exe" in plan and "InfectedAllowed" in plan
    screenshot(page, "confirm-release")
    page.click("button:has-text('Release')")
    assert "Released: s3://" in page.locator(".messages").inner_text()
    assert (
        s3_client.get_object(Bucket=world["inbox"].name, Key="inbox/false-positive.exe")["Body"].read()
        == EICAR
    )
    screenshot(page, "finding-released")

    # Delete the kept one from its detail page: permanent, the version itself.
    page.goto(f"{live_server.url}/findings/{delete.pk}/")
    screenshot(page, "finding-detail")
    page.click("a:has-text('Delete')")
    assert "that version itself is removed" in page.locator("#triage-plan").inner_text()
    screenshot(page, "confirm-delete")
    page.click("button:has-text('Delete permanently')")
    assert "Deleted s3://" in page.locator(".messages").inner_text()
    assert s3_client.list_object_versions(Bucket=world["archive"].name).get("Versions", []) == []
    page.click("a:has-text('Every verdict of this key')")
    assert page.locator("h1").inner_text() == "Object history"
    assert "result.delete_object" in page.content()
    screenshot(page, "object-history")

    # Export the (filtered) list and read the file.
    page.goto(f"{live_server.url}/findings/?verdict=Infected")
    with page.expect_download() as download:
        page.click("a:has-text('Export CSV')")
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    by_key = {r["key"]: r for r in rows}
    assert set(by_key) == {"inbox/false-positive.exe", "archive/eicar.com", "inbox/still-open.exe"}
    assert by_key["inbox/false-positive.exe"]["resolution"] == "released"
    assert by_key["archive/eicar.com"]["resolution"] == "deleted"
    operator.close()

    assert by_key["inbox/still-open.exe"]["triage_state"] == "open"

    open_one = world["open"]
    viewer = browser_session(tenant, "viewer")
    page = viewer.new_page()
    page.goto(f"{live_server.url}/findings/")
    assert page.locator("tbody tr").count() == 3
    assert page.locator(".row-actions .btn").count() == 0
    screenshot(page, "findings-viewer")
    page.goto(f"{live_server.url}/findings/{open_one.pk}/")
    assert page.locator(".page-header__actions a").count() == 0
    assert page.get_by_role("button").filter(has_text="Delete").count() == 0
    screenshot(page, "findings-viewer-detail")
    viewer.close()

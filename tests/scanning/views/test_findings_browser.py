"""The findings pages in a real browser (Debian's chromium through Playwright) against the live server,
with a worker process on RabbitMQ, clamd and the moto S3 endpoint making the findings.

An operator releases one finding and deletes another through their confirmation pages and exports the
list as CSV; a viewer sees no action buttons. Screenshots of every page, at desktop and phone width,
go to the screenshot folder (tests/fixtures/browser.py) for a person to look at; at phone width no page
may scroll sideways.
"""

from __future__ import annotations

import csv
import io
import time

import pytest
from django_scopes import scope, scopes_disabled

from scanning.models import ScanResult
from scanning.pipeline import services
from scanning.pipeline.services import scan_object
from tests.fixtures.browser import DESKTOP, PortalBrowser
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


# Elements wider than the phone's screen, outside the strips that scroll sideways on their own (a
# table's wrap, the nav's row of links on a phone).
_TOO_WIDE = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
    .filter(e => !e.closest('.table-wrap, .mainnav'))
    .map(e => e.tagName + '.' + e.className)"""


def _shots(portal: PortalBrowser, name: str) -> None:
    portal.desktop()
    portal.screenshot(f"findings-pages/{name}-desktop")
    portal.phone()
    wide = portal.page.evaluate(_TOO_WIDE)
    assert not wide, f"{name} is wider than a phone: {wide[:8]}"
    portal.screenshot(f"findings-pages/{name}-phone")
    portal.desktop()


def test_an_operator_triages_findings_and_exports_them_and_a_viewer_sees_no_buttons(
    live_server, findings_world, tenant, s3_client, portal_browser, portal_user
):
    world = findings_world
    release, delete, waiting = world["release"], world["delete"], world["open"]
    # The operator's browser is in Berlin: the pages show its time zone once timezone.js has told them.
    context = portal_browser.page.context.browser.new_context(
        viewport=DESKTOP, timezone_id="Europe/Berlin", accept_downloads=True
    )
    operator = PortalBrowser(context.new_page(), live_server.url)
    operator.sign_in(portal_user(tenant, "operator"))
    operator.goto("/")
    assert operator.text("h1") == "Dashboard"
    assert {"name": "s3av_tz", "value": "Europe/Berlin"}.items() <= next(
        c for c in context.cookies() if c["name"] == "s3av_tz"
    ).items()
    _shots(operator, "dashboard")
    operator.page.click("nav >> text=Findings")
    assert operator.text("h1") == "Findings"
    assert operator.page.locator("tbody time").first.inner_text().endswith("CET")
    assert operator.page.locator(f'a[href="/findings/{waiting.pk}/delete"]').count() == 1
    _shots(operator, "findings")

    # Release the quarantined false positive through its confirmation page.
    operator.page.click(f'a[href="/findings/{release.pk}/release"]')
    plan = operator.text("#triage-plan")
    assert f"s3://{world['inbox'].name}/inbox/false-positive.exe" in plan and "InfectedAllowed" in plan
    _shots(operator, "confirm-release")
    operator.page.click("main button:has-text('Release')")
    assert "Released: s3://" in operator.text(".messages")
    back = s3_client.get_object(Bucket=world["inbox"].name, Key="inbox/false-positive.exe")
    assert back["Body"].read() == EICAR
    _shots(operator, "finding-released")

    # Delete the kept one from its detail page: permanent, the version itself.
    operator.goto(f"/findings/{delete.pk}/")
    _shots(operator, "finding-detail")
    operator.page.click(".page-header__actions a:has-text('Delete')")
    assert "that version itself is removed" in operator.text("#triage-plan")
    _shots(operator, "confirm-delete")
    operator.page.click("main button:has-text('Delete permanently')")
    assert "Deleted s3://" in operator.text(".messages")
    assert s3_client.list_object_versions(Bucket=world["archive"].name).get("Versions", []) == []
    operator.page.click("a:has-text('Every verdict of this key')")
    assert operator.text("h1") == "Object history"
    assert "result.delete_object" in operator.text()
    _shots(operator, "object-history")

    # Export the filtered list and read the file.
    operator.goto("/findings/?verdict=Infected")
    _shots(operator, "findings-filtered")
    with operator.page.expect_download() as download:
        operator.page.click("a:has-text('Export CSV')")
    with open(download.value.path(), encoding="utf-8") as exported:
        by_key = {row["key"]: row for row in csv.DictReader(io.StringIO(exported.read()))}
    assert set(by_key) == {"inbox/false-positive.exe", "archive/eicar.com", "inbox/still-open.exe"}
    assert by_key["inbox/false-positive.exe"]["resolution"] == "released"
    assert by_key["archive/eicar.com"]["resolution"] == "deleted"
    assert by_key["inbox/still-open.exe"]["triage_state"] == "open"
    assert operator.problems == [], operator.problems
    context.close()

    # A viewer sees the same findings and no button that would change anything.
    portal_browser.sign_in(portal_user(tenant, "viewer"))
    portal_browser.goto("/findings/")
    assert portal_browser.page.locator("main tbody tr").count() == 3
    assert portal_browser.page.locator(".row-actions .btn").count() == 0
    _shots(portal_browser, "findings-viewer")
    portal_browser.goto(f"/findings/{waiting.pk}/")
    assert portal_browser.page.locator(".page-header__actions a").count() == 0
    assert portal_browser.page.locator("main form[method=post]").count() == 0
    _shots(portal_browser, "finding-viewer")

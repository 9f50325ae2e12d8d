"""The set-up pages in a real browser (Debian's chromium through Playwright), against the local S3
endpoint (moto's server): link an account through the wizard, protect a bucket, watch a scan's progress
bar reach the end (gunicorn, a RabbitMQ worker and clamd), add a webhook channel and send a test, and a
viewer who is offered no action. Every page is photographed at desktop and phone width
(tests/fixtures/browser.py names the folder)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from django_scopes import scope

from accounts.models import Role
from linked_accounts.models import AwsAccount, AwsOrganization
from scanning.models import Bucket, JobStatus, NotificationChannel, ScanJob
from tests.factories import (
    MOTO_ACCOUNT,
    MOTO_ROLE,
    make_account,
    make_bucket_row,
    make_channel,
    make_job,
    make_policy,
)
from tests.fixtures.browser import CHROMIUM, DESKTOP, PortalBrowser, _needs_browser
from tests.fixtures.scanning import EICAR

pytestmark = [pytest.mark.django_db(transaction=True)]


def _both_widths(portal: PortalBrowser, name: str) -> None:
    portal.desktop()
    portal.screenshot(f"setup-{name}")
    portal.phone()
    portal.screenshot(f"setup-{name}-phone")
    portal.desktop()


def test_an_admin_links_an_account_through_the_wizard_and_protects_a_bucket(
    portal_browser, portal_user, tenant, aws_endpoint, make_bucket, s3_client
):
    name = make_bucket()
    s3_client.put_object(Bucket=name, Key="already/there.txt", Body=b"hello")
    portal = portal_browser
    portal.sign_in(portal_user(tenant, Role.ADMIN))
    page = portal.page

    portal.goto("/linked-accounts/")
    _both_widths(portal, "accounts-empty")
    page.click("text=Link an account")
    page.fill("input[name=account_id]", MOTO_ACCOUNT)
    page.fill("input[name=name]", "Production")
    _both_widths(portal, "accounts-new")
    page.click("button:has-text('Add the account')")
    page.wait_for_url("**/linked-accounts/*/")
    with scope(tenant=tenant):
        account = AwsAccount.objects.get(tenant=tenant)
    assert account.external_id in portal.text()
    _both_widths(portal, "account-deploy")

    with page.expect_download() as download:
        page.click("text=CloudFormation template (YAML)")
    template = yaml.safe_load(open(download.value.path()).read())
    trust = template["Resources"]["S3avRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Condition"]["StringEquals"]["sts:ExternalId"] == account.external_id

    page.fill("input[name=role_arn]", "arn:aws:iam::999999999999:role/s3av-scanner")
    page.click("button:has-text('Verify')")
    assert "belongs to account 999999999999" in portal.text()
    _both_widths(portal, "account-verify-error")
    page.fill("input[name=role_arn]", MOTO_ROLE)
    page.click("button:has-text('Verify')")
    page.wait_for_url("**#discover")
    assert "The role works" in portal.text()
    page.click("button:has-text('Discover buckets')")
    page.wait_for_url("**#buckets")
    assert name in portal.text()
    _both_widths(portal, "account-discovered")

    page.click(f"#buckets >> text={name}")
    page.wait_for_url("**/buckets/*/")
    assert page.is_checked("input[name=scan_existing]")
    _both_widths(portal, "bucket")
    page.click("button:has-text('Protect this bucket')")
    page.wait_for_load_state()
    assert "is protected" in portal.text()
    with scope(tenant=tenant):
        bucket = Bucket.objects.get(tenant=tenant, name=name)
        assert bucket.protected
        assert ScanJob.objects.filter(bucket=bucket).exists()  # "also scan what it already holds"
    _both_widths(portal, "bucket-protected")
    portal.goto("/buckets/")
    _both_widths(portal, "buckets")

    # Take it back down through the account's removal, which reports what it removed.
    portal.goto(f"/linked-accounts/{account.pk}/remove")
    _both_widths(portal, "account-remove")
    page.click("button:has-text('Remove the account')")
    page.wait_for_load_state()
    assert f"event notification s3av-{bucket.pk} on s3://{name}" in portal.text()
    _both_widths(portal, "account-removed")


@pytest.fixture
def web_browser(start_process, rabbitmq_broker, s3_endpoint) -> Iterator[tuple[PortalBrowser, Any]]:
    """A browser on gunicorn (the web process), whose scans reach a real worker through RabbitMQ."""
    sync_api = _needs_browser()
    web = start_process("web", S3AV_SECURE_COOKIES="false", S3AV_ALLOW_HTTP_WEBHOOKS="true")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context(viewport=DESKTOP, timezone_id="Europe/Paris")
            portal = PortalBrowser(context.new_page(), web.url)
            yield portal, web
            context.close()
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    assert portal.problems == [], "the pages broke the CSP or raised errors:\n" + "\n".join(portal.problems)


def test_a_scans_progress_bar_reaches_the_end_without_reloading_the_page(
    web_browser, portal_user, tenant, make_linked_bucket, s3_client, start_worker
):
    portal, web = web_browser
    bucket = make_linked_bucket(tenant)
    for n in range(40):
        s3_client.put_object(Bucket=bucket.name, Key=f"batch/file-{n:03}.txt", Body=f"file {n}".encode())
    s3_client.put_object(Bucket=bucket.name, Key="batch/eicar.com", Body=EICAR)
    worker = start_worker()
    portal.sign_in(portal_user(tenant, Role.OPERATOR))
    page = portal.page

    portal.goto(f"/buckets/{bucket.pk}/")
    page.fill("input[name=prefix]", "batch/")
    page.click("button:has-text('Start the scan')")
    page.wait_for_url("**/jobs/")
    card = page.locator("[id^=job-]").first
    page.evaluate("window.s3avSamePage = true")  # gone if the page reloads
    _both_widths(portal, "scans-running")
    try:
        page.wait_for_selector("[id^=job-][data-status=done]", timeout=120_000)
    except Exception:
        raise AssertionError(
            f"the scan did not finish:\n{worker.log()[-4000:]}\n{web.log()[-2000:]}"
        ) from None
    assert page.evaluate("window.s3avSamePage") is True
    bar = card.locator("progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "41"
    assert "41 of 41" in card.inner_text() and "1 infected" in card.inner_text()
    _both_widths(portal, "scans-done")
    with scope(tenant=tenant):
        job = ScanJob.objects.get(bucket=bucket)
    assert job.status == JobStatus.DONE and job.infected == 1 and job.clean_count == 40

    # Schedules: the next run in the browser's time zone (Europe/Paris).
    portal.goto("/jobs/schedules/")
    page.select_option("select[name=bucket]", str(bucket.pk))
    page.fill("input[name=cron]", "0 2 * * *")
    page.click("button:has-text('Create the schedule')")
    page.wait_for_load_state()
    text = portal.text()
    assert "your time zone, Europe/Paris" in text and ("03:00 CET" in text or "04:00 CEST" in text)
    _both_widths(portal, "schedules")


def test_an_admin_writes_a_policy_adds_a_webhook_channel_and_sends_a_test(
    portal_browser, portal_user, tenant, webhook_receiver
):
    portal = portal_browser
    portal.sign_in(portal_user(tenant, Role.ADMIN))
    page = portal.page

    portal.goto("/settings/policies/")
    _both_widths(portal, "policies-empty")
    page.click("text=New policy")
    page.fill("input[name=name]", "Quarantine infected")
    page.select_option("select[name=on_infected]", "quarantine")
    page.click("button:has-text('Create the policy')")
    assert "Name the bucket that quarantined objects move to." in portal.text()
    _both_widths(portal, "policy-error")
    page.fill("input[name=quarantine_bucket]", "acme-quarantine")
    page.click("button:has-text('Create the policy')")
    page.wait_for_url("**/settings/policies/*/")
    summary = portal.text("section")
    assert (
        "Infected files are tagged scan-result=Infected and moved to the quarantine bucket acme-quarantine"
        in summary
    )
    _both_widths(portal, "policy")
    portal.goto("/settings/policies/")
    _both_widths(portal, "policies")
    portal.goto("/settings/channels/")
    _both_widths(portal, "channels-empty")
    page.click("text=New channel")
    page.fill("input[name=name]", "SecOps")
    page.check("input[name=kind][value=webhook]")
    page.fill("input[name=target]", "http://10.0.0.1/private")
    page.click("button:has-text('Create the channel')")
    assert "The URL points to a private" in portal.text()  # loopback is allowed here, not private ranges
    _both_widths(portal, "channel-error")
    page.fill("input[name=target]", webhook_receiver.url)
    page.check("input[name=results][value=Error]")
    page.click("button:has-text('Create the channel')")
    page.wait_for_load_state()
    with scope(tenant=tenant):
        channel = NotificationChannel.objects.get(tenant=tenant)
    assert channel.secret in portal.text("#webhook-secret")
    _both_widths(portal, "channel-created")
    page.click("button:has-text('Send a test')")
    page.wait_for_load_state()
    assert "A test message was delivered to 'SecOps'." in portal.text()
    assert json.loads(webhook_receiver.requests[-1][1])["notificationType"] == "test"
    assert "Delivered" in portal.text("table")
    _both_widths(portal, "channels")
    page.click("text=Edit")
    _both_widths(portal, "channel-edit")


def test_a_viewer_is_offered_no_action_on_the_setup_pages(portal_browser, portal_user, tenant):
    with scope(tenant=tenant):
        account = make_account(tenant, name="Production")
        policy = make_policy(
            tenant, name="Quarantine", on_infected="quarantine", quarantine_bucket="the-quarantine"
        )
        bucket = make_bucket_row(tenant, account, name="uploads-bucket", protected=True, policy=policy)
        make_bucket_row(tenant, account, name="the-quarantine")
        make_job(tenant, bucket, status=JobStatus.SCANNING, listed=10, scanned=4)
        make_channel(tenant, name="Email", kind="email")
        AwsOrganization.objects.create(tenant=tenant, name="Acme organisation")
    portal = portal_browser
    portal.sign_in(portal_user(tenant, Role.VIEWER))
    pages = {
        "viewer-accounts": "/linked-accounts/",
        "viewer-account": f"/linked-accounts/{account.pk}/",
        "viewer-buckets": "/buckets/",
        "viewer-bucket": f"/buckets/{bucket.pk}/",
        "viewer-scans": "/jobs/",
        "viewer-schedules": "/jobs/schedules/",
        "viewer-policies": "/settings/policies/",
        "viewer-policy": f"/settings/policies/{policy.pk}/",
        "viewer-channels": "/settings/channels/",
    }
    for name, path in pages.items():
        portal.goto(path)
        main = portal.page.locator("main")
        # Copy buttons (external id, read-gate statement) and template downloads are reading, not acting.
        actions = main.locator("form, button:not([data-copy]), a.btn:not([download])")
        assert actions.count() == 0, f"{path} offers a viewer: {actions.all_inner_texts()}"
        _both_widths(portal, name)

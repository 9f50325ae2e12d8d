"""The portal's frame in a real browser: keyboard, phone width, and every existing page under the CSP.

The browser fixture (tests/fixtures/browser.py) fails a test whose pages break the Content-Security-
Policy or raise a JavaScript error; screenshots land in var/screenshots/ (or $S3AV_SCREENSHOTS).
"""

from __future__ import annotations

import re

from django_scopes import scope

from accounts.models import Role
from tests import factories

IN_NAV = "document.activeElement.closest('nav.mainnav') ? document.activeElement.textContent : ''"


def _findings(tenant, bucket, count=3):
    with scope(tenant=tenant):
        verdicts = ["Infected", "Clean", "Unscannable", "Error"] * count
        for n, verdict in zip(range(count), verdicts, strict=False):
            factories.make_result(
                tenant,
                bucket,
                f"uploads/2026/customer-{n}/a-rather-long-object-name-{n}.zip",
                verdict,
                signatures=["Eicar-Signature"] if verdict == "Infected" else [],
                scanned_at="2026-01-01T00:00:00Z",
            )


def test_the_skip_link_is_the_first_stop_and_the_nav_is_reachable_by_keyboard(
    portal_browser, tenant, portal_user
):
    portal_browser.sign_in(portal_user(tenant, Role.ADMIN))
    page = portal_browser.page
    portal_browser.goto("/findings/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    portal_browser.screenshot("shell-skip-link", full_page=False)
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Back at the top: past the brand and the user menu, the nav's links come in order.
    portal_browser.goto("/findings/")
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate(IN_NAV))
    assert [label for label in reached if label][:4] == ["Dashboard", "Findings", "Buckets", "Scans"]


def test_at_phone_width_the_header_fits_and_tables_scroll_instead_of_hiding_columns(
    portal_browser, tenant, portal_user, make_linked_bucket
):
    _findings(tenant, make_linked_bucket(tenant), 4)
    portal_browser.sign_in(portal_user(tenant, Role.OPERATOR))
    portal_browser.phone()
    portal_browser.goto("/findings/")
    page = portal_browser.page
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    header = page.locator("header.topbar").bounding_box()
    assert header is not None and header["x"] + header["width"] <= 390
    # The verdict and triage columns are still there, reached by scrolling the table itself.
    assert page.locator("th", has_text="Verdict").count() == 1
    assert page.locator("th", has_text="Triage").count() == 1
    assert page.evaluate("getComputedStyle(document.querySelector('.table-wrap')).overflowX") == "auto"
    portal_browser.screenshot("shell-phone-findings")
    portal_browser.goto("/")
    portal_browser.screenshot("shell-phone-home")


def test_the_existing_pages_work_under_the_csp(portal_browser, tenant, portal_user, make_linked_bucket):
    _findings(tenant, make_linked_bucket(tenant), 4)
    portal_browser.goto("/accounts/login/")
    portal_browser.screenshot("sign-in")
    portal_browser.goto("/accounts/password/reset/")
    portal_browser.screenshot("password-reset")
    admin = portal_user(tenant, Role.ADMIN)
    portal_browser.sign_in(admin)
    assert "Successfully signed in" in portal_browser.text()
    portal_browser.screenshot("home-admin")
    for path, name in [
        ("/findings/", "findings"),
        ("/buckets/", "buckets"),
        ("/jobs/", "scans"),
        ("/sso/settings", "sso-settings"),
        ("/no/such/page", "404"),
        ("/api/v1/docs/", "api-docs"),
    ]:
        portal_browser.goto(path)
        portal_browser.screenshot(name)
    portal_browser.page.wait_for_selector(".swagger-ui .info", timeout=10_000)
    portal_browser.goto("/findings/")
    portal_browser.page.click("details.user-menu summary")
    portal_browser.screenshot("shell-user-menu", full_page=False)
    portal_browser.page.click("text=Sign out")
    portal_browser.page.wait_for_url(re.compile(r"/accounts/login/"))
    assert "You have signed out" in portal_browser.text()


def test_a_viewer_sees_no_triage_buttons(portal_browser, tenant, portal_user, make_linked_bucket):
    _findings(tenant, make_linked_bucket(tenant), 2)
    portal_browser.sign_in(portal_user(tenant, Role.VIEWER))
    portal_browser.goto("/findings/")
    # The filter form's button stays: it changes nothing.
    assert portal_browser.page.locator("main form[method=post]").count() == 0
    assert portal_browser.page.locator("main .row-actions, main a[href*='/delete']").count() == 0


def test_the_django_admin_works_under_the_csp(portal_browser, portal_user):
    staff = portal_user(None, email="support@example.com")
    staff.is_staff = True
    staff.is_superuser = True
    staff.save()
    # The admin has no sign-in form of its own (staff sign in through the portal's, which audits
    # break-glass sign-ins): its login URL sends them there.
    portal_browser.goto("/admin/login/")
    assert "/accounts/login/" in portal_browser.page.url
    portal_browser.sign_in(staff)
    portal_browser.goto("/admin/")
    portal_browser.page.wait_for_selector("#content")
    portal_browser.screenshot("admin-index")
    portal_browser.goto("/admin/accounts/tenant/")
    portal_browser.screenshot("admin-tenants")

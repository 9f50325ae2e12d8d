"""The accounts side of the portal in a real browser: sign-in, members, API keys, settings, audit log.

Screenshots of each page go to var/screenshots/ (or $S3AV_SCREENSHOTS); the browser fixture fails a
test whose pages break the CSP or raise a JavaScript error.
"""

from __future__ import annotations

import datetime
import re

from django_scopes import scope, scopes_disabled

from accounts import services
from accounts.models import ApiKey, Membership, Role

# The elements wider than a phone's screen (none, unless a table-wrap scrolls them).
WIDEST = """[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 391)
  .filter(e => !e.closest('.table-wrap, .mainnav')).map(e => e.tagName + '.' + e.className).slice(0, 8)"""


def test_a_person_signs_in_with_a_password(portal_browser, tenant, portal_user):
    user = portal_user(tenant, Role.OPERATOR, email="olga@example.com")
    portal_browser.goto("/accounts/login/")
    portal_browser.page.fill("input[name=login]", "olga@example.com")
    portal_browser.page.fill("input[name=password]", "wrong password")
    portal_browser.page.click("form[action$='/accounts/login/'] button[type=submit]")
    assert "not correct" in portal_browser.text()
    portal_browser.screenshot("sign-in-wrong-password")
    portal_browser.sign_in(user)
    assert "Successfully signed in as olga@example.com" in portal_browser.text()
    assert portal_browser.page.inner_text(".badge--role") == "Operator"
    assert portal_browser.page.locator("nav.mainnav >> text=Settings").count() == 0


def test_an_admin_adds_a_member_and_changes_their_role(portal_browser, tenant, portal_user):
    portal_browser.sign_in(portal_user(tenant, Role.ADMIN))
    page = portal_browser.page
    page.click("nav.mainnav >> text=Settings")
    portal_browser.screenshot("settings-overview")
    page.click("nav.subnav >> text=Members and roles")
    page.fill("input[name=email]", "not-an-address")
    portal_browser.press("Invite")
    assert "Enter a valid email address." in portal_browser.text()
    portal_browser.screenshot("settings-members-error")
    page.fill("input[name=email]", "newcomer@example.com")
    page.select_option("select[name=role]", "viewer")
    portal_browser.press("Invite")
    assert "Added newcomer@example.com as Viewer" in portal_browser.text()
    row = page.locator("tr", has_text="newcomer@example.com")
    row.locator("select").select_option("operator")
    row.get_by_role("button", name="Change role").click()
    assert "newcomer@example.com is now Operator." in portal_browser.text()
    portal_browser.screenshot("settings-members")
    with scopes_disabled():
        assert Membership.objects.get(tenant=tenant, user__email="newcomer@example.com").role == "operator"
    page.locator("tr", has_text="newcomer@example.com").locator("text=Remove").click()
    portal_browser.screenshot("settings-member-remove-confirm")
    portal_browser.press("Remove member")
    assert "Removed newcomer@example.com" in portal_browser.text()
    portal_browser.phone()
    portal_browser.goto("/settings/members")
    widest = page.evaluate(WIDEST)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, widest
    portal_browser.screenshot("settings-members-phone")


def test_an_admin_creates_an_api_key_sees_it_once_and_revokes_it(portal_browser, tenant, portal_user):
    portal_browser.sign_in(portal_user(tenant, Role.ADMIN))
    page = portal_browser.page
    portal_browser.goto("/settings/api-keys")
    portal_browser.screenshot("settings-api-keys-empty")
    page.fill("input[name=name]", "CI upload check")
    page.select_option("select[name=role]", "operator")
    expiry = datetime.date.today() + datetime.timedelta(days=30)  # noqa: DTZ011 - a date the form takes
    page.fill("input[name=expires_at]", f"{expiry:%Y-%m-%d}")
    portal_browser.press("Create key")
    secret = page.inner_text("#new-secret")
    assert re.fullmatch(r"s3av_\S+", secret)
    portal_browser.screenshot("settings-api-key-created")
    portal_browser.goto("/settings/api-keys")
    assert secret not in page.content()
    with scope(tenant=tenant):
        key = ApiKey.objects.get(tenant=tenant, name="CI upload check")
    assert key.matches(secret)
    page.locator("tr", has_text="CI upload check").locator("text=Revoke").click()
    portal_browser.screenshot("settings-api-key-revoke-confirm")
    portal_browser.press("Revoke key")
    assert "Revoked the key" in portal_browser.text()
    assert page.locator("tr", has_text="CI upload check").locator(".badge", has_text="Revoked").count() == 1
    portal_browser.screenshot("settings-api-keys")


def test_an_admin_is_warned_before_locking_themselves_out(portal_browser, tenant, portal_user):
    portal_browser.sign_in(portal_user(tenant, Role.ADMIN))
    page = portal_browser.page
    portal_browser.goto("/settings/tenant")
    portal_browser.screenshot("settings-tenant")
    page.fill("textarea[name=allowed_cidrs]", "10.0.0.0/8\nnonsense")
    portal_browser.press("Save settings")
    assert "“nonsense” is not a CIDR range" in portal_browser.text()
    portal_browser.screenshot("settings-tenant-error")
    page.fill("textarea[name=allowed_cidrs]", "203.0.113.0/24")
    portal_browser.press("Save settings")
    assert "These ranges leave out your own address" in portal_browser.text()
    portal_browser.screenshot("settings-tenant-lockout-warning")
    page.fill("textarea[name=allowed_cidrs]", "203.0.113.0/24\n127.0.0.0/8")
    portal_browser.press("Save settings")
    assert "Tenant settings saved." in portal_browser.text()
    tenant.refresh_from_db()
    assert tenant.allowed_cidrs == ["203.0.113.0/24", "127.0.0.0/8"]


def test_usage_and_the_audit_log(portal_browser, tenant, portal_user):
    from scanning.models import UsageMonth

    admin = portal_user(tenant, Role.ADMIN)
    this_month = datetime.datetime.now(datetime.UTC).date().replace(day=1)
    with scope(tenant=tenant):
        UsageMonth.objects.create(
            tenant=tenant, month=this_month, objects_scanned=48_211, bytes_scanned=7 << 30
        )
        UsageMonth.objects.create(
            tenant=tenant, month=datetime.date(2026, 10, 1), objects_scanned=30_001, bytes_scanned=5 << 30
        )
        for n in range(60):
            services.record(
                tenant, services.Actor(user=admin), "bucket.protect", tenant, {"bucket": f"b-{n}"}
            )
    tenant.monthly_scan_bytes_limit = 10 << 30
    tenant.save()
    portal_browser.sign_in(admin)
    portal_browser.goto("/settings/usage")
    assert "70% of the monthly limit" in portal_browser.text()
    portal_browser.screenshot("settings-usage")
    page = portal_browser.page
    page.click("nav.mainnav >> text=Audit log")
    assert "Showing 1–50 of" in portal_browser.text()
    portal_browser.screenshot("audit-log")
    page.fill("input[name=action]", "tenant.")
    portal_browser.press("Filter")
    assert "Action: tenant." in portal_browser.text()
    portal_browser.screenshot("audit-log-filtered")
    portal_browser.phone()
    portal_browser.goto("/audit/")
    portal_browser.screenshot("audit-log-phone")


def test_a_viewer_sees_no_action_buttons(portal_browser, tenant, portal_user):
    portal_browser.sign_in(portal_user(tenant, Role.VIEWER))
    page = portal_browser.page
    assert page.locator("nav.mainnav >> text=Settings").count() == 0
    for path in ("/", "/audit/", "/results/", "/buckets/", "/jobs/"):
        portal_browser.goto(path)
        # The audit log's filter is a GET form; nothing that writes is offered.
        assert page.locator("main form[method=post]").count() == 0, path
    response = portal_browser.goto("/settings/members")
    assert response.status == 403
    assert page.locator("main form").count() == 0
    portal_browser.screenshot("settings-refused-viewer")


def test_an_invited_member_chooses_a_password_from_the_email(
    portal_browser, tenant, portal_user, mailoutbox, settings
):
    settings.PUBLIC_URL = portal_browser.base_url
    portal_browser.sign_in(portal_user(tenant, Role.ADMIN))
    page = portal_browser.page
    portal_browser.goto("/settings/members")
    page.fill("input[name=email]", "invitee@example.com")
    portal_browser.press("Invite")
    [mail] = mailoutbox
    link = re.search(r"http://\S+/accounts/password/reset/key/\S+", mail.body).group(0)
    portal_browser.sign_out()
    portal_browser.goto(link)
    portal_browser.screenshot("invitation-choose-password")
    page.fill("input[name=password1]", "my-own-long-password-9")
    page.fill("input[name=password2]", "my-own-long-password-9")
    portal_browser.press("Save password")
    portal_browser.screenshot("invitation-password-saved")
    portal_browser.sign_in("invitee@example.com", "my-own-long-password-9")
    assert "Successfully signed in as invitee@example.com" in portal_browser.text()

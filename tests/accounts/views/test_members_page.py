"""Settings → Members and roles: invite by email, change a role, remove; admins only, audited."""

from __future__ import annotations

import re

import pytest
from django_scopes import scope, scopes_disabled

from accounts.models import AuditEvent, Membership, Role, User

pytestmark = pytest.mark.django_db


def _member(tenant, make_user, role=Role.VIEWER, email=None):
    user = make_user(email=email, tenant=tenant, role=role)
    with scopes_disabled():
        return Membership.objects.get(tenant=tenant, user=user)


def test_an_admin_invites_a_member_who_gets_a_set_password_link(
    tenant, session_client, mailoutbox, django_capture_on_commit_callbacks, client
):
    admin = session_client(tenant, Role.ADMIN)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post("/settings/members", {"email": "New.Person@Example.com", "role": "operator"})
    assert response.status_code == 302
    page = admin.get("/settings/members").content.decode()
    assert "Added new.person@example.com as Operator" in page
    with scopes_disabled():
        membership = Membership.objects.get(tenant=tenant, user__email="new.person@example.com")
    assert membership.role == Role.OPERATOR
    with scope(tenant=tenant):
        event = AuditEvent.objects.get(tenant=tenant, action="member.add")
    assert event.actor_label == admin.user.email and event.details["role"] == "operator"
    [mail] = mailoutbox
    assert mail.to == ["new.person@example.com"] and tenant.name in mail.subject
    link = re.search(r"http://\S+/accounts/password/reset/key/\S+", mail.body).group(0)
    path = link.split("8000", 1)[1] if "8000" in link else link
    # The link lets the invitee choose a password and sign in with it.
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200
    done = client.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else path,
        {"password1": "an-invitee-password-42", "password2": "an-invitee-password-42"},
    )
    assert done.status_code == 302
    assert User.objects.get(email="new.person@example.com").check_password("an-invitee-password-42")


def test_an_existing_member_of_another_tenant_is_told_where_to_sign_in(
    tenant, outsider_tenant, make_user, session_client, mailoutbox, django_capture_on_commit_callbacks
):
    make_user(email="known@example.com", tenant=outsider_tenant, password="known-password-123")
    with django_capture_on_commit_callbacks(execute=True):
        session_client(tenant, Role.ADMIN).post(
            "/settings/members", {"email": "known@example.com", "role": "viewer"}
        )
    [mail] = mailoutbox
    assert "/accounts/password/reset/key/" not in mail.body
    assert "/accounts/login/" in mail.body


def test_inviting_twice_or_a_bad_address_is_an_error_next_to_the_field(tenant, make_user, session_client):
    _member(tenant, make_user, email="twice@example.com")
    admin = session_client(tenant, Role.ADMIN)
    response = admin.post("/settings/members", {"email": "twice@example.com", "role": "viewer"})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'class="field__error"' in body and "twice@example.com is already a member." in body
    bad = admin.post("/settings/members", {"email": "not an address", "role": "emperor"})
    assert bad.status_code == 200
    assert "Enter a valid email address." in bad.content.decode()
    assert "Select a valid choice" in bad.content.decode()
    nul = admin.post("/settings/members", {"email": "a\x00@example.com", "role": "viewer"})
    assert nul.status_code == 200


def test_an_admin_changes_a_role_and_the_last_admin_is_kept(tenant, make_user, session_client):
    admin = session_client(tenant, Role.ADMIN)
    member = _member(tenant, make_user)
    response = admin.post(f"/settings/members/{member.pk}/role", {"role": "operator"}, follow=True)
    assert "is now Operator" in response.content.decode()
    with scopes_disabled():
        assert Membership.objects.get(pk=member.pk).role == Role.OPERATOR
        for m in Membership.objects.filter(tenant=tenant, role=Role.ADMIN).exclude(user=admin.user):
            m.delete()
        mine = Membership.objects.get(tenant=tenant, user=admin.user)
    refused = admin.post(f"/settings/members/{mine.pk}/role", {"role": "viewer"})
    assert refused.status_code == 200
    assert "A tenant keeps at least one admin." in refused.content.decode()
    bad = admin.post(f"/settings/members/{member.pk}/role", {"role": "emperor"})
    assert bad.status_code == 200 and "Choose one of the roles." in bad.content.decode()


def test_removing_asks_first_then_removes_and_audits(tenant, make_user, session_client):
    admin = session_client(tenant, Role.ADMIN)
    member = _member(tenant, make_user, email="leaving@example.com")
    confirm = admin.get(f"/settings/members/{member.pk}/remove").content.decode()
    assert "Remove leaving@example.com?" in confirm and "loses access" in confirm
    with scopes_disabled():
        assert Membership.objects.filter(pk=member.pk).exists()
    admin.post(f"/settings/members/{member.pk}/remove", {"confirmed": "yes"})
    with scopes_disabled():
        assert not Membership.objects.filter(pk=member.pk).exists()
        assert AuditEvent.objects.filter(tenant=tenant, action="member.remove").count() == 1


def test_a_viewer_or_operator_gets_403_and_sees_no_settings(tenant, make_user, session_client):
    member = _member(tenant, make_user)
    for role in (Role.VIEWER, Role.OPERATOR, Role.NONE):
        client = session_client(tenant, role)
        assert ">Settings</a>" not in client.get("/").content.decode()
        for path in ("/settings/", "/settings/members", f"/settings/members/{member.pk}/remove"):
            response = client.get(path)
            assert response.status_code == 403
            assert "<form" not in response.content.decode().split("<main", 1)[1]
        assert (
            client.post("/settings/members", {"email": "x@example.com", "role": "admin"}).status_code == 403
        )
        assert client.post(f"/settings/members/{member.pk}/role", {"role": "admin"}).status_code == 403
        assert client.post(f"/settings/members/{member.pk}/remove", {"confirmed": "yes"}).status_code == 403
    with scopes_disabled():
        assert Membership.objects.get(pk=member.pk).role == Role.VIEWER
        assert not User.objects.filter(email="x@example.com").exists()


def test_another_tenants_member_is_404(tenant, outsider_tenant, make_user, session_client):
    theirs = _member(outsider_tenant, make_user)
    admin = session_client(tenant, Role.ADMIN)
    assert admin.get(f"/settings/members/{theirs.pk}/remove").status_code == 404
    assert admin.post(f"/settings/members/{theirs.pk}/remove", {"confirmed": "yes"}).status_code == 404
    assert admin.post(f"/settings/members/{theirs.pk}/role", {"role": "viewer"}).status_code == 404
    assert admin.post(f"/settings/members/{theirs.pk}/invite").status_code == 404
    assert theirs.user.email not in admin.get("/settings/members").content.decode()


def test_the_members_page_costs_the_same_queries_for_many_members(
    tenant, make_user, session_client, django_assert_max_num_queries
):
    admin = session_client(tenant, Role.ADMIN)
    admin.get("/settings/members")
    for _ in range(3):
        _member(tenant, make_user)
    with django_assert_max_num_queries(12) as few:
        admin.get("/settings/members")
    for _ in range(20):
        _member(tenant, make_user)
    with django_assert_max_num_queries(len(few.captured_queries)):
        body = admin.get("/settings/members").content.decode()
    assert body.count("Change role</button>") == 25


def test_resending_an_invitation_sends_it_again_and_audits(
    tenant, make_user, session_client, mailoutbox, django_capture_on_commit_callbacks
):
    member = _member(tenant, make_user, email="slow@example.com")
    admin = session_client(tenant, Role.ADMIN)
    with django_capture_on_commit_callbacks(execute=True):
        admin.post(f"/settings/members/{member.pk}/invite")
    assert [m.to for m in mailoutbox] == [["slow@example.com"]]
    with scopes_disabled():
        assert AuditEvent.objects.filter(tenant=tenant, action="member.invite").count() == 1


def test_a_tenant_with_sso_invites_through_its_sign_in(tenant, make_user, mailoutbox):
    from accounts import services

    member = _member(tenant, make_user, email="sso.person@example.com")
    # As if SSO were configured and required (Tenant.clean's rule is the SSO tests' business; a
    # password session could not reach such a tenant's settings page at all).
    member.tenant.sso_required = True
    assert services.send_invitation(member, services.Actor.system("test"))
    [mail] = mailoutbox
    assert "single sign-on" in mail.body and "Continue with SSO" in mail.body
    assert "/accounts/password/reset/key/" not in mail.body


def test_a_failing_mail_server_does_not_undo_the_member(
    tenant, session_client, settings, django_capture_on_commit_callbacks, caplog
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens on discard
    admin = session_client(tenant, Role.ADMIN)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post("/settings/members", {"email": "later@example.com", "role": "viewer"})
    assert response.status_code == 302
    with scopes_disabled():
        assert Membership.objects.filter(tenant=tenant, user__email="later@example.com").exists()
    assert "invitation email" in caplog.text


def test_an_admin_who_removes_themselves_lands_on_the_start_page(tenant, make_user, session_client):
    admin = session_client(tenant, Role.ADMIN)
    with scopes_disabled():
        mine = Membership.objects.get(tenant=tenant, user=admin.user)
    response = admin.post(f"/settings/members/{mine.pk}/remove", {"confirmed": "yes"})
    assert response.status_code == 302 and response["Location"] == "/"

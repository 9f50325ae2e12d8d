"""A tenant's IdP cannot take over an account that reaches beyond that tenant.

A domain claim is not proof of owning the domain (any tenant admin may claim one nobody claimed yet, and
point it at an IdP they run), so signing in through a tenant's IdP must never hand over an account that
reaches another tenant or the support admin, nor let the IdP's session set up a password or an email
address that would outlive the SSO session.
"""

from __future__ import annotations

from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django_scopes import scopes_disabled

from accounts.models import Membership, User

PASSWORD = "a-long-password-123"


def _refused(sso: Any, client: Any, response: Any, reason: str) -> None:
    assert response.status_code == 403, response.status_code
    assert client.get("/api/v1/me").status_code in (401, 403)
    reasons = [e.details["reason"] for e in sso.events("sso.refused")]
    assert any(reason in r for r in reasons), reasons
    assert not sso.events("sso.sign_in")


def test_it_never_takes_over_a_user_who_belongs_to_another_tenant(make_sso, make_tenant, make_user) -> None:
    sso = make_sso()
    other = make_tenant("Other")
    carol = make_user("carol@acme.test", tenant=other, role="admin", password=PASSWORD)
    client = sso.client()
    _refused(sso, client, sso.sign_in(client, "carol@acme.test"), "another tenant")
    assert not SocialAccount.objects.filter(user=carol).exists()
    with scopes_disabled():
        assert not Membership.objects.filter(tenant=sso.tenant, user=carol).exists()


def test_it_never_signs_in_support_staff(make_sso, make_user) -> None:
    sso = make_sso()
    make_user("support@acme.test", password=PASSWORD, is_staff=True)
    client = sso.client()
    _refused(sso, client, sso.sign_in(client, "support@acme.test"), "Support staff")
    assert client.get("/admin/").status_code == 302  # to the admin's sign-in, not the admin


def test_it_links_an_existing_user_of_this_tenant_only(make_sso, make_user) -> None:
    sso = make_sso()
    dan = make_user("dan@acme.test", tenant=sso.tenant, role="operator", password=PASSWORD)
    client = sso.client()
    assert sso.sign_in(client, "dan@acme.test").status_code == 302
    assert client.get("/api/v1/me").json()["role"] == "operator"
    assert SocialAccount.objects.filter(user=dan, provider=sso.connection.provider_id).exists()


@pytest.mark.parametrize(
    ("method", "path", "form"),
    [
        ("get", "/accounts/password/set/", {}),
        ("post", "/accounts/password/set/", {"password1": PASSWORD, "password2": PASSWORD}),
        ("get", "/accounts/email/", {}),
        ("post", "/accounts/email/", {"action_add": "", "email": "attacker@evil.test"}),
    ],
)
def test_an_sso_session_sets_no_password_or_email(make_sso, method: str, path: str, form: dict) -> None:
    sso = make_sso()
    client = sso.client()
    assert sso.sign_in(client, "eve@acme.test").status_code == 302
    response = getattr(client, method)(path, form)
    assert response.status_code == 403, response.status_code
    eve = User.objects.get(email="eve@acme.test")
    assert not eve.has_usable_password()
    assert not EmailAddress.objects.filter(email="attacker@evil.test").exists()


@pytest.mark.parametrize("email", ["mallory@evil.test@acme.test", "mallory@evil.test,x@acme.test"])
def test_it_refuses_an_address_that_is_not_one(make_sso, email: str) -> None:
    """A second @ or a list would name a mailbox outside the claimed domain (where reset mail goes).

    allauth already drops such a value (valid_email_or_none), so the assertion carries no address.
    """
    sso = make_sso()
    client = sso.client()
    _refused(sso, client, sso.sign_in(client, email), "no email address")
    assert not User.objects.filter(email__iexact=email).exists()

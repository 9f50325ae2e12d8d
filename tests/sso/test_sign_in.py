from __future__ import annotations

from django_scopes import scopes_disabled

from accounts.models import Membership, User


def test_it_signs_in_a_new_user_with_role_none(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    response = sso.sign_in(client, "alice@acme.test", {"urn:oid:2.5.4.42": ["Alice"]})
    assert response.status_code == 302, response.content[:2000]
    assert response["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    user = User.objects.get(email="alice@acme.test")
    with scopes_disabled():
        assert Membership.objects.get(user=user, tenant=sso.tenant).role == "none"
    assert home.wsgi_request.user == user
    assert [e.details["email"] for e in sso.events("sso.jit_user")] == ["alice@acme.test"]
    assert len(sso.events("sso.sign_in")) == 1

"""Good assertions: JIT users, group roles at every sign-in, the IdP layouts, sessions bound to a tenant."""

from __future__ import annotations

from typing import Any

import pytest
from django_scopes import scopes_disabled

from accounts.models import Membership, User
from tests import factories

ENTRA = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"
ENTRA_GROUPS = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"


def _role(sso: Any, email: str) -> str:
    with scopes_disabled():
        return Membership.objects.get(user__email=email, tenant=sso.tenant).role


def _me(client: Any) -> dict[str, Any]:
    response = client.get("/api/v1/me")
    assert response.status_code == 200, response.content
    return response.json()


def test_it_signs_in_a_new_user_with_role_none(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    response = sso.sign_in(
        client, "Alice@Acme.test", {"urn:oid:2.5.4.42": ["Alice"], "urn:oid:2.5.4.4": ["Liddell"]}
    )
    assert response.status_code == 302, response.content[:2000]
    assert response["Location"] == "/"
    home = client.get("/")
    assert b"An admin must grant you a role" in home.content
    user = User.objects.get(email="alice@acme.test")
    assert user.name == "Alice Liddell"
    assert not user.has_usable_password()
    assert _role(sso, "alice@acme.test") == "none"
    assert _me(client)["tenant"]["slug"] == sso.tenant.slug
    assert [e.details["email"] for e in sso.events("sso.jit_user")] == ["alice@acme.test"]
    assert len(sso.events("sso.sign_in")) == 1


def test_a_mapped_group_sets_the_role_at_every_sign_in(make_sso) -> None:
    sso = make_sso(
        group_attribute="groups", group_roles={"s3av-operators": "operator", "s3av-admins": "admin"}
    )
    assert sso.sign_in(sso.client(), "alice@acme.test").status_code == 302
    assert _role(sso, "alice@acme.test") == "none"

    client = sso.client()
    assert sso.sign_in(client, "alice@acme.test", {"groups": ["staff", "s3av-operators"]}).status_code == 302
    assert _role(sso, "alice@acme.test") == "operator"
    assert _me(client)["role"] == "operator"
    [change] = sso.events("sso.role_from_group")
    assert (change.details["from"], change.details["to"]) == ("none", "operator")

    # Removed from the group at the IdP: the next sign-in takes the role away again.
    assert sso.sign_in(sso.client(), "alice@acme.test", {"groups": ["staff"]}).status_code == 302
    assert _role(sso, "alice@acme.test") == "none"
    assert len(sso.events("sso.role_from_group")) == 2


def test_without_a_mapping_the_role_an_admin_set_stays(make_sso) -> None:
    sso = make_sso()
    assert sso.sign_in(sso.client(), "alice@acme.test").status_code == 302
    with scopes_disabled():
        Membership.objects.filter(user__email="alice@acme.test").update(role="viewer")
    assert sso.sign_in(sso.client(), "alice@acme.test", {"groups": ["anything"]}).status_code == 302
    assert _role(sso, "alice@acme.test") == "viewer"
    assert not sso.events("sso.role_from_group")


def test_an_sso_session_reaches_this_tenant_only(make_sso, make_tenant) -> None:
    sso = make_sso()
    other = make_tenant("Other")
    # Carol came in through Acme's IdP; later another tenant added her too.
    assert sso.sign_in(sso.client(), "carol@acme.test").status_code == 302
    carol = User.objects.get(email="carol@acme.test")
    with scopes_disabled():
        factories.make_member(other, carol, "admin")
    client = sso.client()
    assert sso.sign_in(client, "carol@acme.test").status_code == 302
    assert _me(client)["tenant"]["slug"] == sso.tenant.slug
    assert len(sso.events("sso.jit_user")) == 1
    # The SSO session never reaches the user's other tenant, even when asked for it.
    assert str(other.pk).encode() not in client.get("/").content
    client.post("/tenant/switch", {"tenant": str(other.pk)})
    assert _me(client)["tenant"]["slug"] == sso.tenant.slug
    assert _me(client)["role"] == "none"


def test_the_next_url_is_kept_when_local(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    response = client.post("/sso/start", {"email": "alice@acme.test", "next": "/results/"})
    request = sso.idp.parse_request(response["Location"])
    saml = sso.idp.response(
        "alice@acme.test", in_response_to=request.id, acs_url=request.acs_url, audience=sso.sp_entity_id
    )
    assert sso.post_response(client, saml, request.relay_state)["Location"] == "/results/"


def test_an_unknown_domain_or_slug_gets_one_answer(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    for form in ({"email": "x@nowhere.test"}, {"tenant": "no-such-tenant"}):
        response = client.post("/sso/start", form)
        assert response.status_code == 404
        assert b"No single sign-on is set up" in response.content


LAYOUTS = {
    "okta": {
        "email": "ann@acme.test",
        "attributes": {
            "email": ["ann@acme.test"],
            "firstName": ["Ann"],
            "lastName": ["Okta"],
            "groups": ["Everyone", "s3av-operators"],
        },
        "name": "Ann Okta",
    },
    "entra": {
        "email": "ann@acme.test",
        "attributes": {
            "http://schemas.microsoft.com/identity/claims/objectidentifier": [
                "5f1c9a9e-0000-4000-8000-000000000001"
            ],
            f"{ENTRA}/emailaddress": ["ann@acme.test"],
            f"{ENTRA}/givenname": ["Ann"],
            f"{ENTRA}/surname": ["Entra"],
            "http://schemas.microsoft.com/identity/claims/displayname": ["Ann E. Entra"],
            ENTRA_GROUPS: ["s3av-operators"],
        },
        "name": "Ann E. Entra",
    },
    "google": {
        # Google sends the primary email as NameID; names and groups as the admin mapped them.
        "email": "ann@acme.test",
        "attributes": {"first_name": ["Ann"], "last_name": ["Google"], "groups": ["s3av-operators"]},
        "name": "Ann Google",
    },
}


@pytest.mark.parametrize("preset", sorted(LAYOUTS))
def test_each_idp_layout_maps_email_name_and_groups(make_sso, preset: str) -> None:
    layout = LAYOUTS[preset]
    sso = make_sso(preset=preset, group_roles={"s3av-operators": "operator"})
    client = sso.client()
    response = sso.sign_in(client, layout["email"], layout["attributes"])
    assert response.status_code == 302, response.content[:1000]
    user = User.objects.get(email="ann@acme.test")
    assert user.name == layout["name"]
    assert _role(sso, "ann@acme.test") == "operator"
    assert sso.events("sso.sign_in")[0].details["groups"] == [
        g for g in layout["attributes"].get("groups", layout["attributes"].get(ENTRA_GROUPS, []))
    ]


def test_entra_keys_the_user_by_object_id(make_sso) -> None:
    sso = make_sso(preset="entra")
    attributes = LAYOUTS["entra"]["attributes"]
    assert sso.sign_in(sso.client(), "ann@acme.test", attributes).status_code == 302
    from allauth.socialaccount.models import SocialAccount

    account = SocialAccount.objects.get(user__email="ann@acme.test")
    assert account.uid == "5f1c9a9e-0000-4000-8000-000000000001"
    assert account.provider == f"saml-{sso.tenant.pk}"

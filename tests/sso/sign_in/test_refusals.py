"""Every way an assertion is refused: nobody signed in, an ``sso.refused`` event with the reason."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from django_scopes import scope, scopes_disabled
from lxml import etree

from accounts.models import Membership, User
from accounts.services import Actor
from sso import services
from tests.sso.idp import NS, iso, wrap_signature


def _signed_in(client: Any) -> bool:
    return client.get("/api/v1/me").status_code == 200


def _assert_refused(sso: Any, client: Any, response: Any, reason: str) -> None:
    assert response.status_code in (401, 403), response.status_code
    assert not _signed_in(client)
    reasons = [e.details["reason"] for e in sso.events("sso.refused")]
    assert any(reason.lower() in r.lower() for r in reasons), reasons
    assert not sso.events("sso.sign_in")


def _set(xpath: str, attribute: str | None, value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        nodes = root.xpath(xpath, namespaces=NS)
        assert nodes, xpath
        for node in nodes:
            if attribute is None:
                node.text = value
            else:
                node.set(attribute, value)

    return change


def _both(*changes: Callable[[etree._Element], None]) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        for one in changes:
            one(root)

    return change


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _sp_initiated(sso: Any, client: Any, email: str = "alice@acme.test", **options: Any) -> Any:
    request = sso.start(client, tenant=sso.tenant.slug)
    saml = sso.idp.response(
        email, in_response_to=request.id, acs_url=request.acs_url, audience=sso.sp_entity_id, **options
    )
    return sso.post_response(client, saml, request.relay_state)


def test_it_refuses_an_unsigned_assertion(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    _assert_refused(sso, client, _sp_initiated(sso, client, sign=False), "not signed")


def test_it_refuses_an_assertion_signed_by_another_key(make_sso, keys) -> None:
    sso = make_sso()
    client = sso.client()
    _assert_refused(sso, client, _sp_initiated(sso, client, signer=keys["other"]), "signature")


def test_it_refuses_a_deprecated_signature_algorithm(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    _assert_refused(sso, client, _sp_initiated(sso, client, sha1=True), "deprecated")


def test_it_refuses_a_signature_wrapping_attack(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    request = sso.start(client, email="alice@acme.test")
    good = sso.idp.response(
        "alice@acme.test", in_response_to=request.id, acs_url=request.acs_url, audience=sso.sp_entity_id
    )
    response = sso.post_response(client, wrap_signature(good, "mallory@acme.test"), request.relay_state)
    assert response.status_code in (401, 403)
    assert not _signed_in(client)
    assert sso.events("sso.refused")
    assert not User.objects.filter(email__in=["mallory@acme.test", "alice@acme.test"]).exists()


def test_it_refuses_a_wrong_audience(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    change = _set("//saml:Audience", None, "https://another-sp.test/metadata")
    _assert_refused(sso, client, _sp_initiated(sso, client, change=change), "audience")


def test_it_refuses_a_wrong_recipient(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    change = _set("//saml:SubjectConfirmationData", "Recipient", "https://another-sp.test/acs/")
    _assert_refused(sso, client, _sp_initiated(sso, client, change=change), "SubjectConfirmation")


def test_it_refuses_a_wrong_destination(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    change = _set("/samlp:Response", "Destination", "https://another-sp.test/acs/")
    _assert_refused(
        sso, client, _sp_initiated(sso, client, change=change), "instead of https://another-sp.test"
    )


def test_it_refuses_an_expired_assertion(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    # Past the bounded clock skew (120 s).
    past = iso(_now() - datetime.timedelta(minutes=5))
    change = _both(
        _set("//saml:SubjectConfirmationData", "NotOnOrAfter", past),
        _set("//saml:Conditions", "NotOnOrAfter", past),
    )
    _assert_refused(sso, client, _sp_initiated(sso, client, change=change), "expired")


def test_it_refuses_an_assertion_not_yet_valid(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    change = _set("//saml:Conditions", "NotBefore", iso(_now() + datetime.timedelta(minutes=5)))
    _assert_refused(sso, client, _sp_initiated(sso, client, change=change), "not yet valid")


def test_it_accepts_a_clock_a_little_ahead(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    change = _set("//saml:Conditions", "NotBefore", iso(_now() + datetime.timedelta(seconds=60)))
    response = _sp_initiated(sso, client, change=change)
    assert response.status_code == 302 and _signed_in(client)


def test_it_refuses_a_replayed_assertion(make_sso) -> None:
    sso = make_sso()
    first = sso.client()
    request = sso.start(first, email="alice@acme.test")
    saml = sso.idp.response(
        "alice@acme.test", in_response_to=request.id, acs_url=request.acs_url, audience=sso.sp_entity_id
    )
    assert sso.post_response(first, saml, request.relay_state).status_code == 302
    # The attacker replays the captured response in a session of their own that started a sign-in.
    attacker = sso.client()
    sso.start(attacker, email="alice@acme.test")
    response = sso.post_response(attacker, saml, request.relay_state)
    assert response.status_code == 403
    assert not _signed_in(attacker)
    assert [e.details["reason"] for e in sso.events("sso.refused")] == [
        "This assertion was used before (replay)."
    ]


def test_it_refuses_a_replayed_idp_initiated_assertion(make_sso) -> None:
    sso = make_sso(allow_idp_initiated=True)
    saml = sso.idp.response(
        "alice@acme.test", in_response_to=None, acs_url=sso.acs_url, audience=sso.sp_entity_id
    )
    first = sso.client()
    assert sso.post_response(first, saml).status_code == 302
    assert _signed_in(first)
    attacker = sso.client()
    _assert_refused_after_success(sso, attacker, sso.post_response(attacker, saml), "replay")


def _assert_refused_after_success(sso: Any, client: Any, response: Any, reason: str) -> None:
    assert response.status_code in (401, 403)
    assert not _signed_in(client)
    assert any(reason in e.details["reason"] for e in sso.events("sso.refused"))


def test_it_refuses_idp_initiated_sign_in_unless_allowed(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    saml = sso.idp.response(
        "alice@acme.test", in_response_to=None, acs_url=sso.acs_url, audience=sso.sp_entity_id
    )
    _assert_refused(sso, client, sso.post_response(client, saml), "IdP-initiated")


def test_it_allows_idp_initiated_sign_in_when_the_tenant_does(make_sso) -> None:
    sso = make_sso(allow_idp_initiated=True)
    client = sso.client()
    saml = sso.idp.response(
        "alice@acme.test", in_response_to=None, acs_url=sso.acs_url, audience=sso.sp_entity_id
    )
    response = sso.post_response(client, saml, "/results/")
    assert response.status_code == 302 and response["Location"] == "/results/"
    assert _signed_in(client)


@pytest.mark.parametrize(
    "relay_state",
    [
        "https://evil.test/",
        "//evil.test/x",
        "http://testserver.evil.test/",
        "///evil.test/",
        "/\\evil.test/",
        "\\\\evil.test/",
        "/\t/evil.test/",
        "/\n/evil.test/",
        " //evil.test/",
        "https:evil.test",
        "HTTPS://evil.test/",
        "javascript:alert(1)",
    ],
)
def test_it_refuses_relay_state_to_another_host(make_sso, relay_state: str) -> None:
    sso = make_sso(allow_idp_initiated=True)
    client = sso.client()
    saml = sso.idp.response(
        "alice@acme.test", in_response_to=None, acs_url=sso.acs_url, audience=sso.sp_entity_id
    )
    _assert_refused(sso, client, sso.post_response(client, saml, relay_state), "RelayState")


@pytest.mark.parametrize(
    ("same_entity_id", "reason"), [(False, "Invalid issuer"), (True, "Signature validation failed")]
)
def test_it_refuses_an_assertion_from_another_tenants_idp(
    make_sso, same_entity_id: bool, reason: str
) -> None:
    acme = make_sso("Acme")
    # Beta's IdP, with its own key; in the second case it even claims Acme's IdP entity id.
    beta = make_sso(
        "Beta",
        domains=("beta.test",),
        key="second",
        idp_entity_id=acme.idp.entity_id if same_entity_id else None,
    )
    client = acme.client()
    request = acme.start(client, email="alice@acme.test")
    saml = beta.idp.knowing(acme.idp.sp_metadata).response(
        "alice@acme.test", in_response_to=request.id, acs_url=request.acs_url, audience=acme.sp_entity_id
    )
    _assert_refused(acme, client, acme.post_response(client, saml, request.relay_state), reason)


def test_it_refuses_a_response_for_another_tenants_request(make_sso) -> None:
    acme = make_sso("Acme")
    beta = make_sso("Beta", domains=("beta.test",), key="second")
    client = acme.client()
    # A sign-in started for Beta, answered by Beta's IdP, but posted to Acme's ACS.
    request = beta.start(client, email="bob@beta.test")
    saml = beta.idp.knowing(acme.idp.sp_metadata).response(
        "bob@beta.test", in_response_to=request.id, acs_url=acme.acs_url, audience=acme.sp_entity_id
    )
    response = acme.post_response(client, saml, request.relay_state)
    assert response.status_code in (401, 403)
    assert not _signed_in(client)
    assert acme.events("sso.refused")


def test_it_never_takes_over_a_user_whose_domain_the_tenant_has_not_claimed(
    make_sso, make_tenant, make_user
) -> None:
    sso = make_sso()
    other = make_tenant("Other")
    victim = make_user("boss@elsewhere.test", tenant=other, role="admin", password="a-long-password-123")
    client = sso.client()
    response = _sp_initiated(sso, client, email="boss@elsewhere.test")
    _assert_refused(sso, client, response, "not claimed")
    from allauth.socialaccount.models import SocialAccount

    assert not SocialAccount.objects.filter(user=victim).exists()
    with scopes_disabled():
        assert not Membership.objects.filter(tenant=sso.tenant, user=victim).exists()


def test_a_domain_claimed_by_one_tenant_cannot_be_claimed_by_another(make_sso, make_tenant, keys) -> None:
    make_sso("Acme", domains=("acme.test",))
    beta = make_tenant("Beta")
    with scope(tenant=beta), pytest.raises(services.ServiceError, match="claimed by another tenant"):
        services.configure_saml(
            beta,
            Actor.system("test"),
            idp_entity_id="https://idp.beta.test",
            idp_sso_url="https://idp.beta.test/sso",
            idp_certificate=keys["second"].cert_file.read_text(),
            email_domains=["ACME.test"],
        )


def test_single_logout_is_not_offered(make_sso) -> None:
    """An unsigned LogoutRequest from anywhere signed the browser out (logout CSRF), then answered 500."""
    import base64
    import zlib
    from urllib.parse import urlencode

    sso = make_sso()
    client = sso.client()
    assert sso.sign_in(client, "alice@acme.test").status_code == 302
    xml = (
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_forged" Version="2.0" '
        f'IssueInstant="{iso(_now())}" Destination="http://testserver/accounts/saml/{sso.tenant.slug}/sls/">'
        f"<saml:Issuer>{sso.idp.entity_id}</saml:Issuer><saml:NameID>alice@acme.test</saml:NameID>"
        "</samlp:LogoutRequest>"
    )
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    encoded = base64.b64encode(deflate.compress(xml.encode()) + deflate.flush()).decode()
    sls = f"/accounts/saml/{sso.tenant.slug}/sls/"
    assert client.get(f"{sls}?{urlencode({'SAMLRequest': encoded})}").status_code == 404
    assert _signed_in(client)
    assert sso.client().get(f"{sls}?SAMLRequest=garbage").status_code == 404


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "PHgvPg==",  # <x/>
        "PD94bWwgdmVyc2lvbj0nMS4wJz8+PCFET0NUWVBFIHggWzwhRU5USVRZIGEgJ2InPl0+PHg+JmE7PC94Pg==",  # a DTD
        "AP8=",  # binary
        "PHNhbWxwOlJlc3BvbnNl",  # truncated XML
    ],
)
def test_a_malformed_response_is_refused_not_a_server_error(make_sso, value: str | None) -> None:
    sso = make_sso(allow_idp_initiated=True)
    client = sso.client()
    response = client.post(
        f"/accounts/saml/{sso.tenant.slug}/acs/", {} if value is None else {"SAMLResponse": value}
    )
    if response.status_code == 302:
        response = client.get(response["Location"])
    assert response.status_code in (400, 401, 403), response.status_code
    assert sso.events("sso.refused")
    assert not _signed_in(client)

"""Signature wrapping and its cousins, each against real signatures: nobody is signed in as anyone else.

Each attack starts from a response our test IdP signed for the attacker's own account (or for the
victim's, intercepted), then moves or edits elements after signing, as an attacker would.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree
from saml2.sigver import pre_signature_part
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from accounts.models import User
from tests.sso.idp import NS

RESPONSE = "urn:oasis:names:tc:SAML:2.0:protocol:Response"


def _signed_in(client: Any) -> bool:
    return client.get("/api/v1/me").status_code == 200


def _edit(saml_b64: str, change: Callable[[etree._Element], None]) -> str:
    root = etree.fromstring(base64.b64decode(saml_b64))
    change(root)
    return base64.b64encode(etree.tostring(root)).decode()


def _evil_copy(signed: etree._Element, email: str) -> etree._Element:
    evil = copy.deepcopy(signed)
    evil.set("ID", "_evil" + signed.get("ID", "")[1:])
    signature = evil.find("ds:Signature", NS)
    if signature is not None:
        evil.remove(signature)
    name_id = evil.find("saml:Subject/saml:NameID", NS)
    assert name_id is not None
    name_id.text = email
    return evil


def _evil_first_signed_after(root: etree._Element) -> None:
    signed = root.find("saml:Assertion", NS)
    assert signed is not None
    signed.addprevious(_evil_copy(signed, "mallory@acme.test"))


def _signed_in_extensions(root: etree._Element) -> None:
    signed = root.find("saml:Assertion", NS)
    assert signed is not None
    evil = _evil_copy(signed, "mallory@acme.test")
    extensions = etree.Element(f"{{{NS['samlp']}}}Extensions")
    root.replace(signed, evil)
    root.find("saml:Issuer", NS).addnext(extensions)  # type: ignore[union-attr]
    extensions.append(signed)


def _evil_with_the_signed_id(root: etree._Element) -> None:
    signed = root.find("saml:Assertion", NS)
    assert signed is not None
    evil = _evil_copy(signed, "mallory@acme.test")
    evil.set("ID", signed.get("ID", ""))
    root.replace(signed, evil)
    evil.append(signed)


def _signature_moved_onto_the_evil_one(root: etree._Element) -> None:
    signed = root.find("saml:Assertion", NS)
    assert signed is not None
    evil = _evil_copy(signed, "mallory@acme.test")
    evil.find("saml:Issuer", NS).addnext(copy.deepcopy(signed.find("ds:Signature", NS)))  # type: ignore[union-attr]
    root.replace(signed, evil)


@pytest.mark.parametrize(
    "attack",
    [
        _evil_first_signed_after,
        _signed_in_extensions,
        _evil_with_the_signed_id,
        _signature_moved_onto_the_evil_one,
    ],
)
def test_it_refuses_signature_wrapping_variants(make_sso, attack: Callable[[etree._Element], None]) -> None:
    sso = make_sso()
    client = sso.client()
    request = sso.start(client, email="alice@acme.test")
    good = sso.idp.response(
        "alice@acme.test", in_response_to=request.id, acs_url=request.acs_url, audience=sso.sp_entity_id
    )
    response = sso.post_response(client, _edit(good, attack), request.relay_state)
    assert response.status_code in (401, 403)
    assert not _signed_in(client)
    assert sso.events("sso.refused")
    assert not User.objects.filter(email__in=["mallory@acme.test", "alice@acme.test"]).exists()


def test_it_refuses_an_unsigned_assertion_inside_a_signed_response(make_sso) -> None:
    sso = make_sso()
    client = sso.client()
    request = sso.start(client, email="alice@acme.test")
    unsigned = sso.idp.response(
        "alice@acme.test",
        in_response_to=request.id,
        acs_url=request.acs_url,
        audience=sso.sp_entity_id,
        sign=False,
    )
    root = etree.fromstring(base64.b64decode(unsigned))
    part = pre_signature_part(
        root.get("ID"), public_key=sso.idp.keys.cert_body, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256
    )
    root.find("saml:Issuer", NS).addnext(etree.fromstring(str(part).encode()))  # type: ignore[union-attr]
    signed = sso.idp.server.sec.sign_statement(
        etree.tostring(root).decode(), RESPONSE, key_file=str(sso.idp.keys.key_file), node_id=root.get("ID")
    )
    response = sso.post_response(client, base64.b64encode(signed.encode()).decode(), request.relay_state)
    assert response.status_code in (401, 403)
    assert not _signed_in(client)
    reasons = [e.details["reason"] for e in sso.events("sso.refused")]
    assert any("assertion" in r.lower() and "signed" in r.lower() for r in reasons), reasons


def test_a_comment_in_the_name_id_does_not_shorten_the_address(make_sso, make_user) -> None:
    """CVE-2017-11427's shape: the IdP signs mallory's long address, a comment cuts it to alice's."""
    sso = make_sso()
    alice = make_user("alice@acme.test")
    client = sso.client()
    request = sso.start(client, email="alice@acme.test")
    signed = sso.idp.response(
        "alice@acme.test.evil.test",
        in_response_to=request.id,
        acs_url=request.acs_url,
        audience=sso.sp_entity_id,
    )

    def split(root: etree._Element) -> None:
        name_id = root.find("saml:Assertion/saml:Subject/saml:NameID", NS)
        assert name_id is not None
        name_id.text = "alice@acme.test"
        comment = etree.Comment("")
        comment.tail = ".evil.test"
        name_id.append(comment)

    response = sso.post_response(client, _edit(signed, split), request.relay_state)
    assert response.status_code in (401, 403)
    assert not _signed_in(client)
    from allauth.socialaccount.models import SocialAccount

    assert not SocialAccount.objects.filter(user=alice).exists()
    reasons = [e.details["reason"] for e in sso.events("sso.refused")]
    assert any("alice@acme.test.evil.test" in r for r in reasons), reasons

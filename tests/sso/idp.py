"""An independent SAML IdP for the tests: pysaml2's Server, its own key pair, Debian's xmlsec1 signing.

pysaml2 parses our AuthnRequest and builds the Response; the tests may then change the assertion
(times, audience, recipient, attributes) before pysaml2 signs it for real. Nothing on the SP side
(python3-saml, allauth, our adapter) is patched.
"""

from __future__ import annotations

import base64
import copy
import datetime
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.server import Server
from saml2.sigver import pre_signature_part
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}
ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"


@dataclass(frozen=True)
class KeyPair:
    key_file: Path
    cert_file: Path

    @property
    def cert_body(self) -> str:
        pem = self.cert_file.read_text()
        return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def make_key_pair(directory: Path, name: str) -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test idp {name}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pair = KeyPair(directory / f"{name}.key", directory / f"{name}.crt")
    pair.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pair.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pair


def iso(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class AuthnRequest:
    id: str
    acs_url: str
    relay_state: str


@dataclass
class PysamlIdp:
    entity_id: str
    sso_url: str
    keys: KeyPair
    sp_metadata: str | list[str]
    attribute_name_format: str = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
    server: Server = field(init=False)

    def __post_init__(self) -> None:
        config = IdPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "service": {
                    "idp": {
                        "endpoints": {"single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)]},
                        "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
                        "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                        "want_authn_requests_signed": False,
                    }
                },
                "key_file": str(self.keys.key_file),
                "cert_file": str(self.keys.cert_file),
                "metadata": {
                    "inline": [self.sp_metadata] if isinstance(self.sp_metadata, str) else self.sp_metadata
                },
                "xmlsec_binary": "/usr/bin/xmlsec1",
            }
        )
        self.server = Server(config=config)

    def knowing(self, *sp_metadata: str) -> PysamlIdp:
        """The same IdP (entity id, keys) with more service providers in its metadata."""
        own = [self.sp_metadata] if isinstance(self.sp_metadata, str) else self.sp_metadata
        return PysamlIdp(self.entity_id, self.sso_url, self.keys, [*own, *sp_metadata])

    def metadata_xml(self) -> str:
        return f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{self.entity_id}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false"
      protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
      <ds:X509Data><ds:X509Certificate>{self.keys.cert_body}</ds:X509Certificate></ds:X509Data>
    </ds:KeyInfo></md:KeyDescriptor>
    <md:NameIDFormat>{NAMEID_FORMAT_EMAILADDRESS}</md:NameIDFormat>
    <md:SingleSignOnService Binding="{BINDING_HTTP_REDIRECT}" Location="{self.sso_url}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"""

    def parse_request(self, redirect_url: str) -> AuthnRequest:
        """Read the AuthnRequest our SP sent with the HTTP-Redirect binding."""
        assert redirect_url.startswith(self.sso_url), redirect_url
        query = parse_qs(urlsplit(redirect_url).query)
        parsed = self.server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT)
        message = parsed.message
        return AuthnRequest(
            message.id, message.assertion_consumer_service_url, query.get("RelayState", [""])[0]
        )

    def response(
        self,
        email: str,
        attributes: dict[str, list[str]] | None = None,
        *,
        in_response_to: str | None,
        acs_url: str,
        audience: str,
        sign: bool = True,
        signer: KeyPair | None = None,
        change: Callable[[etree._Element], None] | None = None,
        sha1: bool = False,
    ) -> str:
        """A base64 SAMLResponse: pysaml2 builds it, ``change`` edits the assertion, then it is signed."""
        unsigned = self.server.create_authn_response(
            identity={},
            in_response_to=in_response_to,
            destination=acs_url,
            sp_entity_id=audience,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
            userid=email,
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
            sign_response=False,
            sign_assertion=False,
        )
        root = etree.fromstring(str(unsigned).encode())
        assertion = root.find("saml:Assertion", NS)
        assert assertion is not None
        if attributes:
            self._add_attributes(assertion, attributes)
        if change is not None:
            change(root)
        xml = etree.tostring(root).decode()
        if sign:
            xml = self.sign_assertion(xml, assertion.get("ID", ""), signer or self.keys, sha1=sha1)
        return base64.b64encode(xml.encode()).decode()

    def _add_attributes(self, assertion: etree._Element, attributes: dict[str, list[str]]) -> None:
        statement = assertion.find("saml:AttributeStatement", NS)
        if statement is None:
            statement = etree.SubElement(assertion, f"{{{NS['saml']}}}AttributeStatement")
        for name, values in attributes.items():
            attribute = etree.SubElement(
                statement, f"{{{NS['saml']}}}Attribute", Name=name, NameFormat=self.attribute_name_format
            )
            for value in values:
                element = etree.SubElement(attribute, f"{{{NS['saml']}}}AttributeValue")
                element.text = value

    def sign_assertion(self, xml: str, assertion_id: str, signer: KeyPair, sha1: bool = False) -> str:
        root = etree.fromstring(xml.encode())
        assertion = root.find(f"saml:Assertion[@ID='{assertion_id}']", NS)
        if assertion is None:
            assertion = next(
                a for a in root.iter(f"{{{NS['saml']}}}Assertion") if a.get("ID") == assertion_id
            )
        part = pre_signature_part(
            assertion_id,
            public_key=signer.cert_body,
            sign_alg=SIG_RSA_SHA1 if sha1 else SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA1 if sha1 else DIGEST_SHA256,
        )
        template = etree.fromstring(str(part).encode())
        issuer = assertion.find("saml:Issuer", NS)
        assert issuer is not None
        issuer.addnext(template)
        return self.server.sec.sign_statement(
            etree.tostring(root).decode(), ASSERTION, key_file=str(signer.key_file), node_id=assertion_id
        )


def deflate_decode(value: str) -> str:
    return zlib.decompress(base64.b64decode(value), -15).decode()


def wrap_signature(signed_b64: str, evil_email: str) -> str:
    """Signature wrapping: the signed assertion hidden inside an evil one that carries no signature."""
    root = etree.fromstring(base64.b64decode(signed_b64))
    signed = root.find("saml:Assertion", NS)
    assert signed is not None
    evil = copy.deepcopy(signed)
    evil.set("ID", "_evil" + signed.get("ID", "")[1:])
    signature = evil.find("ds:Signature", NS)
    assert signature is not None
    evil.remove(signature)
    name_id = evil.find("saml:Subject/saml:NameID", NS)
    assert name_id is not None
    name_id.text = evil_email
    # The original, signed, goes inside the evil assertion where a careless verifier finds the signature.
    root.replace(signed, evil)
    evil.find("saml:Subject", NS).append(signed)  # type: ignore[union-attr]
    return base64.b64encode(etree.tostring(root)).decode()


__all__ = ["BINDING_HTTP_POST", "PysamlIdp", "KeyPair", "make_key_pair", "iso", "wrap_signature"]

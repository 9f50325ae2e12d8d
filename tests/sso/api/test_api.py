"""/api/v1/sso: admins only, the IdP is given as metadata XML, a URL or by hand."""

from __future__ import annotations

from typing import Any

import pytest
from django_scopes import scopes_disabled

from accounts.models import AuditEvent, Role
from tests.sso.idp import PysamlIdp


def _idp(keys: Any) -> PysamlIdp:
    return PysamlIdp("https://idp.example.test/metadata", "https://idp.example.test/sso", keys["idp"], [])


def test_get_gives_what_the_idp_needs(tenant, key_client) -> None:
    response = key_client(tenant, Role.ADMIN).get("/api/v1/sso")
    assert response.status_code == 200
    body = response.json()
    slug = tenant.slug
    assert body["configured"] is False and body["enabled"] is False
    assert body["sp_entity_id"].endswith(f"/accounts/saml/{slug}/metadata/")
    assert body["acs_url"] == f"http://testserver/accounts/saml/{slug}/acs/"
    assert body["metadata_url"] == f"http://testserver/accounts/saml/{slug}/metadata/"
    assert body["login_url"] == f"http://testserver/accounts/saml/{slug}/login/"


def test_put_with_pasted_metadata_and_a_preset(tenant, key_client, keys) -> None:
    admin = key_client(tenant, Role.ADMIN)
    response = admin.put(
        "/api/v1/sso",
        {
            "preset": "entra",
            "idp_metadata_xml": _idp(keys).metadata_xml(),
            "email_domains": ["Example.test", "@corp.example.test"],
            "group_roles": {"ops": "operator"},
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["idp_entity_id"] == "https://idp.example.test/metadata"
    assert body["idp_sso_url"] == "https://idp.example.test/sso"
    assert len(body["idp_certificate_fingerprint"]) == 95
    assert body["email_domains"] == ["corp.example.test", "example.test"]
    assert body["group_attribute"] == "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
    assert body["attribute_map"]["email"][0].endswith("/claims/emailaddress")
    assert body["allow_idp_initiated"] is False
    assert "idp_certificate" not in body
    with scopes_disabled():
        assert AuditEvent.objects.filter(tenant=tenant, action="sso.create").count() == 1
    # The SP metadata is served for the IdP.
    metadata = admin.get(body["metadata_url"].removeprefix("http://testserver"), HTTP_HOST="testserver")
    assert metadata.status_code == 200 and b"AssertionConsumerService" in metadata.content
    assert b'WantAssertionsSigned="true"' in metadata.content


def test_put_by_hand_then_change_one_setting(tenant, key_client, keys) -> None:
    admin = key_client(tenant, Role.ADMIN)
    first = admin.put(
        "/api/v1/sso",
        {
            "idp_entity_id": "https://kc.example.test/realms/acme",
            "idp_sso_url": "https://kc.example.test/realms/acme/protocol/saml",
            "idp_certificate": keys["idp"].cert_file.read_text(),
        },
        format="json",
    )
    assert first.status_code == 200, first.content
    assert first.json()["preset"] == "custom"
    second = admin.put("/api/v1/sso", {"allow_idp_initiated": True}, format="json")
    assert second.status_code == 200
    assert second.json()["allow_idp_initiated"] is True
    assert second.json()["idp_entity_id"] == "https://kc.example.test/realms/acme"
    with scopes_disabled():
        assert AuditEvent.objects.filter(tenant=tenant, action="sso.update").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"idp_metadata_xml": "<not-metadata/>"}, "idp_metadata_xml"),
        ({"idp_metadata_xml": "<<<"}, "idp_metadata_xml"),
        (
            {
                "idp_entity_id": "x",
                "idp_sso_url": "https://idp.test/sso",
                "idp_certificate": "bm90IGEgY2VydA==",
            },
            "idp_certificate",
        ),
        ({"idp_entity_id": "x", "idp_sso_url": "ftp://idp.test/sso"}, "idp_sso_url"),
        ({"idp_entity_id": "x"}, "idp_sso_url"),
        ({"preset": "ping"}, "preset"),
        ({"group_roles": {"g": "none"}}, "group_roles"),
        ({"group_roles": {"g": "superuser"}}, "group_roles"),
        ({"email_domains": ["not a domain"]}, "email_domains"),
        ({"attribute_map": {"password": ["x"]}}, "attribute_map"),
        ({"idp_metadata_url": "http://idp.example.test/metadata"}, "idp_metadata_url"),
        ({"idp_metadata_url": "https://127.0.0.1/metadata"}, "idp_metadata_url"),
        ({"idp_metadata_url": "https://10.1.2.3/metadata"}, "idp_metadata_url"),
        ({"idp_metadata_url": "https://169.254.169.254/latest/meta-data"}, "idp_metadata_url"),
        ({"idp_metadata_url": "https://[::1]/metadata"}, "idp_metadata_url"),
        ({"idp_metadata_url": "https://localhost/metadata"}, "idp_metadata_url"),
    ],
)
def test_bad_input_is_400_with_the_field(tenant, key_client, keys, body: dict[str, Any], field: str) -> None:
    response = key_client(tenant, Role.ADMIN).put("/api/v1/sso", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    with scopes_disabled():
        assert not AuditEvent.objects.filter(tenant=tenant, action__startswith="sso.").exists()


@pytest.mark.parametrize("method", ["put", "delete"])
def test_a_viewer_or_operator_cannot_write(tenant, key_client, method: str) -> None:
    for role in (Role.VIEWER, Role.OPERATOR):
        response = getattr(key_client(tenant, role), method)("/api/v1/sso", {}, format="json")
        assert response.status_code == 403


def test_delete_turns_sso_off(make_sso, key_client) -> None:
    sso = make_sso()
    admin = key_client(sso.tenant, Role.ADMIN)
    assert admin.delete("/api/v1/sso").status_code == 204
    assert admin.get("/api/v1/sso").json()["configured"] is False
    assert sso.events("sso.delete")
    # Its IdP no longer signs anyone in, and its domain is free again.
    assert sso.client().post("/sso/start", {"email": "a@acme.test"}).status_code == 404
    assert sso.client().get(f"/accounts/saml/{sso.tenant.slug}/metadata/").status_code == 404


def test_each_tenant_sees_its_own_configuration(make_sso, make_tenant, key_client) -> None:
    sso = make_sso()
    outsider = make_tenant("Outsider")
    body = key_client(outsider, Role.ADMIN).get("/api/v1/sso").json()
    assert body["configured"] is False
    assert sso.tenant.slug not in body["acs_url"]


def test_put_with_a_metadata_url_fetches_it(tenant, key_client, keys, settings) -> None:
    """Fetched once, on request, through the webhooks' guard (here loopback http, allowed for tests)."""
    import http.server
    import threading

    metadata = _idp(keys).metadata_xml().encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/samlmetadata+xml")
            self.end_headers()
            self.wfile.write(metadata)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    settings.ALLOW_HTTP_WEBHOOKS = True
    try:
        url = f"http://127.0.0.1:{server.server_port}/metadata"
        response = key_client(tenant, Role.ADMIN).put("/api/v1/sso", {"idp_metadata_url": url}, format="json")
    finally:
        thread.join(5)
        server.server_close()
    assert response.status_code == 200, response.content
    assert response.json()["idp_entity_id"] == "https://idp.example.test/metadata"
    assert response.json()["idp_metadata_url"] == url


def test_only_an_admin_reads_the_configuration(make_sso, key_client) -> None:
    sso = make_sso()
    for role in (Role.VIEWER, Role.OPERATOR):
        assert key_client(sso.tenant, role).get("/api/v1/sso").status_code == 403
    assert key_client(sso.tenant, Role.ADMIN).get("/api/v1/sso").status_code == 200


def _metadata(entity_id: str, sso_url: str, cert: str) -> str:
    return f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity_id}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
      <ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Location="{sso_url}"
        Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"""


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"group_roles": {"a\x00b": "viewer"}}, "group_roles"),
        ({"group_roles": {"": "viewer"}}, "group_roles"),
        ({"group_roles": ["admins"]}, "group_roles"),
        ({"attribute_map": {"email": "not-a-list"}}, "attribute_map"),
        ({"email_domains": "acme.test"}, "email_domains"),
        ({"email_domains": [None]}, "email_domains"),
        ({"enabled": "maybe"}, "enabled"),
        ({"idp_entity_id": "x" * 1025}, "idp_entity_id"),
        ({"idp_certificate": "-----BEGIN CERTIFICATE-----\x00"}, "idp_certificate"),
        (
            {"idp_metadata_xml": "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"},
            "idp_metadata_xml",
        ),
    ],
)
def test_malformed_bodies_are_400_not_500(tenant, key_client, keys, body: dict[str, Any], field: str) -> None:
    base = {
        "idp_entity_id": "x",
        "idp_sso_url": "https://idp.test/sso",
        "idp_certificate": keys["idp"].cert_body,
    }
    response = key_client(tenant, Role.ADMIN).put("/api/v1/sso", {**base, **body}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert field in response.json(), response.json()


@pytest.mark.parametrize("long", ["entity_id", "sso_url"])
def test_metadata_with_values_too_long_to_keep_is_400(tenant, key_client, keys, long: str) -> None:
    entity_id = "https://idp.test/" + ("e" * 1100 if long == "entity_id" else "m")
    sso_url = "https://idp.test/" + ("s" * 1100 if long == "sso_url" else "sso")
    xml = _metadata(entity_id, sso_url, keys["idp"].cert_body)
    response = key_client(tenant, Role.ADMIN).put("/api/v1/sso", {"idp_metadata_xml": xml}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "idp_metadata_xml" in response.json() or f"idp_{long}" in response.json()


def test_a_metadata_url_that_redirects_is_not_followed(tenant, key_client, settings) -> None:
    """A redirect could lead past the guard (to the cloud's metadata service): it is refused, not followed."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    settings.ALLOW_HTTP_WEBHOOKS = True
    try:
        url = f"http://127.0.0.1:{server.server_port}/metadata"
        response = key_client(tenant, Role.ADMIN).put("/api/v1/sso", {"idp_metadata_url": url}, format="json")
    finally:
        thread.join(5)
        server.server_close()
    assert response.status_code == 400, response.content
    assert "HTTP 302" in response.json()["idp_metadata_url"][0]

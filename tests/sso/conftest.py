from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django_scopes import scope, scopes_disabled

from accounts.models import AuditEvent, Tenant
from accounts.services import Actor
from sso import services
from sso.models import SamlConnection
from tests.sso.idp import KeyPair, PysamlIdp, make_key_pair


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    directory: Path = tmp_path_factory.mktemp("saml-keys")
    return {name: make_key_pair(directory, name) for name in ("idp", "other", "second")}


@dataclass
class SsoSetup:
    tenant: Tenant
    connection: SamlConnection
    idp: PysamlIdp
    sp_entity_id: str

    def client(self) -> Client:
        return Client(HTTP_HOST="testserver")

    def events(self, action: str) -> list[AuditEvent]:
        with scopes_disabled():
            return list(AuditEvent.objects.filter(tenant=self.tenant, action=action).order_by("created_at"))

    def start(self, client: Client, **form: str) -> Any:
        response = client.post("/sso/start", form or {"tenant": self.tenant.slug})
        assert response.status_code == 302, response.content[:500]
        return self.idp.parse_request(response["Location"])

    def post_response(
        self, client: Client, saml_response: str, relay_state: str = "", acs_url: str | None = None
    ) -> Any:
        """POST to the ACS as the browser would, and follow allauth's one hop to its finish view."""
        path = urlsplit(acs_url or self.acs_url).path
        response = client.post(path, {"SAMLResponse": saml_response, "RelayState": relay_state})
        assert response.status_code == 302, response.status_code
        return client.get(response["Location"])

    @property
    def acs_url(self) -> str:
        return f"http://testserver/accounts/saml/{self.tenant.slug}/acs/"

    def sign_in(
        self,
        client: Client,
        email: str,
        attributes: dict[str, list[str]] | None = None,
        **response_options: Any,
    ) -> Any:
        request = self.start(client, email=email)
        saml = self.idp.response(
            email,
            attributes,
            in_response_to=request.id,
            acs_url=request.acs_url,
            audience=self.sp_entity_id,
            **response_options,
        )
        return self.post_response(client, saml, request.relay_state, request.acs_url)


@pytest.fixture
def make_sso(make_tenant: Callable[..., Tenant], keys: dict[str, KeyPair]) -> Callable[..., SsoSetup]:
    def make(
        name: str = "Acme",
        domains: tuple[str, ...] = ("acme.test",),
        key: str = "idp",
        idp_entity_id: str | None = None,
        idp_sso_url: str | None = None,
        host: str = "testserver",
        **settings: Any,
    ) -> SsoSetup:
        tenant = make_tenant(name)
        entity_id = idp_entity_id or f"https://idp.{tenant.slug}.test/metadata"
        sso_url = idp_sso_url or f"https://idp.{tenant.slug}.test/sso"
        keypair = keys[key]
        with scope(tenant=tenant):
            connection = services.configure_saml(
                tenant,
                Actor.system("test"),
                preset=settings.pop("preset", "custom"),
                idp_entity_id=entity_id,
                idp_sso_url=sso_url,
                idp_certificate=keypair.cert_file.read_text(),
                email_domains=list(domains),
                **settings,
            )
        metadata = Client(HTTP_HOST=host).get(f"/accounts/saml/{tenant.slug}/metadata/")
        assert metadata.status_code == 200, metadata.content[:300]
        idp = PysamlIdp(
            entity_id=entity_id, sso_url=sso_url, keys=keypair, sp_metadata=metadata.content.decode()
        )
        from sso.adapter import sp_entity_id

        return SsoSetup(tenant, connection, idp, sp_entity_id(connection))

    return make

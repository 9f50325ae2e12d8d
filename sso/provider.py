"""allauth's SAML provider with the checks python3-saml leaves to its caller.

allauth loads ``<app>.provider`` of every installed app: this module registers the provider "saml"
(allauth's own saml app is not installed); allauth's views and URLs are used unchanged. By the time
``sociallogin_from_response`` runs, python3-saml has validated the response in strict mode: signature,
audience, recipient, destination and timestamps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.internal import statekit
from allauth.socialaccount.providers.saml.provider import SAMLProvider
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_scopes import scope
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from accounts.adapter import local_path
from sso import services
from sso.models import SamlConnection


def refusal_page(request: HttpRequest, reason: str, status: int = 403) -> HttpResponse:
    return render(request, "sso/refused.html", {"reason": reason}, status=status)


def refuse_unreadable_response(request: HttpRequest, organization_slug: str) -> HttpResponse | None:
    """At the ACS: a SAMLResponse that is not base64 XML is refused here with a 400 and audited.

    allauth stores the POST and python3-saml parses it in the next request, catching only its own
    errors: empty, non-XML or DTD-bearing input raised from lxml there (a 500, nothing audited).
    """
    value = request.POST.get("SAMLResponse")
    if value is None:
        return None  # allauth answers a missing response itself (audited by the adapter)
    try:
        OneLogin_Saml2_XML.to_etree(OneLogin_Saml2_Utils.b64decode(value))
    except Exception as exc:  # noqa: BLE001 - binascii, lxml and the DTD guard raise many kinds
        connection = services.connection_for_slug(organization_slug)
        if connection is None:
            return None  # allauth's 404 for a tenant without SSO
        reason = f"The SAMLResponse is not base64-encoded XML ({type(exc).__name__})."
        with scope(tenant=connection.tenant):
            services.refuse(connection, getattr(request, "client_ip", None), reason)
        return refusal_page(request, reason, status=400)
    return None


class TenantSAMLProvider(SAMLProvider):
    # allauth builds its URL patterns from the provider's package: keep allauth's.
    package = "allauth.socialaccount.providers.saml"

    @property
    def connection(self) -> SamlConnection:
        connection = getattr(self.app, "connection", None)
        if connection is None:
            raise ImmediateHttpResponse(refusal_page(self.request, "SSO is not configured."))
        return connection

    def sociallogin_from_response(self, request: HttpRequest, response: Any) -> Any:
        connection = self.connection
        try:
            self._check_response(request, connection, response)
        except services.SsoRefused as refused:
            services.refuse(
                connection,
                getattr(request, "client_ip", None),
                refused.reason,
                {"assertion_id": response.get_last_assertion_id() or ""},
            )
            raise ImmediateHttpResponse(refusal_page(request, refused.reason)) from None
        return super().sociallogin_from_response(request, response)

    def _check_response(self, request: HttpRequest, connection: SamlConnection, response: Any) -> None:
        # First: a replayed assertion is refused as a replay, whatever else is wrong with it.
        expiry = response.get_last_assertion_not_on_or_after()
        services.remember_assertion(
            connection,
            response.get_last_assertion_id() or "",
            datetime.fromtimestamp(expiry, tz=UTC) if expiry else None,
        )
        in_response_to = response.get_last_response_in_response_to()
        if in_response_to:
            # allauth answers a bare 403 for an unknown request id; refuse it here with a reason.
            stashed = statekit.get_states(request).get(in_response_to)
            if stashed is None or len(stashed) != 3 or stashed[2] != self.sub_id:
                raise services.SsoRefused("InResponseTo matches no sign-in started here for this tenant.")
        elif not connection.allow_idp_initiated:
            raise services.SsoRefused("IdP-initiated sign-in is not allowed for this tenant.")
        # The ACS request the response came in (allauth replays it into a later request); python3-saml
        # keeps it and offers no accessor.
        relay_state = (response._request_data.get("post_data") or {}).get("RelayState") or ""
        if relay_state and local_path(relay_state) is None:
            raise services.SsoRefused("RelayState is not a path on this site.")


provider_classes = [TenantSAMLProvider]

"""Write operations on a tenant's SAML connection, and the rules of a sign-in through it.

Each takes the tenant and the acting identity first and writes the audit event in the same
transaction. The API, the portal's settings page and the sign-in flow (sso.adapter) call these.
"""

from __future__ import annotations

import base64
import http.client
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from allauth.socialaccount.models import SocialAccount
from cryptography import x509
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_scopes import scopes_disabled
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

from accounts.models import ROLE_RANK, Membership, Role, Tenant, User
from accounts.services import Actor, ServiceError, record
from s3av import outbound
from sso.models import GROUP_ROLES, Preset, SamlConnection, SamlDomain, SeenAssertion, normalise_domain
from sso.presets import MAP_FIELDS, PRESETS

MAX_DOMAINS = 50
MAX_GROUP_ROLES = 200
MAX_METADATA_BYTES = 1024 * 1024
METADATA_TIMEOUT_SECONDS = 10


class SsoRefused(Exception):
    """A sign-in refused by a tenant rule; the reason is audited and shown."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --- configuration ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdpSettings:
    entity_id: str
    sso_url: str
    certificate: str


def parse_idp_metadata(xml: str) -> IdpSettings:
    """Entity id, HTTP-Redirect SSO URL and signing certificate from an IdP's metadata XML."""
    try:
        parsed = OneLogin_Saml2_IdPMetadataParser.parse(xml)
    except Exception:  # noqa: BLE001 - lxml and the parser raise many kinds for bad XML
        raise ServiceError("This is not SAML IdP metadata XML.", field="idp_metadata_xml") from None
    idp = parsed.get("idp") or {}
    certificate = idp.get("x509cert") or next(iter((idp.get("x509certMulti") or {}).get("signing", [])), "")
    settings = IdpSettings(
        entity_id=idp.get("entityId", ""),
        sso_url=(idp.get("singleSignOnService") or {}).get("url", ""),
        certificate=certificate,
    )
    if not (settings.entity_id and settings.sso_url and settings.certificate):
        raise ServiceError(
            "The metadata needs an entity id, an HTTP-Redirect SingleSignOnService and a signing "
            "certificate.",
            field="idp_metadata_xml",
        )
    return settings


def fetch_idp_metadata(url: str) -> str:
    """Fetch metadata from a URL the tenant gave, with the one guard against reaching our network."""
    try:
        target = outbound.check_url(url)
    except outbound.UnsafeUrl as exc:
        raise ServiceError(str(exc), field="idp_metadata_url") from None
    connection = outbound.connect(target, METADATA_TIMEOUT_SECONDS)
    try:
        connection.request("GET", target.path, headers={"Accept": "application/samlmetadata+xml, */*"})
        response = connection.getresponse()
        if response.status != 200:
            raise ServiceError(f"The metadata URL answered HTTP {response.status}.", field="idp_metadata_url")
        body = response.read(MAX_METADATA_BYTES + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise ServiceError(f"The metadata URL could not be read: {exc}.", field="idp_metadata_url") from None
    finally:
        connection.close()
    if len(body) > MAX_METADATA_BYTES:
        raise ServiceError("The metadata is larger than 1 MiB.", field="idp_metadata_url")
    return body.decode("utf-8", "replace")


def _clean_certificate(text: str) -> str:
    body = "".join(line.strip() for line in text.strip().splitlines() if not line.startswith("-----"))
    try:
        x509.load_der_x509_certificate(base64.b64decode(body, validate=True))
    except ValueError:
        raise ServiceError("Not an X.509 certificate (PEM or base64 DER).", field="idp_certificate") from None
    return body


def _clean_url(value: str, field: str) -> str:
    try:
        URLValidator(schemes=["https", "http"])(value)
    except ValidationError:
        raise ServiceError("Enter an http(s) URL.", field=field) from None
    return value


def _clean_domains(tenant: Tenant, domains: Any) -> list[str]:
    if not isinstance(domains, list) or len(domains) > MAX_DOMAINS:
        raise ServiceError(f"Give a list of at most {MAX_DOMAINS} domains.", field="email_domains")
    cleaned = sorted({normalise_domain(d) for d in domains})
    for domain in cleaned:
        if "." not in domain or "@" in domain or len(domain) > 253 or " " in domain:
            raise ServiceError(f"{domain!r} is not an email domain.", field="email_domains")
    with scopes_disabled():
        taken = (
            SamlDomain.objects.filter(domain__in=cleaned)
            .exclude(tenant=tenant)
            .values_list("domain", flat=True)
        )
        if taken:
            # Same answer whoever holds it: which tenant claimed a domain is not this tenant's business.
            raise ServiceError(f"{sorted(taken)[0]} is claimed by another tenant.", field="email_domains")
    return cleaned


def _clean_attribute_map(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict) or set(value) - set(MAP_FIELDS):
        raise ServiceError(f"Map only these fields: {', '.join(MAP_FIELDS)}.", field="attribute_map")
    cleaned: dict[str, list[str]] = {}
    for field, names in value.items():
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not all(isinstance(n, str) and 0 < len(n) <= 512 for n in names):
            raise ServiceError(f"{field}: give attribute names.", field="attribute_map")
        cleaned[field] = names[:10]
    return cleaned


def _clean_group_roles(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > MAX_GROUP_ROLES:
        raise ServiceError(f"Map at most {MAX_GROUP_ROLES} groups to roles.", field="group_roles")
    for group, role in value.items():
        if not isinstance(group, str) or not group or len(group) > 512 or role not in GROUP_ROLES:
            raise ServiceError(
                f"{group!r}: map a group to one of {', '.join(GROUP_ROLES)}.", field="group_roles"
            )
    return dict(value)


_FIELDS = {
    "enabled",
    "preset",
    "idp_entity_id",
    "idp_sso_url",
    "idp_certificate",
    "idp_metadata_url",
    "idp_metadata_xml",
    "email_domains",
    "attribute_map",
    "group_attribute",
    "group_roles",
    "allow_idp_initiated",
}


@transaction.atomic
def configure_saml(tenant: Tenant, actor: Actor, **changes: Any) -> SamlConnection:
    """Create or change the tenant's SAML connection.

    The IdP is given as metadata XML (``idp_metadata_xml``), a metadata URL fetched now
    (``idp_metadata_url``), or by hand (``idp_entity_id``, ``idp_sso_url``, ``idp_certificate``).
    Choosing a preset (the first, or another than the current) fills the attribute map and group
    attribute unless they are given too.
    """
    unknown = set(changes) - _FIELDS
    if unknown:
        raise ServiceError(f"Unknown settings: {', '.join(sorted(unknown))}.")
    connection = SamlConnection.objects.select_for_update().filter(tenant=tenant).first()
    created = connection is None
    if connection is None:
        connection = SamlConnection(tenant=tenant)
    before = _describe(connection) if not created else {}

    idp_source = _apply_idp(connection, changes)
    _apply_sign_in_rules(connection, changes, created)
    domains = _clean_domains(tenant, changes["email_domains"]) if "email_domains" in changes else None
    if domains == [] and tenant.sso_required:
        raise ServiceError(
            "Keep at least one email domain while SSO is required; members would be locked out.",
            field="email_domains",
        )
    _check_idp(connection, idp_source)
    if tenant.sso_required and not connection.enabled:
        raise ServiceError("Switch off 'SSO required' before disabling SSO.", field="enabled")
    connection.save()

    if domains is not None:
        _replace_domains(tenant, connection, domains)
    record(
        tenant,
        actor,
        "sso.create" if created else "sso.update",
        connection,
        {"before": before, "after": _describe(connection)},
    )
    return connection


def _apply_idp(connection: SamlConnection, changes: dict[str, Any]) -> str | None:
    """Take the IdP from metadata (fetched now from a URL, or given) or from fields given by hand.

    Returns the field the metadata came in (``idp_metadata_url`` or ``idp_metadata_xml``), where a
    refusal of what it held is reported; None when the IdP was given by hand.
    """
    metadata_xml = changes.pop("idp_metadata_xml", None)
    metadata_url = changes.pop("idp_metadata_url", None)
    if metadata_url:
        metadata_xml = fetch_idp_metadata(metadata_url)
        connection.idp_metadata_url = metadata_url
    if metadata_xml:
        idp = parse_idp_metadata(metadata_xml)
        connection.idp_entity_id, connection.idp_sso_url = idp.entity_id, idp.sso_url
        connection.idp_certificate = idp.certificate
    for field in ("idp_entity_id", "idp_sso_url", "idp_certificate"):
        if changes.get(field):
            setattr(connection, field, changes[field])
    if not metadata_xml:
        return None
    return "idp_metadata_url" if metadata_url else "idp_metadata_xml"


def _apply_sign_in_rules(connection: SamlConnection, changes: dict[str, Any], created: bool) -> None:
    """The preset, the attribute map, the group mapping and the switches of who signs in and how."""
    if "preset" in changes:
        if changes["preset"] not in Preset.values:
            raise ServiceError(f"Choose one of {', '.join(Preset.values)}.", field="preset")
        if created or changes["preset"] != connection.preset:
            # Only a new choice brings the preset's layout: the settings page sends the preset with every
            # save, which must not wipe an attribute map an admin tuned.
            preset = PRESETS[changes["preset"]]
            changes.setdefault("attribute_map", preset["attribute_map"])
            changes.setdefault("group_attribute", preset["group_attribute"])
        connection.preset = changes["preset"]
    if "attribute_map" in changes:
        connection.attribute_map = _clean_attribute_map(changes["attribute_map"])
    elif created:
        connection.attribute_map = dict(PRESETS[connection.preset]["attribute_map"])  # type: ignore[call-overload]
    if "group_attribute" in changes:
        connection.group_attribute = str(changes["group_attribute"] or "")[:512]
    if "group_roles" in changes:
        connection.group_roles = _clean_group_roles(changes["group_roles"])
    for flag in ("enabled", "allow_idp_initiated"):
        if flag in changes:
            setattr(connection, flag, bool(changes[flag]))


def _check_idp(connection: SamlConnection, source: str | None) -> None:
    """The IdP is complete and well formed; a refusal names ``source`` when the metadata was at fault."""
    for field in ("idp_entity_id", "idp_sso_url"):
        if len(getattr(connection, field)) > 1024:
            raise ServiceError(
                f"The IdP's {field[4:].replace('_', ' ')} is longer than 1024 characters.",
                field=source or field,
            )
    if not connection.idp_entity_id:
        raise ServiceError("Give the IdP's metadata, or its entity id.", field="idp_entity_id")
    if not connection.idp_sso_url:
        raise ServiceError("Give the IdP's metadata, or its SSO URL.", field="idp_sso_url")
    _clean_url(connection.idp_sso_url, "idp_sso_url")
    if not connection.idp_certificate:
        raise ServiceError("Give the IdP's metadata, or its signing certificate.", field="idp_certificate")
    connection.idp_certificate = _clean_certificate(connection.idp_certificate)


def _replace_domains(tenant: Tenant, connection: SamlConnection, domains: list[str]) -> None:
    connection.domains.exclude(domain__in=domains).delete()
    try:
        with transaction.atomic():
            for domain in domains:
                SamlDomain.objects.get_or_create(tenant=tenant, connection=connection, domain=domain)
    except IntegrityError:  # claimed by another tenant at the same moment
        raise ServiceError(
            "One of these domains is claimed by another tenant.", field="email_domains"
        ) from None


def _describe(connection: SamlConnection) -> dict[str, Any]:
    return {
        "enabled": connection.enabled,
        "preset": connection.preset,
        "idp_entity_id": connection.idp_entity_id,
        "idp_sso_url": connection.idp_sso_url,
        "idp_certificate": connection.certificate_fingerprint,
        "email_domains": connection.email_domains() if connection.pk and not connection._state.adding else [],
        "group_attribute": connection.group_attribute,
        "group_roles": connection.group_roles,
        "allow_idp_initiated": connection.allow_idp_initiated,
    }


@transaction.atomic
def delete_saml(tenant: Tenant, actor: Actor) -> None:
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if tenant.sso_required:
        raise ServiceError("Switch off 'SSO required' before removing SSO; members would be locked out.")
    connection = SamlConnection.objects.filter(tenant=tenant).first()
    if connection is None:
        raise ServiceError("SSO is not configured.")
    record(tenant, actor, "sso.delete", connection, {"before": _describe(connection)})
    connection.delete()


# --- sign-in --------------------------------------------------------------------------------------


def connection_for_slug(slug: str) -> SamlConnection | None:
    with scopes_disabled():
        return (
            SamlConnection.objects.select_related("tenant")
            .filter(tenant__slug=slug, enabled=True, tenant__status=Tenant.Status.ACTIVE)
            .first()
        )


def connection_for_email(email: str) -> SamlConnection | None:
    domain = normalise_domain(email.rpartition("@")[2])
    with scopes_disabled():
        claim = (
            SamlDomain.objects.select_related("connection__tenant")
            .filter(domain=domain, connection__enabled=True, tenant__status=Tenant.Status.ACTIVE)
            .first()
        )
    return claim.connection if claim else None


def refuse(
    connection: SamlConnection, ip: str | None, reason: str, details: dict[str, Any] | None = None
) -> None:
    """Audit a refused assertion or sign-in (its own transaction: the refusal itself rolls nothing back)."""
    with transaction.atomic():
        record(
            connection.tenant,
            Actor(ip=ip, label_override="sso"),
            "sso.refused",
            connection,
            {k: str(v).replace("\x00", "")[:500] for k, v in {"reason": reason, **(details or {})}.items()},
        )


def remember_assertion(
    connection: SamlConnection, assertion_id: str, not_on_or_after: datetime | None
) -> None:
    """Accept an assertion id once; raise SsoRefused for one seen before (a replay)."""
    if not assertion_id:
        raise SsoRefused("The assertion has no id.")
    if not_on_or_after is None:
        # Without an expiry an assertion could be replayed whenever we had forgotten it.
        raise SsoRefused("The assertion has no NotOnOrAfter.")
    tenant = connection.tenant
    with transaction.atomic():
        SeenAssertion.objects.filter(tenant=tenant).expired().delete()
        try:
            with transaction.atomic():
                SeenAssertion.objects.create(
                    tenant=tenant, assertion_id=assertion_id[:256], not_on_or_after=not_on_or_after
                )
        except IntegrityError:
            raise SsoRefused("This assertion was used before (replay).") from None


@dataclass(frozen=True)
class SsoIdentity:
    uid: str
    email: str
    name: str
    groups: list[str]


def email_allowed(connection: SamlConnection, email: str) -> bool:
    domain = normalise_domain(email.rpartition("@")[2])
    return bool(domain) and connection.domains.filter(domain=domain).exists()


@transaction.atomic
def sign_in_user(
    connection: SamlConnection, ip: str | None, identity: SsoIdentity, linked: User | None
) -> User:
    """The user an assertion signs in, created just in time, with the tenant's role rules applied.

    ``linked`` is the user the IdP's subject is already linked to in this tenant, if any. Raises
    SsoRefused (nothing written) when a rule refuses the sign-in.
    """
    tenant = connection.tenant
    email = identity.email.strip().lower()
    if not email or "@" not in email:
        raise SsoRefused("The assertion carries no email address.")
    if "\x00" in email or "\x00" in identity.uid:
        raise SsoRefused("The assertion's email or subject holds a NUL character.")
    if not email_allowed(connection, email):
        # Never sign in (nor take over) an address in a domain this tenant has not claimed.
        raise SsoRefused(f"The email domain of {email} is not claimed by this tenant.")
    user = linked
    if user is not None and user.email != email:
        raise SsoRefused("The IdP's subject is linked to another email address.")
    system = Actor(ip=ip, label_override="sso")
    if user is None:
        user = User.objects.filter(email__iexact=email).first()
        if user is not None:
            _check_takeover(tenant, user)
    if user is not None and (user.is_staff or user.is_superuser):
        # Support staff reach every tenant through the admin: never through a tenant's IdP.
        raise SsoRefused("Support staff sign in with their password, not through a tenant's IdP.")
    if user is None:
        user = User.objects.create_user(email=email, name=identity.name[:200])
        record(tenant, system, "sso.jit_user", user, {"email": email})
    if not user.is_active:
        raise SsoRefused(f"{email} is deactivated.")
    if linked is None:
        SocialAccount.objects.create(user=user, provider=connection.provider_id, uid=identity.uid)
    membership = Membership.objects.select_for_update().filter(tenant=tenant, user=user).first()
    if membership is None:
        membership = Membership.objects.create(tenant=tenant, user=user, role=Role.NONE)
        record(tenant, system, "member.add", membership, {"email": email, "role": Role.NONE, "via": "sso"})
    _apply_group_role(connection, system, membership, identity.groups)
    record(
        tenant,
        Actor(user=user, ip=ip),
        "sso.sign_in",
        user,
        {"email": email, "role": membership.role, "groups": identity.groups[:50]},
    )
    return user


def _check_takeover(tenant: Tenant, user: User) -> None:
    """Refuse to link an existing account that reaches more than this tenant.

    A domain claim is first come, first served, not a proof of owning the domain: were the IdP of the
    tenant that claimed it allowed to sign in an existing account that belongs to other tenants, that
    tenant's admin could sign in as anybody of that domain.
    """
    with scopes_disabled():
        elsewhere = Membership.objects.filter(user=user).exclude(tenant=tenant).exists()
    if elsewhere:
        raise SsoRefused(
            f"{user.email} already has an account that belongs to another tenant; it cannot be taken "
            "over through this tenant's IdP."
        )


def _apply_group_role(
    connection: SamlConnection, actor: Actor, membership: Membership, groups: list[str]
) -> None:
    if not connection.group_roles:
        return  # without a mapping, the role an admin set stays
    role = connection.role_for_groups(groups) or Role.NONE
    if role == membership.role:
        return
    if membership.role == Role.ADMIN and ROLE_RANK[role] < ROLE_RANK[Role.ADMIN]:
        admins = Membership.objects.filter(tenant=membership.tenant, role=Role.ADMIN, user__is_active=True)
        if admins.count() <= 1:
            return  # a tenant keeps at least one admin; the IdP cannot demote the last one
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    record(
        membership.tenant,
        actor,
        "sso.role_from_group",
        membership,
        {"email": membership.user.email, "from": old, "to": role, "groups": groups[:50]},
    )


def record_password_sign_in(user: User, ip: str | None, break_glass: bool) -> None:
    """Audit a password sign-in in each of the user's tenants; staff entering an SSO-only tenant too."""
    with scopes_disabled():
        memberships = list(Membership.objects.filter(user=user).select_related("tenant"))
    with transaction.atomic():
        for membership in memberships:
            tenant = membership.tenant
            action = "auth.break_glass" if break_glass and tenant.sso_required else "auth.password_sign_in"
            record(tenant, Actor(user=user, ip=ip), action, user, {"email": user.email})


def password_refused_for(user: User) -> Tenant | None:
    """The tenant that requires SSO of this user, if any (support staff aside: break-glass)."""
    if user.is_staff:
        return None
    with scopes_disabled():
        membership = (
            Membership.objects.filter(user=user, tenant__sso_required=True).select_related("tenant").first()
        )
    return membership.tenant if membership else None


def record_password_refused(tenant: Tenant, user: User, ip: str | None) -> None:
    with transaction.atomic():
        record(tenant, Actor(user=user, ip=ip), "auth.password_refused", user, {"reason": "SSO is required"})


def now() -> datetime:
    return timezone.now()

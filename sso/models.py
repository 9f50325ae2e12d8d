"""A tenant's SAML connection, the email domains it claims, and the assertions it has accepted."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import timedelta
from typing import Any

from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from accounts.models import ROLE_RANK, Role, Tenant
from sso.presets import CLOCK_SKEW_SECONDS


class Preset(models.TextChoices):
    OKTA = "okta", "Okta"
    ENTRA = "entra", "Microsoft Entra ID"
    GOOGLE = "google", "Google Workspace"
    CUSTOM = "custom", "Custom (Keycloak and others)"


# Roles a group may grant: never "none" (that is what no mapping gives).
GROUP_ROLES = (Role.ADMIN, Role.OPERATOR, Role.VIEWER)


class SamlConnection(models.Model):
    """One per tenant: the tenant's IdP and the rules for who signs in through it.

    allauth sees it as a SocialApp of provider "saml" whose client id is the tenant's slug
    (sso.adapter builds that app from this row; nothing is kept in allauth's own tables).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="saml_connection")
    enabled = models.BooleanField(default=True)
    preset = models.CharField(max_length=16, choices=Preset.choices, default=Preset.CUSTOM)
    idp_entity_id = models.CharField(max_length=1024)
    idp_sso_url = models.URLField(max_length=1024)
    idp_certificate = models.TextField(help_text="The IdP's signing certificate (PEM or base64 DER).")
    idp_metadata_url = models.URLField(max_length=1024, blank=True)
    attribute_map = models.JSONField(default=dict, blank=True)
    group_attribute = models.CharField(max_length=512, blank=True)
    group_roles = models.JSONField(default=dict, blank=True, help_text="IdP group -> role.")
    allow_idp_initiated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(tenant="tenant")

    def __str__(self) -> str:
        return f"SAML for {self.tenant}"

    @property
    def provider_id(self) -> str:
        # allauth keys social accounts and login states by this: one tenant's IdP can never match
        # another tenant's accounts or SP-initiated requests.
        return f"saml-{self.tenant_id}"

    @property
    def certificate_fingerprint(self) -> str:
        body = "".join(
            line for line in self.idp_certificate.strip().splitlines() if not line.startswith("-----")
        )
        try:
            der = base64.b64decode(body, validate=False)
        except ValueError:
            return ""
        digest = hashlib.sha256(der).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    def email_domains(self) -> list[str]:
        return sorted(self.domains.values_list("domain", flat=True))

    def role_for_groups(self, groups: list[str]) -> str | None:
        """The highest role the mapping gives these groups, or None when no group is mapped."""
        roles = [self.group_roles[g] for g in groups if g in self.group_roles]
        return max(roles, key=lambda r: ROLE_RANK[r]) if roles else None


class SamlDomain(models.Model):
    """An email domain a tenant claims: only its addresses sign in through the tenant's IdP.

    Unique across tenants, so two tenants never both claim (and route sign-ins for) one domain.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(SamlConnection, on_delete=models.CASCADE, related_name="domains")
    domain = models.CharField(max_length=253, unique=True)

    objects = ScopedManager(tenant="tenant")

    def __str__(self) -> str:
        return self.domain


class SeenAssertionQuerySet(models.QuerySet["SeenAssertion"]):
    def expired(self) -> SeenAssertionQuerySet:
        return self.filter(not_on_or_after__lt=timezone.now() - timedelta(seconds=CLOCK_SKEW_SECONDS))


class SeenAssertion(models.Model):
    """An assertion id accepted once, remembered until it expires, so a replay is refused.

    python3-saml keeps no such store.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    assertion_id = models.CharField(max_length=256)
    not_on_or_after = models.DateTimeField()
    seen_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(
        tenant="tenant", _manager_class=models.Manager.from_queryset(SeenAssertionQuerySet)
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "assertion_id"], name="seen_assertion_unique")
        ]

    def __str__(self) -> str:
        return self.assertion_id


def normalise_domain(value: Any) -> str:
    return str(value).strip().lower().lstrip("@").rstrip(".")

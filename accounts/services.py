"""Write operations on tenants, members, API keys and settings.

Each takes the tenant and the acting identity first and writes the audit event.
Portal views, the API, admin actions and management commands all call these.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from allauth.account.forms import default_token_generator
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import models, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django_scopes import scopes_disabled

from accounts.models import ApiKey, AuditEvent, Membership, Role, Tenant, User

logger = logging.getLogger(__name__)

# An API key expires at most this far ahead (or never, without an expiry).
MAX_API_KEY_LIFETIME = timedelta(days=3650)


class ServiceError(Exception):
    """A refused operation; the message is shown to the user."""

    def __init__(self, message: str, field: str | None = None, code: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


M = TypeVar("M", bound=models.Model)


def get_owned(model: type[M], tenant: Tenant, pk: Any, *, field: str | None = None, noun: str = "") -> M:
    """The row of ``model`` with ``pk`` that belongs to ``tenant``.

    ``pk`` may be the row itself (checked without a query). Missing and another tenant's are the same
    ``ServiceError`` ("No such bucket."), so a refusal never tells whether the id exists elsewhere.
    """
    found: M | None
    if isinstance(pk, model):
        found = pk if getattr(pk, "tenant_id", None) == tenant.pk else None
    else:
        try:
            found = model._default_manager.filter(tenant=tenant, pk=pk).first()
        except (ValueError, ValidationError):  # not even an id of this model's kind
            found = None
    if found is None:
        raise ServiceError(f"No such {noun or model._meta.verbose_name}.", field=field)
    return found


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user, an API key, or the system (neither)."""

    user: User | None = None
    api_key: ApiKey | None = None
    ip: str | None = None
    label_override: str | None = None

    @property
    def label(self) -> str:
        if self.label_override:
            return self.label_override
        if self.api_key is not None:
            return f"api-key:{self.api_key.prefix} ({self.api_key.name})"
        if self.user is not None:
            return self.user.email
        return "system"

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(label_override=label)

    @classmethod
    def from_request(cls, request: Any) -> Actor:
        api_key = getattr(request, "api_key", None)
        user = getattr(request, "user", None)
        if user is not None and not getattr(user, "is_authenticated", False):
            user = None
        if api_key is not None:
            user = None
        return cls(user=user, api_key=api_key, ip=getattr(request, "client_ip", None))


def record(
    tenant: Tenant | None,
    actor: Actor,
    action: str,
    target: models.Model | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        tenant=tenant,
        actor_user=actor.user,
        actor_api_key=actor.api_key,
        actor_label=actor.label[:254],
        action=action,
        details=details or {},
        ip=actor.ip,
    )
    if target is not None:
        event.target_type = target._meta.label_lower
        event.target_id = str(target.pk)
        event.target_repr = str(target)[:254]
    event.save()
    return event


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "tenant"
    slug = base
    with scopes_disabled():
        while Tenant.objects.filter(slug=slug).exists():
            slug = f"{base}-{secrets.token_hex(3)}"
    return slug


@transaction.atomic
def create_tenant(
    actor: Actor, name: str, admin_email: str, admin_password: str | None = None
) -> tuple[Tenant, User, bool]:
    """Create a tenant and its first admin. Returns (tenant, admin, created_user)."""
    name = name.strip()
    if not name:
        raise ServiceError("A tenant needs a name.", field="name")
    tenant = Tenant.objects.create(
        name=name, slug=_unique_slug(name), allowed_cidrs=list(settings.DEFAULT_ALLOWED_CIDRS)
    )
    user, created = _get_or_create_user(admin_email, admin_password)
    Membership.objects.create(tenant=tenant, user=user, role=Role.ADMIN)
    record(tenant, actor, "tenant.create", tenant, {"admin": user.email})
    return tenant, user, created


def _get_or_create_user(email: str, password: str | None = None) -> tuple[User, bool]:
    email = User.objects.normalize_email(email.strip()).lower()
    if "@" not in email:
        raise ServiceError(f"{email!r} is not an email address.", field="email")
    existing = User.objects.filter(email=email).first()
    if existing is not None:
        return existing, False
    return User.objects.create_user(email=email, password=password), True


_TENANT_FIELDS = {"name", "allowed_cidrs", "sso_required", "max_scan_bytes", "monthly_scan_bytes_limit"}


@transaction.atomic
def update_tenant_settings(
    tenant: Tenant, actor: Actor, *, lock_out_actor: bool = False, **changes: Any
) -> Tenant:
    """Change the tenant's settings.

    Allowed ranges that leave out the actor's own address are refused unless ``lock_out_actor``
    says the actor saw that and wants it anyway (the portal asks; the API never does).
    """
    unknown = set(changes) - _TENANT_FIELDS
    if unknown:
        raise ServiceError(f"Unknown settings: {', '.join(sorted(unknown))}.")
    before = {field: getattr(tenant, field) for field in changes}
    details: dict[str, Any] = {"before": before, "after": changes}
    if "allowed_cidrs" in changes:
        changes["allowed_cidrs"] = [str(c) for c in changes["allowed_cidrs"]]
        if locks_out(changes["allowed_cidrs"], actor.ip):
            if not lock_out_actor:
                raise ServiceError(
                    f"These ranges would lock out your own address {actor.ip}; include it first.",
                    field="allowed_cidrs",
                )
            details["locked_out_actor_ip"] = actor.ip
    for field, value in changes.items():
        setattr(tenant, field, value)
    tenant.full_clean()
    tenant.save(update_fields=list(changes))
    record(tenant, actor, "tenant.update", tenant, details)
    return tenant


def locks_out(cidrs: list[str], ip: str | None) -> bool:
    """Whether an allow-list of these ranges would refuse this address (an empty list allows any)."""
    return bool(cidrs) and bool(ip) and not _cidrs_allow(cidrs, ip or "")


def _cidrs_allow(cidrs: list[str], ip: str) -> bool:
    probe = Tenant(allowed_cidrs=cidrs)
    return probe.allows_address(ip)


def _admin_count(tenant: Tenant) -> int:
    # Locks the tenant's admin rows: two concurrent demotions cannot both see "another admin is left".
    admins = Membership.objects.select_for_update().filter(
        tenant=tenant, role=Role.ADMIN, user__is_active=True
    )
    return len(list(admins.values_list("pk", flat=True)))


@transaction.atomic
def add_member(tenant: Tenant, actor: Actor, email: str, role: str) -> Membership:
    """Add a member and email them an invitation (after commit): how to sign in, or set a password."""
    user, _ = _get_or_create_user(email)
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise ServiceError(f"{user.email} is already a member.", field="email")
    membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    # Whether the address already had an account (in another tenant) is not this tenant's business:
    # the event is the same either way.
    record(tenant, actor, "member.add", membership, {"email": user.email, "role": role})
    transaction.on_commit(lambda: send_invitation(membership, actor))
    return membership


@transaction.atomic
def resend_invitation(tenant: Tenant, actor: Actor, membership: Membership) -> None:
    """Email the member their invitation again (a set-password link lasts PASSWORD_RESET_TIMEOUT)."""
    membership = Membership.objects.select_related("user", "tenant").get(pk=membership.pk, tenant=tenant)
    record(tenant, actor, "member.invite", membership, {"email": membership.user.email})
    transaction.on_commit(lambda: send_invitation(membership, actor))


def send_invitation(membership: Membership, actor: Actor) -> bool:
    """Send the invitation email; False (logged) when the mail server refused it.

    A person without a password (and a tenant without SSO) gets a link to set one, allauth's
    password-reset key; others are told where to sign in. Runs after the membership is committed: a
    mail server that is down does not undo adding the member.
    """
    user, tenant = membership.user, membership.tenant
    sso = tenant.sso_required or tenant.sso_configured
    set_password_url = ""
    if not sso and not user.has_usable_password():
        path = reverse(
            "account_reset_password_from_key",
            kwargs={"uidb36": user_pk_to_url_str(user), "key": default_token_generator.make_token(user)},
        )
        set_password_url = f"{settings.PUBLIC_URL}{path}"
    context = {
        "tenant_name": tenant.name,
        "tenant_slug": tenant.slug,
        "role": Role(membership.role).label,
        "invited_by": actor.label,
        "sso": sso,
        "set_password_url": set_password_url,
        "valid_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
        "sign_in_url": f"{settings.PUBLIC_URL}{reverse('account_login')}",
    }
    subject = render_to_string("account/email/invitation_subject.txt", context).strip()
    body = render_to_string("account/email/invitation_message.txt", context)
    try:
        send_mail(subject, body, None, [user.email])
    except Exception:  # the mail server's errors are many (SMTP, socket, TLS); none may undo the add
        logger.exception("invitation email to a new member of %s failed", tenant.slug)
        return False
    return True


@transaction.atomic
def change_role(tenant: Tenant, actor: Actor, membership: Membership, role: str) -> Membership:
    membership = Membership.objects.select_for_update().get(pk=membership.pk, tenant=tenant)
    old = membership.role
    if old == Role.ADMIN and role != Role.ADMIN and _admin_count(tenant) <= 1:
        raise ServiceError("A tenant keeps at least one admin.", field="role")
    membership.role = role
    membership.save(update_fields=["role"])
    record(tenant, actor, "member.role", membership, {"from": old, "to": role})
    return membership


@transaction.atomic
def remove_member(tenant: Tenant, actor: Actor, membership: Membership) -> None:
    membership = Membership.objects.select_for_update().get(pk=membership.pk, tenant=tenant)
    if membership.role == Role.ADMIN and _admin_count(tenant) <= 1:
        raise ServiceError("A tenant keeps at least one admin.")
    record(tenant, actor, "member.remove", membership, {"email": membership.user.email})
    membership.delete()


@transaction.atomic
def create_api_key(
    tenant: Tenant, actor: Actor, name: str, role: str = Role.VIEWER, expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """Create a key (a viewer's unless a role is given); the secret is returned once and never stored."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ServiceError("The expiry must be in the future.", field="expires_at")
    if expires_at is not None and expires_at > timezone.now() + MAX_API_KEY_LIFETIME:
        raise ServiceError(
            f"The expiry is at most {MAX_API_KEY_LIFETIME.days} days ahead.", field="expires_at"
        )
    prefix, secret, digest = ApiKey.generate()
    key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        role=role,
        prefix=prefix,
        secret_hash=digest,
        created_by=actor.user,
        expires_at=expires_at,
    )
    record(tenant, actor, "api_key.create", key, {"role": role, "expires_at": expires_at})
    return key, secret


@transaction.atomic
def revoke_api_key(tenant: Tenant, actor: Actor, key: ApiKey) -> ApiKey:
    key = get_owned(ApiKey, tenant, key, noun="key")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        record(tenant, actor, "api_key.revoke", key)
    return key


def authenticate_api_key(secret: str) -> ApiKey | None:
    """Find the usable key for a presented secret, or None. Runs before any tenant scope."""
    prefix = ApiKey.prefix_of(secret)
    if prefix is None:
        return None
    with scopes_disabled():
        key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    if key is None or not key.matches(secret) or not key.is_usable or not key.tenant.is_active:
        return None
    now = timezone.now()
    # Write last-used at most once a minute per key: not a write on every request.
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        with scopes_disabled():
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key

"""Write operations on linked AWS accounts: link, verify, update, tear down, delete.

Each takes the tenant and the acting identity first and writes the audit event. AWS errors reach the
tenant as sentences (``ServiceError`` / ``last_error``), never as tracebacks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import Actor, ServiceError, get_owned, record
from linked_accounts import aws
from linked_accounts.models import AwsAccount, AwsOrganization
from linked_accounts.signals import account_teardown

log = logging.getLogger(__name__)


@dataclass
class TeardownReport:
    """What a tear-down removed and what it could not (with why, in words)."""

    removed: list[str] = field(default_factory=list)
    not_removed: list[str] = field(default_factory=list)

    def extend(self, other: TeardownReport) -> None:
        self.removed.extend(other.removed)
        self.not_removed.extend(other.not_removed)

    def as_dict(self) -> dict[str, list[str]]:
        return {"removed": list(self.removed), "not_removed": list(self.not_removed)}


def link_account(
    tenant: Tenant,
    actor: Actor,
    account_id: str,
    name: str = "",
    organization: AwsOrganization | None = None,
) -> AwsAccount:
    """Link an account; under ``organization``, its role is the StackSet's and trusts that external id."""
    account_id = (account_id or "").strip()
    if len(account_id) != 12 or not account_id.isdigit():
        raise ServiceError("An AWS account id is 12 digits.", field="account_id")
    if organization is not None:
        organization = get_owned(
            AwsOrganization, tenant, organization, field="organization", noun="organisation"
        )
    details: dict[str, Any] = {"account_id": account_id}
    if organization is not None:
        details["organization"] = str(organization.pk)
    try:
        with transaction.atomic():
            account = AwsAccount.objects.create(
                tenant=tenant, account_id=account_id, name=name.strip(), organization=organization
            )
            record(tenant, actor, "account.link", account, details)
    except IntegrityError:
        raise ServiceError(f"Account {account_id} is already linked.", field="account_id") from None
    return account


@transaction.atomic
def create_organization(tenant: Tenant, actor: Actor, name: str = "") -> AwsOrganization:
    """A new organisation link: one generated external id for every account its StackSet deploys to."""
    organization = AwsOrganization.objects.create(tenant=tenant, name=name.strip())
    record(tenant, actor, "organization.create", organization, {"name": organization.name})
    return organization


@transaction.atomic
def update_organization(
    tenant: Tenant, actor: Actor, organization: AwsOrganization, *, name: str
) -> AwsOrganization:
    _check_organization_owner(tenant, organization)
    before = organization.name
    organization.name = name.strip()
    organization.save(update_fields=["name"])
    change = {"name": {"from": before, "to": organization.name}}
    record(tenant, actor, "organization.update", organization, change)
    return organization


@transaction.atomic
def delete_organization(tenant: Tenant, actor: Actor, organization: AwsOrganization) -> None:
    """Forget an organisation link; refused while accounts are linked under it (their roles trust it)."""
    _check_organization_owner(tenant, organization)
    linked = AwsAccount.objects.filter(tenant=tenant, organization=organization).count()
    if linked:
        raise ServiceError(
            f"{linked} linked account(s) use this organisation's external id; delete them first "
            "(removing an account tears down what s3av created in it)."
        )
    record(tenant, actor, "organization.delete", organization, {"name": organization.name})
    organization.delete()


@transaction.atomic
def update_account(tenant: Tenant, actor: Actor, account: AwsAccount, *, name: str) -> AwsAccount:
    _check_owner(tenant, account)
    before = account.name
    account.name = name.strip()
    account.save(update_fields=["name"])
    record(tenant, actor, "account.update", account, {"name": {"from": before, "to": account.name}})
    return account


def verify_account(tenant: Tenant, actor: Actor, account: AwsAccount, role_arn: str) -> AwsAccount:
    """Assume ``role_arn`` with the account's external id and mark the account connected or in error.

    With ``settings.AWS_REFUSE_ROLE_WITHOUT_EXTERNAL_ID`` (on by default) the role is also assumed
    *without* the external id; if that works, anyone who learns the ARN could make s3av act on this
    account for them (the confused deputy), so the role is refused. Raises ``ServiceError`` after saving
    the error state when the role is refused.
    """
    _check_owner(tenant, account)
    role_arn = (role_arn or "").strip()
    parsed = aws.parse_role_arn(role_arn)
    if parsed is None:
        raise ServiceError(
            "That is not an IAM role ARN (arn:aws:iam::<account id>:role/<name>).",
            field="role_arn",
            code="not_a_role_arn",
        )
    if parsed[1] != account.account_id:
        raise ServiceError(
            f"That role belongs to account {parsed[1]}, not to the linked account {account.account_id}.",
            field="role_arn",
            code="wrong_account",
        )

    problem = _check_role(account, role_arn)
    account.role_arn = role_arn
    account.last_checked_at = timezone.now()
    account.status = AwsAccount.Status.ERROR if problem else AwsAccount.Status.CONNECTED
    account.last_error = problem.message if problem else ""
    aws.forget_credentials(account)
    with transaction.atomic():
        account.save(update_fields=["role_arn", "last_checked_at", "status", "last_error"])
        record(tenant, actor, "account.verify", account, {"role_arn": role_arn, "status": account.status})
    if problem:
        raise ServiceError(problem.message, field="role_arn", code=problem.code)
    return account


@dataclass(frozen=True)
class RoleProblem:
    """Why a role is refused: ``message`` for the tenant, ``code`` for a page to explain it further."""

    code: str
    message: str


# AWS's error code of a failed AssumeRole -> what it means for the tenant's role.
_ASSUME_ROLE_CODES = {
    "AccessDenied": "role_refused",
    "RegionDisabledException": "region_disabled",
    "ExpiredToken": "service_credentials",
    "InvalidClientTokenId": "service_credentials",
    "SignatureDoesNotMatch": "service_credentials",
    "": "unreachable",
}


def _check_role(account: AwsAccount, role_arn: str) -> RoleProblem | None:
    """None when the role is usable, else what is wrong with it, in words (and as a code)."""
    try:
        aws.assume_role(role_arn, account.role_external_id, f"s3av-verify-{str(account.tenant_id)[:8]}")
    except aws.AssumeRoleFailed as exc:
        return RoleProblem(_ASSUME_ROLE_CODES.get(exc.code, "assume_failed"), exc.message)
    if not settings.AWS_REFUSE_ROLE_WITHOUT_EXTERNAL_ID:
        return None
    try:
        aws.assume_role(role_arn, None, f"s3av-verify-{str(account.tenant_id)[:8]}")
    except aws.AssumeRoleFailed as exc:
        if exc.code == "AccessDenied":
            return None  # what we want: the external id is required
        return RoleProblem(
            "external_id_unconfirmed",
            f"s3av could not confirm that the role requires the external id: {exc.message}",
        )
    return RoleProblem(
        "external_id_not_required",
        f"The role {role_arn} can be assumed without the external id. Anyone who learns its ARN could "
        "then have s3av act on your account. Add the sts:ExternalId condition from the template s3av "
        "generated for this account to the role's trust policy, then verify again.",
    )


def teardown_account(tenant: Tenant, actor: Actor, account: AwsAccount) -> TeardownReport:
    """Remove every notification and queue s3av created in this account; report what stayed.

    The apps that created them do the removing (``signals.account_teardown``)."""
    _check_owner(tenant, account)
    report = TeardownReport()
    for _, part in account_teardown.send(sender=AwsAccount, tenant=tenant, actor=actor, account=account):
        if isinstance(part, TeardownReport):
            report.extend(part)
    record(tenant, actor, "account.teardown", account, report.as_dict())
    return report


def teardown_tenant(tenant: Tenant, actor: Actor) -> TeardownReport:
    """Tear down every linked account of the tenant (the accounts and their rows stay)."""
    report = TeardownReport()
    for account in AwsAccount.objects.filter(tenant=tenant):
        report.extend(teardown_account(tenant, actor, account))
    record(tenant, actor, "tenant.teardown", tenant, report.as_dict())
    return report


def delete_account(tenant: Tenant, actor: Actor, account: AwsAccount) -> TeardownReport:
    """Tear the account down, then forget it (its buckets and their results go with it)."""
    report = teardown_account(tenant, actor, account)
    with transaction.atomic():
        record(
            tenant,
            actor,
            "account.delete",
            account,
            {"account_id": account.account_id, **report.as_dict()},
        )
        aws.forget_credentials(account)
        account.delete()
    return report


def _check_owner(tenant: Tenant, account: AwsAccount) -> None:
    get_owned(AwsAccount, tenant, account, noun="account")


def _check_organization_owner(tenant: Tenant, organization: AwsOrganization) -> None:
    get_owned(AwsOrganization, tenant, organization, noun="organisation")

"""Bucket discovery: which buckets a linked account holds, kept in step with the Bucket rows.

``discover_buckets`` is the write (the API's ``/accounts/{id}/discover``, the portal, the scheduler's
periodic ``discover_all_accounts`` through ``discover_account``). Buckets that are gone are marked with
``missing_since`` and kept with their history.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from botocore.exceptions import BotoCoreError, ClientError
from django.db import transaction
from django.utils import timezone
from django_scopes import scopes_disabled

from accounts.models import Tenant
from accounts.services import Actor, ServiceError, get_owned, record
from linked_accounts import aws
from linked_accounts.models import AwsAccount
from s3av.actors import tenant_actor
from scanning.models import Bucket
from scanning.notifications.events import tenant_event

log = logging.getLogger(__name__)

BucketInfo = dict[str, str]


def _region_of(s3: Any, name: str) -> str:
    location = s3.get_bucket_location(Bucket=name).get("LocationConstraint")
    if not location:
        return "us-east-1"
    if location == "EU":
        return "eu-west-1"
    return str(location)


def _encryption_of(s3: Any, name: str) -> str:
    try:
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as exc:
        if aws.error_code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
            return ""
        raise
    for rule in rules:
        algorithm = rule.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
        if algorithm:
            return str(algorithm)
    return ""


def discover_buckets(tenant: Tenant, actor: Actor, account: AwsAccount) -> dict[str, Any]:
    """Refresh the account's buckets: add new ones, update region/versioning/encryption, mark missing."""
    get_owned(AwsAccount, tenant, account, noun="account")
    if account.status != AwsAccount.Status.CONNECTED:
        raise ServiceError("Verify the account's role before discovering its buckets.")
    seen, problems = _list_buckets(account)
    now = timezone.now()
    with transaction.atomic():
        created, missing = _sync_rows(tenant, account, seen, now)
        account.last_checked_at = now
        account.last_error = ""
        account.save(update_fields=["last_checked_at", "last_error"])
        summary = {"found": len(seen), "new": len(created), "newly_missing": missing, "problems": problems}
        if created:
            shown = ", ".join(sorted(created)[:20]) + (" and more" if len(created) > 20 else "")
            tenant_event(tenant, "bucket.discovered", f"new buckets in account {account.account_id}: {shown}")
        record(tenant, actor, "account.discover", account, summary)
    return summary


def _list_buckets(account: AwsAccount) -> tuple[dict[str, BucketInfo], list[str]]:
    """Every bucket of the account with its region, versioning and encryption; and what could not be
    read, in words. A failure to list at all is recorded on the account and refused."""
    try:
        s3 = aws.client_for(account, "s3")
        names = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    except aws.AssumeRoleFailed as exc:
        _mark_error(account, exc.message)
        raise ServiceError(exc.message) from None
    except (ClientError, BotoCoreError) as exc:
        message = f"Listing the account's buckets failed: {aws.error_code(exc) or type(exc).__name__}."
        _mark_error(account, message)
        raise ServiceError(message) from None
    seen: dict[str, BucketInfo] = {}
    problems: list[str] = []
    for name in names:
        info = {"region": "us-east-1", "versioning": "", "encryption": ""}
        try:
            info["region"] = _region_of(s3, name)
            regional = aws.client_for(account, "s3", info["region"])
            info["versioning"] = str(regional.get_bucket_versioning(Bucket=name).get("Status", ""))
            info["encryption"] = _encryption_of(regional, name)
        except (ClientError, BotoCoreError) as exc:
            problems.append(f"{name}: {aws.error_code(exc) or type(exc).__name__}")
        seen[name] = info
    return seen, problems


def _sync_rows(
    tenant: Tenant, account: AwsAccount, seen: dict[str, BucketInfo], now: Any
) -> tuple[list[str], int]:
    """Create, update and mark missing the account's Bucket rows; the new names and the newly missing."""
    created: list[str] = []
    missing = 0
    existing = {b.name: b for b in Bucket.objects.select_for_update().filter(tenant=tenant, account=account)}
    for name, info in seen.items():
        bucket = existing.get(name)
        if bucket is None:
            Bucket.objects.create(tenant=tenant, account=account, name=name, discovered_at=now, **info)
            created.append(name)
            continue
        for attr, value in info.items():
            setattr(bucket, attr, value)
        bucket.missing_since = None
        bucket.save(update_fields=["region", "versioning", "encryption", "missing_since"])
    for name, bucket in existing.items():
        if name not in seen and bucket.missing_since is None:
            bucket.missing_since = now
            bucket.save(update_fields=["missing_since"])
            missing += 1
    return created, missing


def _mark_error(account: AwsAccount, message: str) -> None:
    account.status = AwsAccount.Status.ERROR
    account.last_error = message
    account.last_checked_at = timezone.now()
    account.save(update_fields=["status", "last_error", "last_checked_at"])


# --- actors ------------------------------------------------------------------------------------------


@tenant_actor(queue_name="default", max_retries=3, time_limit=600_000)
def discover_account(tenant: Tenant, account_id: str) -> None:
    account = AwsAccount.objects.filter(tenant=tenant, pk=account_id).first()
    if account is None or account.status != AwsAccount.Status.CONNECTED:
        return
    try:
        discover_buckets(tenant, Actor.system("discovery"), account)
    except ServiceError as exc:  # recorded on the account; retrying will not help
        log.warning("discovery failed", extra={"account": account_id, "error": exc.message})


@dramatiq.actor(queue_name="default", max_retries=0)
def discover_all_accounts() -> None:
    """Enqueue discovery of every connected account (the scheduler sends this periodically)."""
    with scopes_disabled():
        pairs = list(
            AwsAccount.objects.filter(
                status=AwsAccount.Status.CONNECTED, tenant__status=Tenant.Status.ACTIVE
            ).values_list("tenant_id", "pk")
        )
    for tenant_id, pk in pairs:
        discover_account.send(str(tenant_id), str(pk))

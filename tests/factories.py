"""The one place where tests build rows: plain functions (call them inside the tenant's scope).

The fixtures that hand these to tests as functions (``make_tenant``, ``make_user``, ``key_client``,
``bucket_row``, ``make_result``...) live in the plugins under tests/fixtures/ and call these. Each
factory sets only what a row needs to exist; a test passes the fields it asserts on.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from accounts import services
from accounts.models import ApiKey, Membership, Role, Tenant, User
from linked_accounts.models import AwsAccount
from scanning.models import Bucket, NotificationChannel, ScanJob, ScanPolicy, ScanResult

# moto's default account: buckets and queues made with the test credentials live there, and moto maps
# an assumed role's credentials to the role's account.
MOTO_ACCOUNT = "123456789012"
MOTO_ROLE = f"arn:aws:iam::{MOTO_ACCOUNT}:role/s3av-scanner"
ACTOR = services.Actor.system("test")


def make_tenant(name: str, owner_email: str) -> Tenant:
    tenant, _, _ = services.create_tenant(ACTOR, name, owner_email)
    return tenant


def make_member(tenant: Tenant, user: User, role: str = Role.VIEWER) -> Membership:
    """The membership row only (no invitation, no audit event): for users a test made itself."""
    return Membership.objects.create(tenant=tenant, user=user, role=role)


def make_api_key(tenant: Tenant, role: str = Role.VIEWER, name: str | None = None) -> tuple[ApiKey, str]:
    """A key through the service (audited, as a real one); returns (key, secret)."""
    return services.create_api_key(tenant, ACTOR, name or f"{role} key", role)


def make_account(
    tenant: Tenant, account_id: str | None = None, connected: bool = True, **fields: Any
) -> AwsAccount:
    account_id = account_id or "".join(random.choice("0123456789") for _ in range(12))
    defaults: dict[str, Any] = {"name": f"acct {account_id}"}
    if connected:
        defaults.update(
            status=AwsAccount.Status.CONNECTED, role_arn=f"arn:aws:iam::{account_id}:role/s3av-scanner"
        )
    defaults.update(fields)
    return AwsAccount.objects.create(tenant=tenant, account_id=account_id, **defaults)


def make_bucket_row(
    tenant: Tenant, account: AwsAccount | None = None, name: str | None = None, **fields: Any
) -> Bucket:
    account = account or make_account(tenant)
    name = name or f"bucket-{random.getrandbits(40):010x}"
    return Bucket.objects.create(tenant=tenant, account=account, name=name, **fields)


def make_policy(tenant: Tenant, name: str | None = None, **fields: Any) -> ScanPolicy:
    return ScanPolicy.objects.create(tenant=tenant, name=name or f"policy {uuid.uuid4().hex[:8]}", **fields)


def make_channel(tenant: Tenant, name: str = "c", **fields: Any) -> NotificationChannel:
    return NotificationChannel.objects.create(tenant=tenant, name=name, **fields)


def make_result(
    tenant: Tenant, bucket: Bucket, key: str = "k", verdict: str = "Infected", **fields: Any
) -> ScanResult:
    """A result row of the bucket (a fresh dedupe key each time)."""
    return ScanResult.objects.create(
        tenant=tenant,
        bucket=bucket,
        bucket_name=bucket.name,
        key=key,
        verdict=verdict,
        dedupe_key=uuid.uuid4().hex,
        **fields,
    )


def make_job(tenant: Tenant, bucket: Bucket, **fields: Any) -> ScanJob:
    return ScanJob.objects.create(tenant=tenant, bucket=bucket, **fields)

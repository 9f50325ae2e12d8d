"""Plain factory functions for linked accounts and buckets (call them inside the tenant's scope)."""

from __future__ import annotations

import random
from typing import Any

from accounts.models import Tenant
from linked_accounts.models import AwsAccount
from scanning.models import Bucket

# moto's default account: buckets and queues made with the test credentials live there, and moto maps
# an assumed role's credentials to the role's account.
MOTO_ACCOUNT = "123456789012"
MOTO_ROLE = f"arn:aws:iam::{MOTO_ACCOUNT}:role/s3av-scanner"


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

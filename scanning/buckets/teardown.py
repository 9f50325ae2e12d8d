"""Tearing a linked account down removes what protection created in it (``linked_accounts.signals``)."""

from __future__ import annotations

from typing import Any

from accounts.models import Tenant
from linked_accounts.models import AwsAccount
from linked_accounts.services import TeardownReport
from scanning.buckets.protection import remove_protection
from scanning.models import Bucket


def remove_account_protection(
    sender: Any, *, tenant: Tenant, account: AwsAccount, **kwargs: Any
) -> TeardownReport:
    """Receiver of ``account_teardown``: unprotect every bucket of the account that s3av protected."""
    report = TeardownReport()
    buckets = Bucket.objects.filter(tenant=tenant, account=account).select_related("account")
    for bucket in buckets:
        if not bucket.protected and not bucket.protection:
            continue
        report.extend(remove_protection(tenant, bucket))
    return report

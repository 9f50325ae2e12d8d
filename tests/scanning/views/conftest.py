"""Fixtures of the portal's findings, dashboard and history page tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_scopes import scope

from accounts.models import Tenant
from linked_accounts.models import AwsAccount
from scanning.models import Bucket, ScanResult


@pytest.fixture
def make_db_bucket(db: Any) -> Callable[..., Bucket]:
    """A Bucket row with no S3 bucket behind it (pages that only read)."""
    counter = iter(range(1, 10_000))

    def make(tenant: Tenant, name: str | None = None, **fields: Any) -> Bucket:
        with scope(tenant=tenant):
            account, _ = AwsAccount.objects.get_or_create(
                tenant=tenant,
                account_id="210987654321",
                defaults={"name": "prod", "role_arn": "arn:aws:iam::210987654321:role/s3av"},
            )
            return Bucket.objects.create(
                tenant=tenant,
                account=account,
                name=name or f"bucket-{next(counter)}-{uuid.uuid4().hex[:6]}",
                **fields,
            )

    return make


@pytest.fixture
def make_result(db: Any) -> Callable[..., ScanResult]:
    def make(
        tenant: Tenant,
        bucket: Bucket,
        key: str = "uploads/eicar.com",
        verdict: str = "Infected",
        scanned_at: datetime | None = None,
        **fields: Any,
    ) -> ScanResult:
        defaults: dict[str, Any] = {
            "signatures": ["Eicar-Signature"] if verdict == "Infected" else [],
            "etag": "9d7d1b2d4a0c1f4c1f0e1d1f4c1f0e1d",
            "size": 68,
            "sha256": "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
            "engine": "ClamAV 1.4.3",
            "signature_version": "27810",
            "action": "tagged",
            "action_status": "done",
        }
        defaults.update(fields)
        with scope(tenant=tenant):
            return ScanResult.objects.create(
                tenant=tenant,
                bucket=bucket,
                bucket_name=bucket.name,
                key=key,
                verdict=verdict,
                dedupe_key=uuid.uuid4().hex,
                scanned_at=scanned_at or timezone.now() - timedelta(minutes=5),
                **defaults,
            )

    return make


@pytest.fixture
def many_results(db: Any) -> Callable[..., list[ScanResult]]:
    """``n`` results in one bulk insert, a second apart, newest last."""

    def make(
        tenant: Tenant, bucket: Bucket, n: int, verdict: str = "Infected", **fields: Any
    ) -> list[ScanResult]:
        start = timezone.now() - timedelta(hours=2)
        rows = [
            ScanResult(
                tenant=tenant,
                bucket=bucket,
                bucket_name=bucket.name,
                key=f"bulk/{i:05d}.bin",
                verdict=verdict,
                dedupe_key=uuid.uuid4().hex,
                scanned_at=start + timedelta(seconds=i),
                size=1000,
                **fields,
            )
            for i in range(n)
        ]
        with scope(tenant=tenant):
            return ScanResult.objects.bulk_create(rows)

    return make

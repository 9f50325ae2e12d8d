"""Fixtures of the portal pages' tests: rows made in a tenant's scope, the query count of a page, a
webhook receiver, findings."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scope

from accounts.models import Tenant
from linked_accounts.models import AwsAccount
from scanning.models import Bucket, ScanResult
from tests.linked_accounts.factories import make_account, make_bucket_row
from tests.linked_accounts.fixtures import aws_endpoint, moto_account  # noqa: F401  (the local STS)


@pytest.fixture
def bucket_row(db: Any) -> Callable[..., Any]:
    """``bucket_row(tenant, **fields)``: a Bucket row of a connected account (no S3 behind it)."""

    def make(tenant: Tenant, account: Any = None, **fields: Any) -> Any:
        with scope(tenant=tenant):
            return make_bucket_row(tenant, account or make_account(tenant), **fields)

    return make


@pytest.fixture
def queries_of() -> Callable[..., int]:
    """``queries_of(client, url)``: how many queries one GET of the page costs."""

    def count(client: Any, url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, response.status_code
        return len(captured)

    return count


class WebhookReceiver:
    """A webhook receiver on 127.0.0.1 that records each POST and answers 200 (or ``status``)."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/s3av?team=sec"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver(settings: Any) -> Iterator[WebhookReceiver]:
    """A loopback receiver; plain-http loopback webhooks are allowed for the test (the SSRF guard's
    switch for tests and the demo, S3AV_ALLOW_HTTP_WEBHOOKS)."""
    settings.ALLOW_HTTP_WEBHOOKS = True
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


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

"""Benchmark of bucket-scan listing: 1,000,000 keys simulated at the listing layer.

    source scripts/test-env.sh && .venv/bin/python bench/listing.py [--keys 1000000] [--tracemalloc]

``s3ops.iter_keys`` is replaced by a fake paginator that makes pages of 1,000 ObjectRefs from the
continuation token (no S3). Everything else is the real code path of ``jobs.list_slice``: the skip-known
query per page, one ScanJobItem row per scan (PostgreSQL), a ``scan_object`` message per object
enqueued on the StubBroker, and the conditional checkpoint UPDATE per page. The "scans" queue is flushed
after every page, as consumers would drain it, so what is measured is the lister's own memory.

Prints keys/s and memory (tracemalloc peak of the listing with --tracemalloc, and the process's RSS
growth from ru_maxrss); asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/s3av_bench_jobs"
MiB = 1024 * 1024


def ensure_database(url: str) -> None:
    from urllib.parse import urlsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def fake_iter_keys(total: int) -> Any:
    from scanning.s3 import ops as s3ops

    modified = datetime(2026, 1, 1, tzinfo=UTC)

    def iter_keys(
        client: Any,
        bucket: str,
        prefix: str = "",
        versions: bool = False,
        token: str | None = None,
        **kw: Any,
    ) -> Iterator[s3ops.ListingPage]:
        page_size = kw.get("page_size", 1000)
        offset = int(token or 0)
        while True:
            end = min(offset + page_size, total)
            refs = [
                s3ops.ObjectRef(
                    bucket=bucket,
                    key=f"{prefix}data/{n:09d}.bin",
                    version_id=None,
                    etag=f"{n:032x}",
                    size=1000 + n % 5000,
                    last_modified=modified,
                )
                for n in range(offset, end)
            ]
            next_token = str(end) if end < total else None
            yield s3ops.ListingPage(refs, next_token)
            if next_token is None:
                return
            offset = end

    return iter_keys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--tracemalloc", action="store_true", help="also measure the traced peak (slower)")
    parser.add_argument("--database-url", default=os.environ.get("S3AV_BENCH_DATABASE_URL", DEFAULT_DB))
    args = parser.parse_args()

    ensure_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["S3AV_BROKER_URL"] = "stub://"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "s3av.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)

    from django_scopes import scope

    from accounts.services import Actor, create_tenant
    from linked_accounts.models import AwsAccount
    from scanning.jobs import services as jobs
    from scanning.models import Bucket, ScanJob, ScanJobItem
    from scanning.pipeline.services import scan_object

    tenant, _, _ = create_tenant(
        Actor.system("bench"), f"bench {time.time_ns()}", f"b{time.time_ns()}@example.com"
    )
    broker = scan_object.broker
    enqueued = 0
    original_send = jobs._send

    def send_and_drain(messages: list[Any]) -> None:
        nonlocal enqueued
        original_send(messages)
        enqueued += len(messages)
        broker.flush("scans")  # type: ignore[attr-defined]

    jobs._send = send_and_drain  # type: ignore[assignment]
    jobs.s3ops.iter_keys = fake_iter_keys(args.keys)  # type: ignore[assignment]
    jobs.current_signature_version = lambda: "bench"  # type: ignore[assignment]
    jobs.s3_client_for = lambda bucket: None  # type: ignore[assignment]

    with scope(tenant=tenant):
        account = AwsAccount.objects.create(
            tenant=tenant, account_id="123456789012", role_arn="arn:aws:iam::123456789012:role/x"
        )
        bucket = Bucket.objects.create(tenant=tenant, account=account, name=f"bench-{time.time_ns()}")
        job = ScanJob.objects.create(tenant=tenant, bucket=bucket, signature_version="bench")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if args.tracemalloc:
            tracemalloc.start()
        started = time.perf_counter()
        slices = 0
        while True:
            slices += 1
            outcome = jobs.list_slice(str(job.pk), max_pages=100, max_pending=10**12)
            if outcome != "continue":
                break
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
        if args.tracemalloc:
            tracemalloc.stop()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        job.refresh_from_db()
        items = ScanJobItem.objects.filter(job=job).count()
        print(f"keys listed        {job.listed:,} in {job.pages_listed:,} pages, {slices} slices ({outcome})")
        print(f"scans enqueued     {enqueued:,} (items recorded {items:,})")
        print(f"elapsed            {elapsed:.1f} s")
        print(f"keys per second    {job.listed / elapsed:,.0f}")
        if peak is not None:
            print(f"tracemalloc peak   {peak / MiB:.1f} MiB")
        print(f"max RSS            {rss_before / 1024:.0f} MiB before, {rss_after / 1024:.0f} MiB after")
        ScanJobItem.objects.filter(job=job).delete()
        job.delete()


if __name__ == "__main__":
    main()

"""Benchmark of skip-unchanged: a bucket scan of COUNT small objects on moto's S3 server, twice.

    source scripts/test-env.sh && .venv/bin/python bench/skip_unchanged.py [--count 10000] [--threads 8]

clamd and PostgreSQL must be up; moto's server is started here (its own process) and stopped at the end.
The first scan lists, downloads and scans every object; the second lists again and, since every
object's ETag and size match a verdict made with the current signatures, downloads nothing. Scans run
in this process: THREADS threads take ``scan_object`` messages off the StubBroker's "scans" queue and
run the actor function, as a worker would. GetObject calls are counted with a botocore event hook.

Prints the two wall times, their ratio and the GetObject counts; asserts nothing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/s3av_bench_jobs"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database-url", default=os.environ.get("S3AV_BENCH_DATABASE_URL", DEFAULT_DB))
    args = parser.parse_args()

    from bench.listing import ensure_database
    from tests.fixtures.s3server import TEST_ENV, _start_moto, make_test_client

    ensure_database(args.database_url)
    os.environ.update({k: v for k, v in TEST_ENV.items() if not os.environ.get(k)})
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed at exit
    moto, endpoint = _start_moto(log)
    try:
        run(args, endpoint, make_test_client(endpoint))
    finally:
        moto.terminate()
        moto.wait(timeout=10)


def run(args: Any, endpoint: str, s3_client: Any) -> None:
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["S3AV_BROKER_URL"] = "stub://"
    os.environ["S3AV_AWS_ENDPOINT_URL"] = endpoint
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "s3av.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    from django_scopes import scope
    from dramatiq import Message

    from accounts.services import Actor, create_tenant
    from linked_accounts import aws
    from linked_accounts.models import AwsAccount
    from scanning.jobs import services as jobs
    from scanning.models import Bucket, ScanJob, ScanPolicy
    from scanning.pipeline import services
    from scanning.pipeline.services import scan_object

    name = f"bench-skip-{time.time_ns()}"
    s3_client.create_bucket(Bucket=name)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda n: s3_client.put_object(
                    Bucket=name, Key=f"obj/{n:06d}.txt", Body=f"object {n}\n".encode() * 20
                ),
                range(args.count),
            )
        )
    print(f"uploaded           {args.count:,} objects in {time.perf_counter() - started:.1f} s")

    calls: Counter[str] = Counter()
    lock = threading.Lock()
    original = aws.client_for

    def counting_client_for(account: Any, service: str, region: str | None = None) -> Any:
        client = original(account, service, region)

        def count(model: Any, **kwargs: Any) -> None:
            with lock:
                calls[model.name] += 1

        client.meta.events.register("before-call.s3.*", count, unique_id="s3av-bench-count")
        return client

    services.client_for = counting_client_for  # type: ignore[assignment]
    aws.client_for = counting_client_for  # type: ignore[assignment]

    tenant, _, _ = create_tenant(
        Actor.system("bench"), f"bench {time.time_ns()}", f"s{time.time_ns()}@example.com"
    )
    with scope(tenant=tenant):
        account = AwsAccount.objects.create(
            tenant=tenant,
            account_id="123456789012",
            role_arn="arn:aws:iam::123456789012:role/x",
            status="connected",
        )
        policy = ScanPolicy.objects.create(tenant=tenant, name="bench")
        bucket = Bucket.objects.create(tenant=tenant, account=account, name=name, policy=policy)
    broker = scan_object.broker

    def work() -> None:
        queue = broker.queues["scans"]  # type: ignore[attr-defined]
        try:
            while True:
                try:
                    data = queue.get_nowait()
                except Exception:
                    return
                message = Message.decode(data)
                scan_object.fn(*message.args, **message.kwargs)
        finally:
            connection.close()

    def one_scan(label: str) -> float:
        calls.clear()
        broker.flush_all()
        started = time.perf_counter()
        with scope(tenant=tenant):
            job = jobs.start_bucket_scan(tenant, None, bucket, "obj/")
            while jobs.list_slice(str(job.pk), max_pending=10**9) == "continue":
                pass
        with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
            for future in [pool.submit(work) for _ in range(args.threads)]:
                future.result()
        elapsed = time.perf_counter() - started
        with scope(tenant=tenant):
            job = ScanJob.objects.get(pk=job.pk)
        print(
            f"{label:<18} {elapsed:7.1f} s  status={job.status} listed={job.listed:,} "
            f"scanned={job.scanned:,} skipped={job.skipped:,} "
            f"GetObject={calls['GetObject']:,} ListObjectsV2={calls['ListObjectsV2']:,}"
        )
        return elapsed

    first = one_scan("first scan")
    second = one_scan("second scan")
    print(f"speed-up           {first / second:.1f}x")


if __name__ == "__main__":
    main()

"""End to end on real parts: RabbitMQ, a worker process, clamd and moto's S3 HTTP server."""

from __future__ import annotations

import os
import time

import pytest
from django_scopes import scope, scopes_disabled

from scanning.models import ScanResult, Verdict
from scanning.pipeline import services
from scanning.pipeline.services import scan_object
from tests.fixtures.scanning import EICAR, TESTFILES

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _message(tenant, bucket, key, etag, version_id=None):
    with scope(tenant=tenant):
        dedupe = services.dedupe_key_for(bucket, key, version_id, etag, False)
    return dedupe, scan_object.message(
        str(tenant.pk),
        str(bucket.pk),
        key,
        version_id=version_id,
        etag=etag,
        trigger="event",
        dedupe_key=dedupe,
    )


def _wait_for(predicate, timeout, what, worker=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{worker.log() if worker else ''}")


def _final(dedupe):
    with scopes_disabled():
        return ScanResult.objects.filter(dedupe_key=dedupe).exclude(verdict="").first()


def test_a_worker_scans_and_acts_on_real_objects(
    tenant, make_linked_bucket, make_bucket, s3_client, start_worker, rabbitmq_broker
):
    quarantine = make_bucket()
    bucket = make_linked_bucket(tenant, on_infected="quarantine", quarantine_bucket=quarantine)
    objects = {
        "uploads/eicar.txt": EICAR,
        "uploads/report final+v2.pdf": b"%PDF-1.4 just a report\n" * 200,
        "uploads/clam.zip": (TESTFILES / "clam.zip").read_bytes(),
    }
    messages = {}
    for key, body in objects.items():
        etag = s3_client.put_object(Bucket=bucket.name, Key=key, Body=body)["ETag"]
        messages[key] = _message(tenant, bucket, key, etag)
    worker = start_worker()
    for _, message in messages.values():
        rabbitmq_broker.enqueue(message)
    results = {
        key: _wait_for(lambda d=dedupe: _final(d), 60, f"a verdict for {key}", worker)
        for key, (dedupe, _) in messages.items()
    }
    assert results["uploads/eicar.txt"].verdict == Verdict.INFECTED
    assert results["uploads/clam.zip"].verdict == Verdict.INFECTED
    assert results["uploads/report final+v2.pdf"].verdict == Verdict.CLEAN
    _wait_for(
        lambda: all(_final(d).action_status == "done" for d, _ in messages.values()), 30, "actions", worker
    )
    left = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket.name)["Contents"]]
    assert left == ["uploads/report final+v2.pdf"]
    quarantined = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=quarantine)["Contents"])
    assert quarantined == sorted(
        f"quarantine/{bucket.name}/{results[k].pk}/{k}" for k in ("uploads/clam.zip", "uploads/eicar.txt")
    )


def test_a_worker_killed_mid_scan_leaves_one_final_verdict(
    tenant, make_linked_bucket, s3_client, start_worker, rabbitmq_broker
):
    bucket = make_linked_bucket(tenant)
    body = os.urandom(384 * 1024 * 1024)
    etag = s3_client.put_object(Bucket=bucket.name, Key="big/upload.bin", Body=body)["ETag"]
    del body
    dedupe, message = _message(tenant, bucket, "big/upload.bin", etag)
    lease = {"S3AV_SCAN_LEASE_SECONDS": "8"}
    first = start_worker(**lease)
    rabbitmq_broker.enqueue(message)

    def claimed():
        with scopes_disabled():
            return ScanResult.objects.filter(
                dedupe_key=dedupe, verdict="", claimed_until__isnull=False
            ).exists()

    _wait_for(claimed, 60, "the first worker to claim the scan", first)
    first.kill()
    assert _final(dedupe) is None, "the first worker finished before it was killed; use a bigger object"

    second = start_worker(**lease)
    result = _wait_for(lambda: _final(dedupe), 180, "the redelivered scan", second)
    assert result.verdict == Verdict.CLEAN
    assert result.size == 384 * 1024 * 1024
    assert result.attempts >= 2
    with scopes_disabled():
        assert ScanResult.objects.filter(bucket=bucket, key="big/upload.bin").count() == 1
    _wait_for(lambda: _final(dedupe).action_status == "done", 30, "the tags", second)
    tags = s3_client.get_object_tagging(Bucket=bucket.name, Key="big/upload.bin")["TagSet"]
    assert {"Key": "scan-result", "Value": "Clean"} in tags

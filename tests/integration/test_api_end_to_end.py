"""What a new user does through the HTTP API, on real processes: gunicorn, a RabbitMQ worker, the
ingest loop and the scheduler, with moto's S3/SQS/STS server and clamd.

Issue 4: link an account, protect a bucket, upload EICAR, see it Infected and quarantined in seconds.
Issue 5: scan a prefix and watch its progress, cancel a scan, see a schedule fire, see clean files
promoted from staging to production with their tags and infected ones quarantined.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from accounts.models import Role
from scanning.models import Schedule
from tests import factories
from tests.fixtures.scanning import EICAR, TESTFILES

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MOTO_ACCOUNT = "123456789012"  # the account moto's server puts everything in


class Api:
    def __init__(self, base: str, secret: str):
        self.base = base
        self.secret = secret

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(  # noqa: S310 - a loopback URL of the test's own server
            f"{self.base}/api/v1/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.secret}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw.startswith(b"{") else raw.decode()

    def ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        status, data = self.call(method, path, body)
        assert status < 300, f"{method} {path}: {status} {data}"
        return data


def _wait_for(predicate, timeout, what, *processes):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    logs = "\n".join(p.log()[-4000:] for p in processes)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


@pytest.fixture
def api(tenant, start_process, rabbitmq_broker):
    with scope(tenant=tenant):
        _, secret = factories.make_api_key(tenant, Role.ADMIN, "e2e")
    web = start_process("web")
    return Api(web.url, secret)


def _link_account(api: Api) -> dict[str, Any]:
    account = api.ok("POST", "accounts/", {"account_id": MOTO_ACCOUNT, "name": "prod"})
    assert len(account["external_id"]) > 20
    template = api.ok("GET", f"accounts/{account['id']}/template")
    assert account["external_id"] in json.dumps(template)
    verified = api.ok(
        "POST", f"accounts/{account['id']}/verify", {"role_arn": f"arn:aws:iam::{MOTO_ACCOUNT}:role/s3av"}
    )
    assert verified["status"] == "connected"
    api.ok("POST", f"accounts/{account['id']}/discover")
    return account


def _bucket_id(api: Api, name: str) -> str:
    buckets = api.ok("GET", "buckets/?page_size=500")["results"]
    return next(b["id"] for b in buckets if b["name"] == name)


def test_a_new_user_protects_a_bucket_and_sees_eicar_quarantined_in_seconds(
    api, make_bucket, s3_client, start_process
):
    uploads, quarantine = make_bucket(versioned=True), make_bucket()
    _link_account(api)
    bucket_id = _bucket_id(api, uploads)
    policy = api.ok(
        "POST",
        "policies/",
        {"name": "quarantine", "on_infected": "quarantine", "quarantine_bucket": quarantine},
    )
    api.ok("PATCH", f"buckets/{bucket_id}", {"policy": policy["id"]})
    protected = api.ok("POST", f"buckets/{bucket_id}/protect", {"scan_existing": False})
    assert protected["protected"] is True
    worker = start_process("worker")
    ingest = start_process("ingest")

    uploaded = time.monotonic()
    s3_client.put_object(Bucket=uploads, Key="incoming/invoice 2026+final.pdf", Body=EICAR)
    s3_client.put_object(Bucket=uploads, Key="incoming/notes.txt", Body=b"nothing to see")

    def verdicts():
        results = api.ok("GET", "results/")["results"]
        done = {r["key"]: r for r in results if r["action"] and r["action"] != ""}
        return done if len(done) == 2 else None

    results = _wait_for(verdicts, 60, "both uploads to be scanned and acted on", worker, ingest)
    elapsed = time.monotonic() - uploaded
    infected = results["incoming/invoice 2026+final.pdf"]
    assert infected["verdict"] == "Infected"
    assert infected["action"] == "tagged+quarantined"
    assert results["incoming/notes.txt"]["verdict"] == "Clean"
    assert elapsed < 30, f"took {elapsed:.1f} s"
    left = [o["Key"] for o in s3_client.list_objects_v2(Bucket=uploads).get("Contents", [])]
    assert left == ["incoming/notes.txt"]
    assert s3_client.get_object(Bucket=quarantine, Key=infected["quarantine_key"])["Body"].read() == EICAR

    report = api.ok("POST", f"buckets/{bucket_id}/unprotect")
    assert report["protected"] is False


def test_bucket_scans_promotion_cancel_and_schedules_through_the_api(
    tenant, api, make_bucket, s3_client, start_process
):
    staging, production, quarantine = make_bucket(), make_bucket(), make_bucket()
    clean = {f"in/doc{n}.txt": f"document {n}".encode() for n in range(6)}
    infected = {"in/eicar.com": EICAR, "in/nested/clam.zip": (TESTFILES / "clam.zip").read_bytes()}
    for key, body in {**clean, **infected}.items():
        s3_client.put_object(Bucket=staging, Key=key, Body=body, Tagging="owner=team-a")
    for n in range(5):
        s3_client.put_object(Bucket=staging, Key=f"later/file{n}.txt", Body=b"later")
    _link_account(api)
    staging_id, production_id = _bucket_id(api, staging), _bucket_id(api, production)
    policy = api.ok(
        "POST",
        "policies/",
        {
            "name": "two buckets",
            "on_infected": "quarantine",
            "quarantine_bucket": quarantine,
            "promote_to_bucket": production_id,
            "promote_prefix": "clean/",
        },
    )
    api.ok("PATCH", f"buckets/{staging_id}", {"policy": policy["id"]})

    # Cancel a scan before any worker runs: nothing of it is ever scanned.
    doomed = api.ok("POST", "jobs/", {"bucket": staging_id, "prefix": "later/"})
    cancelled = api.ok("POST", f"jobs/{doomed['id']}/cancel")
    assert cancelled["status"] == "cancelled"

    worker = start_process("worker")
    job = api.ok("POST", "jobs/", {"bucket": staging_id, "prefix": "in/"})
    seen_statuses = set()

    def finished():
        current = api.ok("GET", f"jobs/{job['id']}")
        seen_statuses.add(current["status"])
        return current if current["status"] in {"done", "failed"} else None

    done = _wait_for(finished, 120, "the prefix scan", worker)
    assert done["status"] == "done", done
    assert (done["listed"], done["scanned"], done["clean"], done["infected"]) == (8, 8, 6, 2)

    promoted = {o["Key"] for o in s3_client.list_objects_v2(Bucket=production).get("Contents", [])}
    assert promoted == {f"clean/{key}" for key in clean}
    tags = s3_client.get_object_tagging(Bucket=production, Key="clean/in/doc0.txt")["TagSet"]
    assert {"Key": "owner", "Value": "team-a"} in tags
    assert {"Key": "scan-result", "Value": "Clean"} in tags
    quarantined = [o["Key"] for o in s3_client.list_objects_v2(Bucket=quarantine).get("Contents", [])]
    assert len(quarantined) == 2 and all(k.startswith(f"quarantine/{staging}/") for k in quarantined)

    later = api.ok("GET", "results/?key_prefix=later/")["results"]
    assert later == []
    assert api.ok("GET", f"jobs/{doomed['id']}")["status"] == "cancelled"

    # A schedule fires when due: the scheduler starts a scan of its target.
    schedule = api.ok("POST", "schedules/", {"bucket": staging_id, "prefix": "later/", "cron": "0 3 * * *"})
    with scopes_disabled():
        Schedule.objects.filter(pk=schedule["id"]).update(next_run_at=timezone.now() - timedelta(minutes=1))
    start_process("scheduler-once")
    fired = _wait_for(
        lambda: api.ok("GET", f"schedules/{schedule['id']}")["last_job"], 30, "the schedule to fire", worker
    )
    scheduled = _wait_for(
        lambda: (j := api.ok("GET", f"jobs/{fired}"))["status"] == "done" and j,
        120,
        "the scheduled scan",
        worker,
    )
    assert scheduled["trigger"] == "schedule"
    assert scheduled["scanned"] == 5
    # The worker adds usage up and writes it every few seconds, or with its next heartbeat (30 s).
    month = _wait_for(
        lambda: (m := (api.ok("GET", "usage")["months"] or [{}])[0]).get("objects") == 13 and m,
        60,
        "the usage of 13 scans",
        worker,
    )
    assert month["month"] == f"{timezone.now():%Y-%m}"
    assert month["objects"] == 13  # 8 in the prefix scan, 5 in the scheduled one
    assert month["bytes"] == sum(map(len, clean.values())) + sum(map(len, infected.values())) + 5 * 5


def _raw_http(url: str, head: bytes, body: bytes) -> bytes:
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=30) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)  # the client stops sending before the announced length
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_a_body_shorter_than_its_content_length_is_refused_not_passed(api):
    head = (
        "POST /api/v1/scan HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {api.secret}\r\nContent-Type: application/octet-stream\r\n"
        "Content-Length: 100000\r\nConnection: close\r\n\r\n"
    ).encode()
    reply = _raw_http(api.base, head, EICAR[:20] + b"x" * 190)
    status_line = reply.split(b"\r\n", 1)[0]
    assert b" 400 " in status_line, reply[:500]
    assert b"Clean" not in reply

"""Turn S3 event notifications waiting in protected buckets' SQS queues into scan requests.

``drain_once`` is one pass over every active queue; ``run`` is the long-running loop of
``manage.py ingest_events``. Receiving (slow, long-polled) happens in a thread per queue; parsing,
``request_scan`` and deleting happen on the calling thread, which owns the database connection.

A message is deleted only after every record in it was handed to ``request_scan`` (one
``DeleteMessageBatch`` per receive); this code never runs inside a transaction, so ``request_scan`` has
sent the scan message to the broker by the time it returns. S3 events are at-least-once and unordered;
the scan pipeline collapses duplicates (same bucket, key, version id, ETag), so a redelivered message
costs nothing, while the same bytes uploaded again (a later sequencer) are a new object with its own
tags and notifications. A message that cannot be parsed is logged and left in the queue: after
``protection.MAX_RECEIVES`` receives SQS moves it to the queue's dead-letter queue.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import close_old_connections, connection
from django_scopes import scope, scopes_disabled

from accounts.models import Tenant
from linked_accounts import aws
from linked_accounts.models import AwsAccount
from scanning.models import Bucket
from scanning.pipeline import services as scan_services

log = logging.getLogger(__name__)

MAX_POLLERS = 32


class PoisonMessage(ValueError):
    """A message that is not an S3 event notification s3av can act on."""


@dataclass(frozen=True)
class ObjectEvent:
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    sequencer: str | None
    event_name: str


@dataclass
class Stats:
    received: int = 0
    deleted: int = 0
    enqueued: int = 0
    poison: int = 0
    failed: int = 0
    queues: int = 0
    errors: list[str] = field(default_factory=list)


def parse_message(body: str) -> list[ObjectEvent]:
    """The object-created events in an SQS message body from S3; [] for test and other events.

    Raises ``PoisonMessage`` for anything that is not an S3 notification.
    """
    try:
        payload = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise PoisonMessage(f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PoisonMessage("not a JSON object")
    if payload.get("Event") == "s3:TestEvent":
        return []
    records = payload.get("Records")
    if not isinstance(records, list):
        raise PoisonMessage("no Records")
    events = []
    for item in records:
        try:
            if item.get("eventSource") != "aws:s3":
                raise PoisonMessage(f"event source {item.get('eventSource')!r}")
            name = str(item["eventName"])
            if not name.startswith("ObjectCreated:"):
                continue
            s3 = item["s3"]
            obj = s3["object"]
            size = obj.get("size")
            events.append(
                ObjectEvent(
                    bucket=str(s3["bucket"]["name"]),
                    # Keys arrive form-URL-encoded: "+" is a space, "%2B" a plus.
                    key=unquote_plus(str(obj["key"])),
                    version_id=obj.get("versionId") or None,
                    etag=obj.get("eTag") or None,
                    size=int(size) if size is not None else None,
                    sequencer=obj.get("sequencer"),
                    event_name=name,
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PoisonMessage(f"malformed record: {exc!r}") from None
    return events


def active_buckets() -> list[Bucket]:
    """Every protected bucket with a queue, across tenants (the ingest process serves them all)."""
    with scopes_disabled():
        return list(
            Bucket.objects.filter(
                protected=True,
                tenant__status=Tenant.Status.ACTIVE,
                account__status=AwsAccount.Status.CONNECTED,
            )
            .exclude(protection__queue_url=None)
            .select_related("account", "tenant")
        )


def receive(bucket: Bucket, wait_seconds: int) -> list[dict[str, Any]]:
    """Long-poll one bucket's queue (runs in a poller thread: no database access here)."""
    sqs = aws.client_for(bucket.account, "sqs", bucket.protection.get("region") or bucket.region)
    response = sqs.receive_message(
        QueueUrl=bucket.protection["queue_url"],
        MaxNumberOfMessages=10,
        WaitTimeSeconds=wait_seconds,
        AttributeNames=["ApproximateReceiveCount"],
    )
    return list(response.get("Messages", []))


def handle_messages(bucket: Bucket, messages: list[dict[str, Any]], stats: Stats) -> None:
    handled: list[dict[str, Any]] = []
    for message in messages:
        stats.received += 1
        try:
            events = parse_message(message.get("Body", ""))
            wrong = [e.bucket for e in events if e.bucket != bucket.name]
            if wrong:
                raise PoisonMessage(f"events for {wrong[0]!r} in the queue of {bucket.name!r}")
        except PoisonMessage as exc:
            stats.poison += 1
            log.warning(
                "poison message left for the dead-letter queue",
                extra={
                    "bucket": str(bucket.pk),
                    "message_id": message.get("MessageId"),
                    "receives": message.get("Attributes", {}).get("ApproximateReceiveCount"),
                    "reason": str(exc),
                },
            )
            continue
        try:
            with scope(tenant=bucket.tenant):
                for event in events:
                    scan_services.request_scan(
                        bucket.tenant,
                        None,
                        bucket,
                        event.key,
                        version_id=event.version_id,
                        etag=event.etag,
                        size=event.size,
                        trigger="event",
                        sequencer=event.sequencer,
                    )
                    stats.enqueued += 1
        except Exception as exc:  # the broker or database is down: keep the message, it comes back
            stats.failed += 1
            stats.errors.append(f"{bucket.name}: {exc!r}")
            log.exception("could not enqueue scans; the message stays in the queue")
            continue
        handled.append(message)
    if handled:
        delete_handled(bucket, handled, stats)


def delete_handled(bucket: Bucket, messages: list[dict[str, Any]], stats: Stats) -> None:
    """Delete the messages whose scans were all requested, ten per DeleteMessageBatch (SQS's limit).

    A message whose delete failed (the whole call, or its entry in the answer's ``Failed``) comes back
    after its visibility timeout; its scans then collapse onto the ones just requested (same dedupe
    key, same sequencer), so it is neither lost nor scanned twice.
    """
    url = bucket.protection["queue_url"]
    for start in range(0, len(messages), 10):
        entries = [
            {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
            for n, message in enumerate(messages[start : start + 10])
        ]
        try:
            sqs = aws.client_for(bucket.account, "sqs", bucket.protection.get("region") or bucket.region)
            response = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        except (aws.AssumeRoleFailed, ClientError, BotoCoreError) as exc:
            stats.errors.append(f"{bucket.name}: delete failed: {exc!r}")
            continue
        stats.deleted += len(response.get("Successful", []))
        for failed in response.get("Failed", []):
            stats.errors.append(
                f"{bucket.name}: delete failed: {failed.get('Code')} {failed.get('Message', '')}".rstrip()
            )


def _poll_failed(bucket: Bucket, exc: BaseException, stats: Stats) -> None:
    stats.errors.append(f"{bucket.name}: {exc!r}")
    log.warning("receiving from a queue failed", extra={"bucket": str(bucket.pk), "error": repr(exc)})


def drain_once(wait_seconds: int = 20, buckets: list[Bucket] | None = None) -> Stats:
    """Receive once from every active queue and request a scan for every object-created event."""
    buckets = active_buckets() if buckets is None else buckets
    stats = Stats(queues=len(buckets))
    if not buckets:
        return stats
    with ThreadPoolExecutor(max_workers=min(MAX_POLLERS, len(buckets)), thread_name_prefix="ingest") as pool:
        futures = {pool.submit(receive, b, wait_seconds): b for b in buckets}
        pending: set[Future[list[dict[str, Any]]]] = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                _collect(futures[future], future, stats)
    return stats


def _collect(bucket: Bucket, future: Future[list[dict[str, Any]]], stats: Stats) -> None:
    try:
        messages = future.result()
    except Exception as exc:
        _poll_failed(bucket, exc, stats)
        return
    if messages:
        handle_messages(bucket, messages, stats)


def run(
    stop: threading.Event,
    wait_seconds: int = 10,
    refresh_seconds: float = 5.0,
    on_pass: Callable[[Stats], None] | None = None,
) -> Stats:
    """Poll every active queue continuously until ``stop`` is set.

    Each queue is polled again as soon as its previous receive was handled, so one queue's events do
    not wait for the others' long polls. The list of protected buckets is reloaded every
    ``refresh_seconds``, so newly protected buckets are picked up without a restart.
    """
    total = Stats()
    in_flight: dict[Future[list[dict[str, Any]]], Bucket] = {}
    polling: set[Any] = set()
    current: dict[Any, Bucket] = {}
    next_refresh = 0.0
    backoff: dict[Any, float] = {}
    with ThreadPoolExecutor(max_workers=MAX_POLLERS, thread_name_prefix="ingest") as pool:
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_refresh:
                if not connection.in_atomic_block:
                    close_old_connections()  # a long-running process: drop dead or stale connections
                try:
                    current = {b.pk: b for b in active_buckets()}
                except Exception:
                    log.exception("could not load the protected buckets")
                next_refresh = now + refresh_seconds
                total.queues = len(current)
                if settings.HEARTBEAT_FILE:
                    Path(settings.HEARTBEAT_FILE).touch()  # the loop runs: a container's liveness check
            for pk, bucket in current.items():
                if pk not in polling and backoff.get(pk, 0.0) <= now:
                    in_flight[pool.submit(receive, bucket, wait_seconds)] = bucket
                    polling.add(pk)
            if not in_flight:
                stop.wait(min(refresh_seconds, 1.0))
                continue
            done, _ = wait(list(in_flight), timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                bucket = in_flight.pop(future)
                polling.discard(bucket.pk)
                stats = Stats()
                _collect(bucket, future, stats)
                if stats.errors and not stats.received:
                    backoff[bucket.pk] = time.monotonic() + 5.0  # a failing queue must not spin
                _add(total, stats)
                if on_pass is not None:
                    on_pass(stats)
        # Handle what the last long polls bring, rather than leaving it invisible until it times out.
        for future, bucket in list(in_flight.items()):
            _collect(bucket, future, total)
    return total


def _add(total: Stats, stats: Stats) -> None:
    for name in ("received", "deleted", "enqueued", "poison", "failed"):
        setattr(total, name, getattr(total, name) + getattr(stats, name))
    total.errors = (total.errors + stats.errors)[-100:]

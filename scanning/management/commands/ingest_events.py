"""``manage.py ingest_events``: long-poll protected buckets' SQS queues and request scans.

SIGTERM or SIGINT stops it cleanly: no new polls start, the ones in flight are handled, then it exits.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand

from scanning.ingest import events as ingest

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Turn S3 event notifications from protected buckets' queues into scans (runs until stopped)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--wait", type=int, default=10, help="SQS long-poll seconds (1-20).")
        parser.add_argument("--once", action="store_true", help="Poll every queue once, then exit.")

    def handle(self, *args: Any, wait: int, once: bool, **options: Any) -> None:
        wait = max(1, min(20, wait))
        if once:
            stats = ingest.drain_once(wait_seconds=wait)
            self.stdout.write(
                f"queues={stats.queues} received={stats.received} enqueued={stats.enqueued} "
                f"deleted={stats.deleted} poison={stats.poison} failed={stats.failed}"
            )
            return
        stop = threading.Event()

        def request_stop(signum: int, frame: Any) -> None:
            log.info("ingest_events stopping", extra={"signal": signum})
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        log.info("ingest_events started", extra={"wait": wait})
        total = ingest.run(stop, wait_seconds=wait)
        log.info(
            "ingest_events stopped",
            extra={"received": total.received, "enqueued": total.enqueued, "poison": total.poison},
        )

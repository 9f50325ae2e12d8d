"""``manage.py run_scheduler``: start scheduled bucket scans (and rescans after signature updates).

Long-running; SIGTERM or SIGINT lets the current tick finish, then it exits. ``--once`` runs one tick.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from scanning.schedules.services import Scheduler

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Start scheduled bucket scans (runs until stopped)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--interval", type=float, default=30.0, help="Seconds between ticks.")
        parser.add_argument("--once", action="store_true", help="Run one tick, then exit.")

    def handle(self, *args: Any, interval: float, once: bool, **options: Any) -> None:
        scheduler = Scheduler()
        if once:
            report = scheduler.tick()
            self.stdout.write(f"fired={len(report.fired)} busy={report.busy} rescans={len(report.rescans)}")
            return
        stop = threading.Event()

        def request_stop(signum: int, frame: Any) -> None:
            log.info("run_scheduler stopping", extra={"signal": signum})
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        log.info("run_scheduler started", extra={"interval": interval})
        while not stop.is_set():
            close_old_connections()  # a long-lived process must not keep a connection the server dropped
            try:
                report = scheduler.tick()
                if report.fired or report.rescans:
                    log.info("scheduler tick", extra={"fired": report.fired, "rescans": report.rescans})
            except Exception:  # a database blip must not end the process; the next tick retries
                log.exception("scheduler tick failed")
            stop.wait(max(interval, 1.0))
        log.info("run_scheduler stopped")

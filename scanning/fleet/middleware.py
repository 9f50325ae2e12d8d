"""The Dramatiq middleware of the fleet: a heartbeat per worker process, scans in flight counted, the
usage counts batched (``pipeline/usage.py``) and written at shutdown.

Loaded with the broker, before Django's models are ready: everything that touches the database is
imported when the worker boots (scanning/fleet/agents.py)."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq

from scanning.fleet.stats import STATS

log = logging.getLogger(__name__)

SCAN_ACTORS = {"scan_object"}


class FleetMiddleware(dramatiq.Middleware):
    """Starts the heartbeat in each worker process and counts the scans in flight."""

    def __init__(self) -> None:
        self.heartbeat: Any = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Here, not at the top: this module loads with the broker, before Django's models are ready.
        from scanning.fleet.agents import Heartbeat
        from scanning.pipeline import usage

        usage.start_batching()  # the heartbeat flushes the usage counts (pipeline/usage.py)
        queues = sorted(getattr(worker, "queues", None) or broker.get_declared_queues())
        self.heartbeat = Heartbeat([q for q in queues if not q.endswith((".DQ", ".XQ"))])
        self.heartbeat.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # The worker's threads have finished their messages: nothing counts after this.
        from scanning.pipeline import usage

        try:
            usage.stop_batching()
        except Exception:
            log.exception("could not write the usage counts at shutdown")

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if message.actor_name in SCAN_ACTORS:
            STATS.scan_started()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if message.actor_name in SCAN_ACTORS:
            STATS.scan_ended(f"{type(exception).__name__}: {exception}" if exception else "")

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if message.actor_name in SCAN_ACTORS:
            STATS.scan_ended()

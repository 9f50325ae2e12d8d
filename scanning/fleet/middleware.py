"""The Dramatiq middleware of the fleet: a heartbeat per worker process, scans in flight counted.

Loaded with the broker, before Django's models are ready: everything that touches the database is
imported when the worker boots (scanning/fleet/agents.py)."""

from __future__ import annotations

from typing import Any

import dramatiq

from scanning.fleet.stats import STATS

SCAN_ACTORS = {"scan_object"}


class FleetMiddleware(dramatiq.Middleware):
    """Starts the heartbeat in each worker process and counts the scans in flight."""

    def __init__(self) -> None:
        self.heartbeat: Any = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Here, not at the top: this module loads with the broker, before Django's models are ready.
        from scanning.fleet.agents import Heartbeat

        queues = sorted(getattr(worker, "queues", None) or broker.get_declared_queues())
        self.heartbeat = Heartbeat([q for q in queues if not q.endswith((".DQ", ".XQ"))])
        self.heartbeat.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()

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

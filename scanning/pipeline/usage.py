"""Usage (``UsageMonth``: objects and bytes scanned per tenant and month) of the scans this process
records, added up in memory and written every few seconds instead of one UPDATE per scan (issue 10).

Batching is on in worker processes only: ``fleet.middleware.FleetMiddleware`` turns it on when the worker
boots, and flushes and turns it off once the worker's threads have finished at shutdown. While it is
on, the scan that finds the oldest pending count ``FLUSH_SECONDS`` old writes what is pending, and the
heartbeat thread (``fleet.agents.Heartbeat``) flushes at every beat and, between beats, whenever the
oldest count is due: an idle worker's last counts are written within about twice ``FLUSH_SECONDS``.
Everywhere else (the web process scanning an existing object, commands, tests) a scan's usage is
written at once, as before.

What a crash can lose: a worker process that dies without its shutdown (SIGKILL, the OOM killer, a
power cut) loses the usage of the scans it recorded since its last flush, at most ``FLUSH_SECONDS`` of
that process's scans (a later scan writes them, and in an idle process the heartbeat thread does).
Verdicts, tags, actions and job counters never wait for this: usage feeds the usage report and the
scan API's monthly byte limit, which may so lag by those seconds. A flush that fails (the database is
unreachable) keeps its counts for the next one; counts are added to the month the scan was recorded
in, whenever they are written.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import date, datetime
from typing import Any

from django_scopes import scopes_disabled

from scanning.models import UsageMonth

log = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0


class PendingUsage:
    """Thread-safe usage counts of one process, by (tenant id, month)."""

    def __init__(self, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.flush_seconds = flush_seconds
        self.batching = False
        self._lock = threading.Lock()
        self._counts: dict[tuple[Any, date], list[int]] = {}
        self._oldest: float | None = None  # time.monotonic() of the oldest count not written yet

    def add(self, tenant_id: Any, objects: int = 1, size: int = 0, when: datetime | None = None) -> None:
        """Count scans: at once, or (batching) in memory, writing what is pending when it is due."""
        month = UsageMonth.month_of(when)
        now = time.monotonic()
        with self._lock:  # batching is read under the lock ``stop`` turns it off under
            batching, due = self.batching, False
            if batching:
                counts = self._counts.setdefault((tenant_id, month), [0, 0])
                counts[0] += objects
                counts[1] += size
                if self._oldest is None:
                    self._oldest = now
                due = now - self._oldest >= self.flush_seconds
        if not batching:
            with scopes_disabled():
                UsageMonth.add_to(tenant_id, month, objects, size)
            return
        if due:
            try:
                self.flush()
            except Exception:  # kept for the next flush; the scan that got here is recorded all the same
                log.exception("usage flush failed")

    def pending(self) -> dict[tuple[Any, date], tuple[int, int]]:
        with self._lock:
            return {key: (c[0], c[1]) for key, c in self._counts.items()}

    def flush(self) -> int:
        """Write what is pending (one statement per tenant and month); returns the rows written. Raises
        when the database refuses, keeping what was not written."""
        with self._lock:
            counts, self._counts, oldest, self._oldest = self._counts, {}, self._oldest, None
        written = 0
        try:
            with scopes_disabled():
                for key in list(counts):
                    objects, size = counts[key]
                    UsageMonth.add_to(key[0], key[1], objects, size)
                    del counts[key]
                    written += 1
        finally:
            if counts:
                self._keep(counts, oldest)
        return written

    def flush_if_due(self) -> int:
        """Write what is pending when its oldest count is ``flush_seconds`` old (the heartbeat thread
        asks between beats, so the counts of a worker that went idle are not left waiting for a beat)."""
        with self._lock:
            due = self._oldest is not None and time.monotonic() - self._oldest >= self.flush_seconds
        return self.flush() if due else 0

    def stop(self) -> None:
        """Count at once from now on and write what is pending: a count that went into memory before
        this is in the flush, one after it is written at once."""
        with self._lock:
            self.batching = False
        self.flush()

    def _keep(self, counts: dict[tuple[Any, date], list[int]], oldest: float | None) -> None:
        with self._lock:
            for key, (objects, size) in counts.items():
                mine = self._counts.setdefault(key, [0, 0])
                mine[0] += objects
                mine[1] += size
            if oldest is not None and (self._oldest is None or oldest < self._oldest):
                self._oldest = oldest


PENDING = PendingUsage()


def add(tenant_id: Any, objects: int = 1, size: int = 0, when: datetime | None = None) -> None:
    PENDING.add(tenant_id, objects, size, when)


def start_batching() -> None:
    PENDING.batching = True


def stop_batching() -> None:
    """Write what is pending and count at once from now on (a worker shutting down)."""
    PENDING.stop()


def flush() -> int:
    return PENDING.flush()


def flush_if_due() -> int:
    return PENDING.flush_if_due()

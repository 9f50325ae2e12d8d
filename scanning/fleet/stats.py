"""What one worker process has done, counted in memory and sent with its heartbeat (scanning/fleet/agents.py).

Plain Python, no Django. ``/metrics`` (metrics.py here) exposes these per agent, so every web process
answers with the whole fleet's numbers without scraping each worker.
"""

from __future__ import annotations

import bisect
import threading
from typing import Any

# Seconds. Scans of small objects take milliseconds; a 1 GiB object takes 15-30 s here.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# From the scan message being enqueued (ingest turning an S3 event into a scan) to the verdict.
EVENT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    def snapshot(self) -> dict[str, Any]:
        return {"buckets": list(self.buckets), "counts": list(self.counts), "sum": self.sum}


class WorkerStats:
    """Thread-safe counters of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.in_flight = 0
            self.done = 0
            self.by_verdict: dict[str, int] = {}
            self.bytes = 0
            self.duration = Histogram(DURATION_BUCKETS)
            self.event_to_verdict = Histogram(EVENT_BUCKETS)
            self.notification_failures = 0
            self.last_error = ""

    def scan_started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def scan_ended(self, error: str = "") -> None:
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)
            self.done += 1
            if error:
                self.last_error = error[:2000]

    def verdict(self, verdict: str, size: int, duration: float, since_enqueued: float | None) -> None:
        with self._lock:
            self.by_verdict[verdict] = self.by_verdict.get(verdict, 0) + 1
            self.bytes += max(0, size)
            self.duration.observe(max(0.0, duration))
            if since_enqueued is not None:
                self.event_to_verdict.observe(max(0.0, since_enqueued))

    def notification_failed(self) -> None:
        with self._lock:
            self.notification_failures += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "in_flight": self.in_flight,
                "done": self.done,
                "by_verdict": dict(self.by_verdict),
                "bytes": self.bytes,
                "duration": self.duration.snapshot(),
                "event_to_verdict": self.event_to_verdict.snapshot(),
                "notification_failures": self.notification_failures,
                "last_error": self.last_error,
            }


STATS = WorkerStats()

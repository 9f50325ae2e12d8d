"""``/metrics``: Prometheus exposition of the whole deployment, from any web process.

Built at each scrape by a custom collector with prometheus_client's metric families and exposition (no
hand-written text format): queue depths asked of the broker, the fleet's counters and histograms from
the agents' heartbeats (each worker process counts in memory, scanning/fleet/stats.py, and sends its totals
every heartbeat), signature age and updates, notification failures. Per-agent series carry an
``agent`` label (host:pid), so a counter only ever grows within its series and Prometheus sees a
restarted worker as a new series or, with the same host and pid, a counter reset, as it would scraping
each worker.

Guarded by a bearer token (``S3AV_METRICS_TOKEN``); without one the path answers 404. Answered, like
the probes, before the host check (Prometheus scrapes by pod IP): s3av/health.py routes it here.

dramatiq's own Prometheus middleware (per-actor message counts and durations, on each worker's own
port ``dramatiq_prom_port``) is added with ``S3AV_WORKER_PROMETHEUS=true``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from typing import Any

import dramatiq
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django_scopes import scopes_disabled
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from scanning.fleet import agents as fleet
from scanning.models import Agent, NotificationChannel, SignatureUpdate

log = logging.getLogger(__name__)

QUEUES = ("scans", "listing", "default")


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        return HttpResponse("Not found.\n", status=404, content_type="text/plain")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        response = HttpResponse("Unauthorized.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeploymentCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class DeploymentCollector:
    def collect(self) -> Iterator[Metric]:
        yield from queue_metrics()
        with scopes_disabled():
            yield from fleet_metrics()
            yield from signature_metrics()
            yield from channel_metrics()


def queue_counts(broker: Any, queue: str) -> tuple[int, int, int]:
    """(ready, delayed, dead) messages of ``queue``."""
    if isinstance(broker, RabbitmqBroker):
        try:
            ready, delayed, dead = broker.get_queue_message_counts(queue)
        except Exception:
            del broker.connection  # a failed passive declare closes the channel: start afresh next time
            raise
        return int(ready), int(delayed), int(dead)
    if isinstance(broker, RedisBroker):
        base = f"{broker.namespace}:{queue}"
        client = broker.client
        return int(client.llen(base)), int(client.llen(f"{base}.DQ")), int(client.zcard(f"{base}.XQ"))
    if isinstance(broker, StubBroker):
        sizes = [
            broker.queues[name].qsize() if name in broker.queues else 0 for name in (queue, f"{queue}.DQ")
        ]
        return sizes[0], sizes[1], len(broker.dead_letters_by_queue.get(queue, []))
    raise TypeError(f"no queue depths for {type(broker).__name__}")


def queue_metrics() -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "s3av_queue_messages", "Messages waiting in a broker queue.", labels=["queue", "state"]
    )
    up = GaugeMetricFamily("s3av_broker_up", "1 when the broker answered for the queue depths.")
    try:
        broker = dramatiq.get_broker()
        for queue in QUEUES:
            ready, delayed, dead = queue_counts(broker, queue)
            depth.add_metric([queue, "ready"], ready)
            depth.add_metric([queue, "delayed"], delayed)
            depth.add_metric([queue, "dead"], dead)
        up.add_metric([], 1)
    except Exception as exc:
        log.warning("queue depths unavailable", extra={"error": repr(exc)[:300]})
        up.add_metric([], 0)
    yield depth
    yield up


def _histogram(name: str, documentation: str, per_agent: list[tuple[str, dict[str, Any]]]) -> Metric:
    family = HistogramMetricFamily(name, documentation, labels=["agent"])
    for agent, data in per_agent:
        bounds, counts = data.get("buckets") or [], data.get("counts") or []
        if len(counts) != len(bounds) + 1:
            continue
        cumulative, total = [], 0
        for bound, count in zip([*map(str, map(float, bounds)), "+Inf"], counts, strict=True):
            total += int(count)
            cumulative.append((bound, total))
        family.add_metric([agent], cumulative, sum_value=float(data.get("sum", 0.0)))
    return family


def _running_agents(agents: list[Any], now: Any, lost_after: Any) -> list[Any]:
    """Per-agent series only for agents that heartbeat: a lost one is most likely dead, and its last
    words (engine down, scans in flight) would hold gauges and alerts for the day it stays listed, as
    a scrape of a dead process would not. One series per label: a worker restarted in the same
    container (same host name, and pids repeat there) has the label of the process it replaced."""
    newest: dict[str, Any] = {}
    for agent in agents:
        label = f"{agent.host}:{agent.pid}"
        active = agent.status_at(now, lost_after) == Agent.Status.ACTIVE
        if active and (label not in newest or agent.started_at > newest[label].started_at):
            newest[label] = agent
    return list(newest.values())


def fleet_metrics() -> Iterator[Metric]:
    now = timezone.now()
    agents = fleet.current_agents(now)
    by_status = GaugeMetricFamily("s3av_agents", "Worker processes by status.", labels=["status"])
    counts = {status: 0 for status in Agent.Status.values}
    for agent in agents:
        counts[agent.status_at(now, fleet.lost_after())] += 1
    for status, count in counts.items():
        by_status.add_metric([status], count)
    yield by_status

    running = _running_agents(list(agents), now, fleet.lost_after())
    scans = CounterMetricFamily("s3av_scans", "Verdicts recorded, by verdict.", labels=["agent", "verdict"])
    scanned = CounterMetricFamily("s3av_scanned_bytes", "Bytes read from S3 and scanned.", labels=["agent"])
    failures = CounterMetricFamily(
        "s3av_notification_failures", "Notification deliveries that failed.", labels=["agent"]
    )
    in_flight = GaugeMetricFamily("s3av_scans_in_flight", "Scans running now.", labels=["agent"])
    engine_up = GaugeMetricFamily("s3av_engine_up", "1 when the agent's clamd answered.", labels=["agent"])
    age = GaugeMetricFamily(
        "s3av_signature_age_seconds", "Age of the signatures the agent scans with.", labels=["agent"]
    )
    seen = GaugeMetricFamily(
        "s3av_agent_last_seen_timestamp_seconds", "The agent's last heartbeat.", labels=["agent"]
    )
    durations, latencies = [], []
    for agent in running:
        label = f"{agent.host}:{agent.pid}"
        stats = agent.stats or {}
        for verdict, count in sorted((stats.get("by_verdict") or {}).items()):
            scans.add_metric([label, verdict], int(count))
        scanned.add_metric([label], int(stats.get("bytes", 0)))
        failures.add_metric([label], int(stats.get("notification_failures", 0)))
        in_flight.add_metric([label], agent.scans_in_flight)
        engine_up.add_metric([label], 1 if agent.engine_ok else 0)
        seen.add_metric([label], agent.last_seen_at.timestamp())
        if agent.signature_age is not None:
            age.add_metric([label], agent.signature_age)
        durations.append((label, stats.get("duration") or {}))
        latencies.append((label, stats.get("event_to_verdict") or {}))
    yield scans
    yield scanned
    yield failures
    yield in_flight
    yield engine_up
    yield age
    yield seen
    yield _histogram("s3av_scan_duration_seconds", "Time to scan one object (download and clamd).", durations)
    yield _histogram(
        "s3av_event_to_verdict_seconds",
        "From the scan message being enqueued for an S3 event to its verdict.",
        latencies,
    )


def signature_metrics() -> Iterator[Metric]:
    last = GaugeMetricFamily(
        "s3av_signature_update_timestamp_seconds",
        "When the last signature update run of each outcome finished.",
        labels=["status"],
    )
    for status in SignatureUpdate.Status.values:
        run = SignatureUpdate.objects.filter(status=status).order_by("-started_at").first()
        if run is not None:
            last.add_metric([status], (run.finished_at or run.started_at).timestamp())
    yield last


def channel_metrics() -> Iterator[Metric]:
    failing = GaugeMetricFamily(
        "s3av_notification_channels_failing", "Enabled channels whose last delivery failed."
    )
    failing.add_metric([], NotificationChannel.objects.filter(enabled=True).exclude(last_error="").count())
    yield failing

"""A real worker process registers as an agent, heartbeats its counters, and /metrics shows them."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django_scopes import scopes_disabled
from prometheus_client.parser import text_string_to_metric_families

from scanning.fleet.metrics import queue_counts
from scanning.models import Agent
from tests.fixtures.scanning import EICAR
from tests.integration.test_worker_pipeline import _final, _message, _wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_worker_heartbeats_its_scans_and_metrics_show_them(
    tenant, make_linked_bucket, s3_client, start_worker, rabbitmq_broker, settings, tmp_path
):
    bucket = make_linked_bucket(tenant)
    heartbeat_file = tmp_path / "worker.alive"
    messages = []
    for key, body in {"a/eicar.txt": EICAR, "a/clean.txt": b"nothing to see here\n" * 50}.items():
        etag = s3_client.put_object(Bucket=bucket.name, Key=key, Body=body)["ETag"]
        messages.append(_message(tenant, bucket, key, etag))
    worker = start_worker(S3AV_AGENT_HEARTBEAT="1", S3AV_HEARTBEAT_FILE=str(heartbeat_file))
    for _, message in messages:
        rabbitmq_broker.enqueue(message)
    for dedupe, _ in messages:
        _wait_for(lambda d=dedupe: _final(d), 60, "a verdict", worker)

    def counted() -> Agent | None:
        with scopes_disabled():
            agent = Agent.objects.filter(stopped_at__isnull=True).order_by("-last_seen_at").first()
        return agent if agent and agent.scans_done >= 2 and agent.stats.get("by_verdict") else None

    agent = _wait_for(counted, 30, "the agent's heartbeat", worker)
    assert agent.stats["by_verdict"] == {"Infected": 1, "Clean": 1}
    assert {"scans", "listing", "default"} <= set(agent.queues)
    assert agent.engine.startswith("ClamAV ") and agent.signature_version and agent.engine_ok
    assert agent.signature_age is not None
    assert agent.scans_in_flight == 0
    assert Path(heartbeat_file).exists()
    # Event-to-verdict: these messages came as S3 events.
    assert sum(agent.stats["event_to_verdict"]["counts"]) == 2

    settings.METRICS_TOKEN = "scrape-token-0123456789"
    response = Client().get(
        "/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789", HTTP_HOST="10.1.2.3"
    )
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    label = f"{agent.host}:{agent.pid}"
    scans = {
        s.labels["verdict"]: s.value
        for s in families["s3av_scans"].samples
        if s.name == "s3av_scans_total" and s.labels["agent"] == label
    }
    assert scans == {"Infected": 1.0, "Clean": 1.0}
    duration = [s for s in families["s3av_scan_duration_seconds"].samples if s.labels["agent"] == label]
    assert [s.value for s in duration if s.name.endswith("_count")] == [2.0]
    assert any(s.labels.get("le") == "+Inf" for s in duration)
    bytes_scanned = [s.value for s in families["s3av_scanned_bytes"].samples if s.labels["agent"] == label]
    assert bytes_scanned == [float(len(EICAR) + len(b"nothing to see here\n" * 50))]

    # Queue depths asked of the real RabbitMQ.
    rabbitmq_broker.declare_queue("scans")
    assert queue_counts(rabbitmq_broker, "scans")[0] == 0

    worker.stop()
    with scopes_disabled():
        agent.refresh_from_db()
    assert agent.stopped_at is not None

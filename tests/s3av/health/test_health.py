"""/healthz and /readyz answer load balancers and container platforms: any Host header, plain HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings

from s3av import health

pytestmark = pytest.mark.django_db


@pytest.fixture
def probe(clamd_address: str, settings: Any) -> Client:
    settings.CLAMD_ADDRESS = clamd_address
    return Client()


def test_it_answers_liveness_for_any_host(probe: Client) -> None:
    response = probe.get("/healthz", HTTP_HOST="10.0.3.17:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_answers_readiness_with_every_check(probe: Client) -> None:
    response = probe.get("/readyz", HTTP_HOST="10.0.3.17")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "clamd": "ok"},
        "failed": [],
    }
    assert response["Cache-Control"] == "no-store"


def test_it_says_which_check_failed(probe: Client, settings: Any, tmp_path: Any) -> None:
    settings.CLAMD_ADDRESS = f"unix://{tmp_path}/no-clamd.sock"
    response = probe.get("/readyz", HTTP_HOST="10.0.3.17")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["clamd"]
    assert body["checks"]["database"] == "ok"
    assert "no-clamd" not in response.content.decode()  # the why is logged, not told


def test_it_reports_a_broker_that_does_not_answer(probe: Client, monkeypatch: Any) -> None:
    def down() -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(health, "check_broker", down)
    response = probe.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]


def test_it_checks_a_real_rabbitmq_broker() -> None:
    import dramatiq
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    from tests.fixtures.worker import RABBITMQ_URL

    broker = RabbitmqBroker(url=RABBITMQ_URL)
    previous = dramatiq.get_broker()
    dramatiq.set_broker(broker)
    try:
        health.check_broker()
    finally:
        dramatiq.set_broker(previous)
        broker.close()


@override_settings(SECURE_SSL_REDIRECT=True, ALLOWED_HOSTS=["s3av.example.com"])
def test_it_is_exempt_from_the_https_redirect_and_the_host_check(probe: Client) -> None:
    assert probe.get("/healthz", HTTP_HOST="172.16.0.5").status_code == 200
    assert probe.get("/readyz", HTTP_HOST="172.16.0.5").status_code == 200
    # Every other path still gets the host check and the redirect.
    assert probe.get("/healthz/", HTTP_HOST="172.16.0.5").status_code == 400
    assert probe.get("/api/v1/me", HTTP_HOST="172.16.0.5").status_code == 400
    assert probe.get("/api/v1/me", HTTP_HOST="s3av.example.com").status_code == 301


@override_settings(
    SECURE_SSL_REDIRECT=True, ALLOWED_HOSTS=["s3av.example.com"], METRICS_TOKEN="scrape-0123456789"
)
def test_metrics_are_scraped_by_pod_ip_and_open_no_other_way_in(probe: Client) -> None:
    # Prometheus scrapes pod IPs over plain HTTP; the bearer token guards the path, and the answer
    # builds no URL from the Host header, so the host check has nothing to protect there.
    auth = {"HTTP_AUTHORIZATION": "Bearer scrape-0123456789"}
    assert probe.get("/metrics", HTTP_HOST="10.0.3.17:8000", **auth).status_code == 200
    assert probe.get("/metrics", HTTP_HOST="10.0.3.17:8000").status_code == 401
    # Only GET and HEAD of the exact path are answered early.
    assert probe.get("/metrics/", HTTP_HOST="10.0.3.17:8000", **auth).status_code == 400
    assert probe.post("/metrics", HTTP_HOST="10.0.3.17:8000", **auth).status_code == 400
    assert probe.post("/healthz", HTTP_HOST="10.0.3.17:8000").status_code == 400


def test_the_settings_exempt_the_probes_from_the_redirect() -> None:
    import re

    from django.conf import settings

    exempt = getattr(settings, "SECURE_REDIRECT_EXEMPT", None)
    if exempt is None:  # debug mode sets no HTTPS behaviour at all
        pytest.skip("S3AV_DEBUG is on")
    assert all(any(re.search(p, path) for p in exempt) for path in ("healthz", "readyz"))


def test_ingest_and_the_scheduler_touch_the_heartbeat_file(settings: Any, tmp_path: Any) -> None:
    import threading

    from scanning.ingest import events as ingest
    from scanning.schedules.services import Scheduler

    settings.HEARTBEAT_FILE = str(tmp_path / "scheduler.alive")
    Scheduler().tick()
    assert (tmp_path / "scheduler.alive").exists()

    settings.HEARTBEAT_FILE = str(tmp_path / "ingest.alive")
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    ingest.run(stop, wait_seconds=1, refresh_seconds=0.1)
    assert (tmp_path / "ingest.alive").exists()


def test_the_scheduler_keeps_its_heartbeat_file_fresh_through_a_long_signature_update(
    settings: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    import os
    import time

    from scanning.fleet import signatures as signature_updates
    from scanning.schedules import services as schedules

    alive = tmp_path / "scheduler.alive"
    settings.HEARTBEAT_FILE = str(alive)
    settings.SIGNATURES_SOURCE = "freshclam"
    monkeypatch.setattr(schedules, "HEARTBEAT_FILE_EVERY", 0.05, raising=False)
    seen: list[float] = []

    def long_update() -> None:
        os.utime(alive, (1, 1))  # as if the tick had started long ago
        time.sleep(0.5)  # downloading, test-loading, reloading
        seen.append(alive.stat().st_mtime)

    monkeypatch.setattr(signature_updates, "update_signatures", long_update)
    assert schedules.Scheduler().tick().signatures == ""
    assert seen and seen[0] > 1

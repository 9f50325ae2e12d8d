"""The fleet: heartbeats, lost agents, operational notifications, GET /api/v1/agents/, /metrics."""

from __future__ import annotations

import json
import os
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_scopes import scope
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import Role
from scanning.fleet import agents as fleet
from scanning.fleet.stats import STATS
from scanning.models import Agent, ChannelKind, SignatureUpdate
from scanning.notifications import services as channels
from scanning.pipeline import services
from tests.fixtures.webhooks import WebhookReceiver as Receiver

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def engine(settings: Any, clamd_address: str, monkeypatch: Any) -> Any:
    settings.CLAMD_ADDRESS = clamd_address
    monkeypatch.setattr(services, "_identity", None)
    return settings


@pytest.fixture
def receiver(webhook_receiver: Receiver) -> Receiver:
    return webhook_receiver


def make_agent(**fields: Any) -> Agent:
    defaults: dict[str, Any] = {"host": "worker-1", "pid": 4242, "queues": ["default", "scans"]}
    return Agent.objects.create(**{**defaults, **fields})


def ops_channel(tenant: Any, receiver: Receiver, results: list[str]) -> Any:
    with scope(tenant=tenant):
        channel = channels.create_channel(
            tenant,
            services_actor(),
            name="ops",
            kind=ChannelKind.WEBHOOK,
            target=receiver.url,
            results=results,
        )
    return channel


def services_actor() -> Any:
    from accounts.services import Actor

    return Actor.system("test")


def sent(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(body) for _, body in receiver.requests]


def test_it_registers_and_heartbeats_an_agent(engine: Any) -> None:
    STATS.reset()
    STATS.scan_started()
    heartbeat = fleet.Heartbeat(["scans", "default"])
    agent = heartbeat.beat()
    assert agent.host and agent.pid == os.getpid()
    assert agent.queues == ["default", "scans"]
    assert agent.engine.startswith("ClamAV ") and agent.engine_ok
    assert agent.signature_version == services.engine_identity().get()[1]
    assert agent.scans_in_flight == 1
    STATS.scan_ended()
    again = heartbeat.beat()
    assert again.pk == agent.pk and again.scans_in_flight == 0 and again.scans_done == 1
    assert Agent.objects.count() == 1
    heartbeat.stop()
    again.refresh_from_db()
    assert again.stopped_at is not None
    STATS.reset()


def test_it_records_an_engine_that_does_not_answer(engine: Any, tmp_path: Any) -> None:
    engine.CLAMD_ADDRESS = f"unix://{tmp_path}/gone.sock"
    agent = fleet.Heartbeat(["scans"]).beat()
    assert agent.engine_ok is False
    assert agent.last_error.startswith("engine: ")


def test_a_workers_liveness_file_is_kept_through_a_database_outage(
    engine: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    from django.db import OperationalError

    alive = tmp_path / "worker.alive"
    engine.HEARTBEAT_FILE = str(alive)

    def database_down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("the database does not answer")

    monkeypatch.setattr(Agent.objects, "update_or_create", database_down)
    heartbeat = fleet.Heartbeat(["scans"], every=0.05)
    heartbeat.start()
    try:
        deadline = timezone.now() + timedelta(seconds=10)
        while not alive.exists() and timezone.now() < deadline:
            heartbeat._stop.wait(0.05)
    finally:
        heartbeat._stop.set()
        assert heartbeat._thread is not None
        heartbeat._thread.join(10)
    # The process runs: restarting it would not bring the database back.
    assert alive.exists()


def test_a_heartbeat_that_stops_closes_its_threads_database_connection(monkeypatch: Any) -> None:
    # The heartbeat thread has a connection of its own; a worker's agent that is stopped ends the loop,
    # and the connection must not stay open (and hold the database) until the process exits.
    closed_in: list[str] = []

    class Connection:
        def close(self) -> None:
            closed_in.append(threading.current_thread().name)

    def stopped() -> Any:
        raise fleet.HeartbeatStopped()

    monkeypatch.setattr(fleet, "connection", Connection())
    heartbeat = fleet.Heartbeat(["scans"], every=0.05)
    monkeypatch.setattr(heartbeat, "beat", stopped)
    heartbeat.start()
    assert heartbeat._thread is not None
    heartbeat._thread.join(10)
    assert not heartbeat._thread.is_alive()
    assert closed_in == ["s3av-heartbeat"]


def test_it_shows_a_silent_agent_as_lost_and_notifies_once(tenant: Any, receiver: Receiver) -> None:
    ops_channel(tenant, receiver, ["agent.lost"])
    now = timezone.now()
    agent = make_agent(last_seen_at=now - timedelta(minutes=5))
    assert agent.status_at(now, fleet.lost_after()) == Agent.Status.LOST
    assert [kind for kind, _ in fleet.check_fleet(now)] == ["agent.lost"]
    assert fleet.check_fleet(now) == []  # once per trouble
    body = sent(receiver)
    assert len(body) == 1
    assert body[0]["notificationType"] == "operationalEvent" and body[0]["result"] == "agent.lost"
    assert "worker-1:4242" in body[0]["message"]
    # It comes back, then goes silent again: a new alert.
    Agent.objects.filter(pk=agent.pk).update(last_seen_at=now)
    assert fleet.check_fleet(now) == []
    Agent.objects.filter(pk=agent.pk).update(last_seen_at=now - timedelta(minutes=5))
    assert [kind for kind, _ in fleet.check_fleet(now)] == ["agent.lost"]


def test_it_notifies_stale_signatures_and_a_silent_engine(
    tenant: Any, receiver: Receiver, settings: Any
) -> None:
    settings.SIGNATURES_MAX_AGE = 3600
    ops_channel(tenant, receiver, ["signatures.stale", "engine.down"])
    make_agent(signature_age=7200)
    make_agent(pid=4343, engine_ok=False, last_error="engine: cannot connect")
    make_agent(pid=4444, signature_age=60)
    raised = sorted(kind for kind, _ in fleet.check_fleet())
    assert raised == ["engine.down", "signatures.stale"]
    assert sorted(message["result"] for message in sent(receiver)) == raised


def test_a_hosts_engine_trouble_is_notified_once_not_once_per_worker_process(
    tenant: Any, receiver: Receiver, settings: Any
) -> None:
    settings.SIGNATURES_MAX_AGE = 3600
    ops_channel(tenant, receiver, ["engine.down", "signatures.stale"])
    for pid in (1, 2, 3):  # one clamd, three worker processes beside it
        make_agent(pid=pid, engine_ok=False, signature_age=7200, last_error="engine: cannot connect")
    make_agent(host="worker-2", pid=1, engine_ok=False, last_error="engine: timed out")
    raised = sorted(fleet.check_fleet())
    assert [kind for kind, _ in raised] == ["engine.down", "engine.down", "signatures.stale"]
    assert {message.split()[4] for kind, message in raised if kind == "engine.down"} == {
        "worker-1:1",
        "worker-2:1",
    }
    assert fleet.check_fleet() == []
    # A process started on the host meanwhile shares the trouble already notified.
    make_agent(pid=4, engine_ok=False, last_error="engine: cannot connect")
    assert fleet.check_fleet() == []
    assert len(sent(receiver)) == 3


def test_it_notifies_a_rejected_update_once(tenant: Any, receiver: Receiver) -> None:
    ops_channel(tenant, receiver, ["signatures.rejected"])
    SignatureUpdate.objects.create(status="rejected", reason="test load failed: Malformed database")
    assert [kind for kind, _ in fleet.check_fleet()] == ["signatures.rejected"]
    assert fleet.check_fleet() == []
    assert "Malformed database" in sent(receiver)[0]["message"]


def test_two_schedulers_checking_at_once_send_each_alert_once(
    tenant: Any, receiver: Receiver, monkeypatch: Any
) -> None:
    import copy

    ops_channel(tenant, receiver, ["agent.lost"])
    now = timezone.now()
    make_agent(last_seen_at=now - timedelta(minutes=5))
    # A scheduler per host: both read the fleet before either has written what it sent.
    read_by_both = fleet.current_agents(now)
    monkeypatch.setattr(fleet, "current_agents", lambda now=None: copy.deepcopy(read_by_both))
    assert [kind for kind, _ in fleet.check_fleet(now)] == ["agent.lost"]
    assert fleet.check_fleet(now) == []
    assert len(sent(receiver)) == 1


def test_an_update_that_keeps_failing_is_notified_once_until_one_succeeds(
    tenant: Any, receiver: Receiver
) -> None:
    ops_channel(tenant, receiver, ["signatures.rejected"])
    start = timezone.now() - timedelta(hours=10)

    def run(hours: int, status: str, host: str = "worker-1") -> None:
        at = start + timedelta(hours=hours)
        SignatureUpdate.objects.create(
            started_at=at, finished_at=at, host=host, status=status, reason=f"{status} at {hours}"
        )

    run(0, "current")
    run(2, "failed")
    assert [kind for kind, _ in fleet.check_fleet()] == ["signatures.rejected"]
    run(4, "failed")  # the mirror is still unreachable: the same trouble
    run(5, "rejected")
    assert fleet.check_fleet() == []
    run(6, "current", host="worker-2")  # another host's good run does not clear this host's trouble
    assert fleet.check_fleet() == []
    run(7, "updated")
    run(8, "rejected")  # a new trouble after a good run
    raised = fleet.check_fleet()
    assert [kind for kind, _ in raised] == ["signatures.rejected"]
    assert "on worker-1 rejected: rejected at 8" in raised[0][1]
    run(9, "failed", host="worker-2")  # and another host's own trouble
    assert [message for _, message in fleet.check_fleet()] == [
        "signature update on worker-2 failed: failed at 9"
    ]
    assert len(sent(receiver)) == 3


def test_verdict_channels_get_no_operational_events(tenant: Any, receiver: Receiver) -> None:
    channel = ops_channel(tenant, receiver, ["Infected"])
    make_agent(last_seen_at=timezone.now() - timedelta(hours=1))
    assert [kind for kind, _ in fleet.check_fleet()] == ["agent.lost"]
    assert receiver.requests == []
    assert channel.wants("Infected") and not channel.wants("agent.lost")


def test_it_accepts_event_kinds_in_a_channel_filter(tenant: Any, key_client: Any, receiver: Receiver) -> None:
    client = key_client(tenant)
    response = client.post(
        "/api/v1/channels/",
        {"name": "ops", "kind": "webhook", "target": receiver.url,
         "results": ["Infected", "agent.lost", "signatures.stale"]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    assert response.json()["results"] == ["Infected", "agent.lost", "signatures.stale"]
    bad = client.post(
        "/api/v1/channels/",
        {"name": "x", "kind": "webhook", "target": receiver.url, "results": ["agent.gone"]},
        format="json",
    )
    assert bad.status_code == 400 and "results" in bad.json()
    email = client.post(
        "/api/v1/channels/", {"name": "m", "kind": "email", "results": ["agent.lost"]}, format="json"
    )
    assert email.status_code == 400 and "results" in email.json()


# --- GET /api/v1/agents/ -----------------------------------------------------------------------------


def test_a_tenant_sees_the_fleets_health_not_its_work(tenant: Any, key_client: Any) -> None:
    make_agent(scans_done=12, last_error="s3://other-tenant-bucket/secret.docx: AccessDenied")
    make_agent(pid=1, last_seen_at=timezone.now() - timedelta(minutes=10))
    response = key_client(tenant, Role.VIEWER).get("/api/v1/agents/")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert sorted(row["status"] for row in rows) == ["active", "lost"]
    assert "other-tenant-bucket" not in response.content.decode()
    assert not {"host", "pid", "scans_done", "last_error"} & set(rows[0])


def test_support_staff_see_what_each_agent_does(tenant: Any, session_client: Any) -> None:
    make_agent(scans_done=12, last_error="boom")
    from accounts.models import User

    client = session_client(tenant, Role.VIEWER)
    assert "host" not in client.get("/api/v1/agents/").json()["results"][0]
    User.objects.filter(memberships__tenant=tenant).update(is_staff=True)
    rows = client.get("/api/v1/agents/").json()["results"]
    assert rows[0]["host"] == "worker-1" and rows[0]["scans_done"] == 12 and rows[0]["last_error"] == "boom"


def test_the_agents_list_needs_credentials_and_is_read_only(tenant: Any, key_client: Any) -> None:
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/agents/").status_code == 401
    assert key_client(tenant).post("/api/v1/agents/", {}, format="json").status_code == 405


def test_a_member_without_a_role_cannot_list_the_fleet(tenant: Any, session_client: Any) -> None:
    make_agent()
    assert session_client(tenant, Role.NONE).get("/api/v1/agents/").status_code == 403
    assert session_client(tenant, Role.VIEWER).get("/api/v1/agents/").status_code == 200


def test_the_agents_list_runs_a_fixed_number_of_queries(
    tenant: Any, key_client: Any, django_assert_max_num_queries: Any
) -> None:
    for pid in range(20):
        make_agent(pid=pid)
    client = key_client(tenant)
    with django_assert_max_num_queries(6):
        assert len(client.get("/api/v1/agents/").json()["results"]) == 20


# --- /metrics ----------------------------------------------------------------------------------------


def test_metrics_answer_404_without_a_token(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_metrics_refuse_a_wrong_token(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401


def test_metrics_expose_the_expected_series(settings: Any, tenant: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    STATS.reset()
    STATS.verdict("Clean", 1000, 0.2, 1.5)
    STATS.verdict("Infected", 68, 0.01, None)
    STATS.notification_failed()
    make_agent(stats=STATS.snapshot(), signature_age=600, scans_done=2)
    make_agent(pid=7, last_seen_at=timezone.now() - timedelta(minutes=30))
    SignatureUpdate.objects.create(status="updated", finished_at=timezone.now())
    STATS.reset()
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", HTTP_HOST="192.0.2.10:8000")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    expected = {
        "s3av_queue_messages", "s3av_broker_up", "s3av_agents", "s3av_scans", "s3av_scanned_bytes",
        "s3av_scan_duration_seconds", "s3av_event_to_verdict_seconds", "s3av_signature_age_seconds",
        "s3av_notification_failures", "s3av_notification_channels_failing", "s3av_scans_in_flight",
        "s3av_engine_up", "s3av_signature_update_timestamp_seconds",
    }  # fmt: skip
    assert expected <= set(families)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    agent = ("agent", "worker-1:4242")
    assert samples[("s3av_scans_total", (agent, ("verdict", "Clean")))] == 1
    assert samples[("s3av_scanned_bytes_total", (agent,))] == 1068
    assert samples[("s3av_scan_duration_seconds_count", (agent,))] == 2
    assert samples[("s3av_scan_duration_seconds_bucket", (agent, ("le", "0.25")))] == 2
    assert samples[("s3av_event_to_verdict_seconds_count", (agent,))] == 1
    assert samples[("s3av_notification_failures_total", (agent,))] == 1
    assert samples[("s3av_signature_age_seconds", (agent,))] == 600
    assert samples[("s3av_agents", (("status", "active"),))] == 1
    assert samples[("s3av_agents", (("status", "lost"),))] == 1
    for queue in ("scans", "listing", "default"):
        assert ("s3av_queue_messages", (("queue", queue), ("state", "ready"))) in samples
    assert samples[("s3av_broker_up", ())] == 1


def test_metrics_show_one_series_per_agent_label_when_a_restarted_worker_reuses_a_pid(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    now = timezone.now()
    # The container restarted after the OOM killer: same host name, same pid, a new process.
    make_agent(
        started_at=now - timedelta(hours=2),
        last_seen_at=now - timedelta(minutes=10),
        stats={"by_verdict": {"Clean": 500}, "bytes": 10**9},
    )
    make_agent(started_at=now - timedelta(minutes=9), stats={"by_verdict": {"Clean": 3}, "bytes": 300})
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    samples = [
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for f in text_string_to_metric_families(response.content.decode())
        for s in f.samples
    ]
    keys = [(name, labels) for name, labels, _ in samples]
    assert len(keys) == len(set(keys)), "duplicate series"
    values = {(name, labels): value for name, labels, value in samples}
    agent = ("agent", "worker-1:4242")
    assert values[("s3av_scans_total", (agent, ("verdict", "Clean")))] == 3
    assert values[("s3av_scanned_bytes_total", (agent,))] == 300
    assert values[("s3av_agents", (("status", "lost"),))] == 1


def test_metrics_drop_the_series_of_a_lost_agent(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    now = timezone.now()
    # Its clamd died, then so did it: what it said last must not hold gauges (and alerts) for a day.
    make_agent(
        host="worker-9",
        last_seen_at=now - timedelta(minutes=30),
        engine_ok=False,
        scans_in_flight=3,
        stats={"by_verdict": {"Clean": 7}},
    )
    make_agent(stats={"by_verdict": {"Clean": 1}})
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(response.content.decode())
        for s in f.samples
    }
    assert not [key for key in samples if ("agent", "worker-9:4242") in key[1]]
    assert samples[("s3av_engine_up", (("agent", "worker-1:4242"),))] == 1
    assert samples[("s3av_agents", (("status", "lost"),))] == 1

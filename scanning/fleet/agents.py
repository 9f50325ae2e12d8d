"""The worker fleet: each worker process registers as an ``Agent`` and heartbeats; the scheduler marks
silent agents lost and raises operational alerts (lost agents, stale signatures, an engine that stopped
answering) once per trouble.

The heartbeat is a thread started by ``scanning.fleet.middleware.FleetMiddleware`` in every worker
process (dramatiq forks them), so it keeps beating while all the worker's threads are busy with long
scans. It also touches ``S3AV_HEARTBEAT_FILE`` (when set) for a container platform's liveness command.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from scanning.engine import signatures
from scanning.fleet.stats import STATS
from scanning.models import Agent, SignatureUpdate
from scanning.notifications import events as ops_notifications
from scanning.pipeline import services, usage

log = logging.getLogger(__name__)

# --- signature age -----------------------------------------------------------------------------------


def signature_age(now: datetime | None = None) -> int | None:
    """Seconds since the signatures in use were last known current: the last update run (on this
    host) that found the source current or swapped a new set in; without updates, the newest file of the
    database directory."""
    now = now or timezone.now()
    state = signatures.read_state(Path(settings.CLAMAV_DIR))
    checked = state.checked_at or state.updated_at
    if checked:
        try:
            return max(0, int((now - datetime.fromisoformat(checked)).total_seconds()))
        except ValueError:
            pass
    db_dir = Path(settings.CLAMAV_DB_DIR)
    try:
        newest = max(path.stat().st_mtime for path in db_dir.iterdir() if path.is_file())
    except (OSError, ValueError):
        return None
    return max(0, int(now.timestamp() - newest))


# --- the heartbeat -----------------------------------------------------------------------------------


class HeartbeatStopped(Exception):
    """stop() was called while this beat was being measured: the agent is already marked stopped."""


class Heartbeat:
    """Registers this process as an Agent and updates it every ``every`` seconds until stopped."""

    def __init__(self, queues: list[str], every: float | None = None):
        self.agent_id = uuid.uuid4()
        self.queues = sorted(queues)
        self.every = every if every is not None else settings.AGENT_HEARTBEAT_SECONDS
        self._stop = threading.Event()
        # A beat still running when stop() gives up waiting must not write stopped_at back to None.
        self._write = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="s3av-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._write:
            try:
                Agent.objects.filter(pk=self.agent_id).update(stopped_at=timezone.now(), scans_in_flight=0)
            except Exception:
                log.exception("could not mark the agent stopped")

    def _run(self) -> None:
        try:
            self._beat_until_stopped()
        finally:
            connection.close()  # this thread's own connection, also when a stopped agent ends the loop

    def _beat_until_stopped(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except HeartbeatStopped:
                break
            except Exception:  # a database blip: the next beat tries again
                log.exception("agent heartbeat failed")
            try:
                usage.flush()  # an idle worker's last usage counts too (pipeline/usage.py)
            except Exception:  # kept for the next beat
                log.exception("usage flush failed")
            finally:
                close_old_connections()
            # Liveness, like /healthz and the other processes' files: the process runs. Not tied to the
            # beat's success, or a database outage would get every worker restarted.
            heartbeat_file = settings.HEARTBEAT_FILE
            if heartbeat_file:
                with contextlib.suppress(OSError):
                    Path(heartbeat_file).touch()
            self._wait_for_next_beat()

    def _wait_for_next_beat(self) -> None:
        """Sleep until the next beat, writing the usage counts that fall due meanwhile (an idle worker's
        last scans show in the usage report seconds after, not at the next beat)."""
        next_beat = time.monotonic() + self.every
        while not self._stop.is_set() and (left := next_beat - time.monotonic()) > 0:
            self._stop.wait(min(left, usage.FLUSH_SECONDS))
            try:
                if usage.flush_if_due():
                    close_old_connections()
            except Exception:  # kept for the next try
                log.exception("usage flush failed")

    def beat(self) -> Agent:
        engine_name, signature_version, engine_ok, engine_error = "", "", True, ""
        try:
            services.clamd_client().ping()
            engine_name, signature_version = services.engine_identity().get()
        except Exception as exc:
            engine_ok, engine_error = False, f"engine: {exc}"
        snapshot = STATS.snapshot()
        now = timezone.now()
        fields: dict[str, Any] = {
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "queues": self.queues,
            "engine": engine_name[:100],
            "signature_version": signature_version[:100],
            "signature_age": signature_age(now),
            "engine_ok": engine_ok,
            "scans_in_flight": snapshot["in_flight"],
            "scans_done": snapshot["done"],
            "stats": snapshot,
            "last_seen_at": now,
            "stopped_at": None,
        }
        error = engine_error or snapshot["last_error"]
        if error:
            fields["last_error"] = error[:2000]
            fields["last_error_at"] = now
        with self._write:
            if self._stop.is_set():
                raise HeartbeatStopped()
            agent, _ = Agent.objects.update_or_create(pk=self.agent_id, defaults=fields)
        return agent


# --- the fleet as the scheduler and the API see it ---------------------------------------------------


def lost_after() -> timedelta:
    return timedelta(seconds=settings.AGENT_LOST_SECONDS)


def current_agents(now: datetime | None = None) -> list[Agent]:
    """Agents not stopped, plus agents stopped within the last hour (so a crash loop is visible)."""
    now = now or timezone.now()
    recent = now - timedelta(hours=1)
    agents = Agent.objects.filter(last_seen_at__gte=now - timedelta(days=1))
    return [a for a in agents if a.stopped_at is None or a.stopped_at >= recent]


def forget_old_agents(now: datetime | None = None) -> int:
    now = now or timezone.now()
    deleted, _ = Agent.objects.filter(last_seen_at__lt=now - timedelta(days=7)).delete()
    return deleted


HOST_TROUBLES = ("engine.down", "signatures.stale")


def troubles(agent: Agent, now: datetime) -> dict[str, str]:
    """What is wrong with ``agent`` now: kind -> message."""
    found: dict[str, str] = {}
    if agent.stopped_at is not None:
        return found
    name = f"{agent.host}:{agent.pid}"
    if agent.status_at(now, lost_after()) == Agent.Status.LOST:
        found["agent.lost"] = (
            f"worker {name} has not sent a heartbeat since {agent.last_seen_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        return found  # what it said last is stale too
    if not agent.engine_ok:
        found["engine.down"] = f"the engine of worker {name} does not answer: {agent.last_error[:300]}"
    age = agent.signature_age
    if age is not None and age > settings.SIGNATURES_MAX_AGE:
        found["signatures.stale"] = (
            f"the signatures of worker {name} are {age // 3600} h old "
            f"(limit {settings.SIGNATURES_MAX_AGE // 3600} h)"
        )
    return found


def check_fleet(now: datetime | None = None) -> list[tuple[str, str]]:
    """Alert once per agent and trouble (once per host for its clamd's: an engine down, stale
    signatures); forget a trouble when it clears. Returns what was raised."""
    now = now or timezone.now()
    raised: list[tuple[str, str]] = []
    agents = [(agent, troubles(agent, now)) for agent in current_agents(now)]
    # clamd and its database belong to the host: its worker processes share one trouble, one alert.
    host_alerted = {
        (agent.host, kind)
        for agent, found in agents
        for kind in (agent.alerts or {})
        if kind in HOST_TROUBLES and kind in found
    }
    for agent, found in agents:
        previous = dict(agent.alerts or {})
        known = dict(previous)
        new = {kind: message for kind, message in found.items() if kind not in known}
        cleared = [kind for kind in known if kind not in found]
        if not new and not cleared:
            continue
        for kind in cleared:
            known.pop(kind)
        for kind in new:
            known[kind] = now.isoformat()
        # Conditional on the alerts read: of several schedulers (one per host) checking at once, one
        # claims the change and sends. A heartbeat in between rewrites other fields only.
        if Agent.objects.filter(pk=agent.pk, alerts=previous).update(alerts=known):
            for kind, message in new.items():
                if kind in HOST_TROUBLES:
                    if (agent.host, kind) in host_alerted:
                        continue
                    host_alerted.add((agent.host, kind))
                raised.append((kind, message))
    raised.extend(_signature_update_alerts(now))
    for kind, message in raised:
        log.warning("operational alert", extra={"kind": kind, "alert": message})
        ops_notifications.publish(kind, message)
    return raised


def _signature_update_alerts(now: datetime) -> list[tuple[str, str]]:
    """``signatures.rejected`` once per trouble and host: for a host whose last update run failed, unless a
    failure since its last good run was already notified (a mirror that stays unreachable, or the same
    rejected files, fail every interval: one alert, not one an interval)."""
    failed = (SignatureUpdate.Status.REJECTED, SignatureUpdate.Status.FAILED)
    good = (SignatureUpdate.Status.CURRENT, SignatureUpdate.Status.UPDATED)
    raised = []
    hosts = set(
        SignatureUpdate.objects.filter(started_at__gte=now - timedelta(days=2)).values_list("host", flat=True)
    )
    for host in sorted(hosts):
        runs = SignatureUpdate.objects.filter(host=host).order_by("-started_at")
        latest = runs.first()
        if latest is None or latest.status not in failed or latest.alerted_at is not None:
            continue
        last_good = runs.filter(status__in=good).values_list("started_at", flat=True).first()
        notified = runs.filter(status__in=failed, alerted_at__isnull=False)
        if last_good is not None:
            notified = notified.filter(started_at__gt=last_good)
        if notified.exists():
            continue
        if SignatureUpdate.objects.filter(pk=latest.pk, alerted_at__isnull=True).update(alerted_at=now):
            where = f" on {host}" if host else ""
            raised.append(
                ("signatures.rejected", f"signature update{where} {latest.status}: {latest.reason}")
            )
    return raised

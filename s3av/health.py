"""``/healthz`` (liveness) and ``/readyz`` (readiness: database, broker, clamd) for load balancers and
container platforms.

They probe by IP address, with whatever Host header they like, and often over plain HTTP to the pod:
``HealthCheckMiddleware`` runs first and answers exactly these two paths itself, before
SecurityMiddleware's HTTPS redirect and before anything reads the Host header (CommonMiddleware would
refuse an unknown host with 400). Nothing else is reachable this way: any other path goes through the
full stack and ALLOWED_HOSTS as before. The answers are small JSON with no details a stranger could use
(which check failed, not why; the why is logged). ``/metrics`` (scanning/fleet/metrics.py, the fleet's
view) is answered the same way, behind its bearer token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import dramatiq
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from scanning.fleet.metrics import metrics_view
from scanning.pipeline import services as scanning

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process runs and answers. Deliberately checks nothing else, so a database outage
    does not get every web process restarted."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": check_database, "broker": check_broker, "clamd": check_clamd}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure is "not ready", never a 500
            log.warning("readiness check failed", extra={"check": name, "error": repr(exc)[:500]})
            results[name] = "failed"
    failed = [name for name, value in results.items() if value != "ok"]
    body = {"status": "unavailable" if failed else "ok", "checks": results, "failed": failed}
    return JsonResponse(body, status=503 if failed else 200)


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_broker() -> None:
    broker = dramatiq.get_broker()
    if isinstance(broker, RedisBroker):
        broker.client.ping()
    elif isinstance(broker, RabbitmqBroker):
        # The broker's own connection for this thread (the one messages are sent on); a dead one is
        # dropped so the next probe, and the next send, open a new one.
        try:
            broker.connection.process_data_events(time_limit=0)
        except Exception:
            del broker.connection
            raise


def check_clamd() -> None:
    scanning.clamd_client(timeout=PROBE_TIMEOUT).ping()


# /metrics is here too: Prometheus scrapes by pod IP, and the path is guarded by its own bearer token.
PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": metrics_view,
}


class HealthCheckMiddleware:
    """First in MIDDLEWARE: answers /healthz and /readyz (GET, HEAD) whatever the Host header and scheme."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            response = probe(request)
            response["Cache-Control"] = "no-store"
            return response
        return self.get_response(request)

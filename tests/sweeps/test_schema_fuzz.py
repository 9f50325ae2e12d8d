"""Fuzz every operation of the published OpenAPI schema with schemathesis, through WSGI.

Every answer must be a non-5xx that conforms to the schema (status code, content type, body), data the
schema calls valid must be accepted, and data it calls invalid refused. The caller is an admin API key
that the fuzzer cannot revoke: an ``{id}`` in a path is mapped to a fresh object of that kind in the
caller's tenant (the isolation sweep's factories), so every route's own logic runs, not just its 404.

``S3AV_FUZZ_EXAMPLES`` sets the examples per operation (default small, so the suite stays quick); a
larger local run: ``S3AV_FUZZ_EXAMPLES=100 bash scripts/test.sh tests/sweeps/test_schema_fuzz.py`` (add
``S3AV_FUZZ_LOG=FILE`` to count the cases, ``S3AV_FUZZ_STRICT=1`` to compare the schema's constraints with
what the API accepts).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from typing import Any

import pytest
import schemathesis
from django.db import transaction
from django_scopes import scope
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks

from accounts.models import Role
from tests import factories
from tests.sweeps.test_isolation_sweep import OBJECT_FACTORIES

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("S3AV_FUZZ_EXAMPLES", "4"))


_getaddrinfo = socket.getaddrinfo


def _loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
    # The local S3 endpoint and clamd are addresses on this machine; any made-up name stays unresolved.
    name = host.decode() if isinstance(host, bytes) else str(host)
    try:
        if ipaddress.ip_address(name.strip("[]")).is_loopback:
            return _getaddrinfo(host, *args, **kwargs)
    except ValueError:
        if name == "localhost":
            return _getaddrinfo(host, *args, **kwargs)
    raise socket.gaierror(socket.EAI_NONAME, "the fuzz test resolves no names")


@pytest.fixture
def fuzz_tenant(make_tenant: Any, aws_settings: Any, monkeypatch: Any) -> Any:
    # Any AWS call the fuzzer reaches goes to the local moto endpoint (aws_settings), and a webhook URL
    # it makes up is never resolved or called: nothing leaves this machine.
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only)
    return make_tenant("Fuzzed Org")


@pytest.fixture
def admin_secret(fuzz_tenant: Any) -> str:
    with scope(tenant=fuzz_tenant):
        _, secret = factories.make_api_key(fuzz_tenant, Role.ADMIN, "fuzzer")
    return secret


@pytest.fixture
def api_schema(fuzz_tenant: Any) -> Any:
    from django.core import signals
    from django.db import close_old_connections

    from s3av.wsgi import application

    # As Django's test client does: a request must not close the test's connection (and transaction).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/v1/schema/", application)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
if os.environ.get("S3AV_FUZZ_STRICT"):
    # Also: data the schema calls valid is accepted, and data it calls invalid refused. Off in the
    # suite: rules the schema cannot state (a bucket id of this tenant, a cron that fires, an SNS ARN
    # in the linked account) make schema-valid data a 400 by design; run it to compare the two.
    CHECKS += [checks.positive_data_acceptance, checks.negative_data_rejection]


def _account(tenant: Any) -> str:
    from tests.factories import make_account

    # Hypothesis seeds `random` the same for every example: take the account id from uuid4 instead.
    return str(make_account(tenant, account_id=f"{uuid.uuid4().int % 10**12:012d}").pk)


FACTORIES = {**OBJECT_FACTORIES, "accounts": _account}


def _real_object_id(tenant: Any, path: str) -> str:
    kind = path.removeprefix("/api/v1/").split("/")[0]
    with scope(tenant=tenant):
        return FACTORIES[kind](tenant)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_its_schema(case: Any, fuzz_tenant: Any, admin_secret: str) -> None:
    # Each example starts from the same state and leaves nothing behind (nor a broken transaction).
    with transaction.atomic():
        try:
            if "id" in (case.path_parameters or {}):
                case.path_parameters["id"] = _real_object_id(fuzz_tenant, case.operation.path)
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {admin_secret}"}, checks=CHECKS
            )
            if log := os.environ.get("S3AV_FUZZ_LOG"):  # one line a case, to count them
                with open(log, "a") as out:
                    out.write(f"{case.method} {case.operation.path} {response.status_code}\n")
        finally:
            transaction.set_rollback(True)

"""Walk every route in the OpenAPI schema as an outsider and as a viewer.

An outsider (another tenant's admin key) must get 404 for every object of the
owner's tenant, on every method. A viewer must get 403 on every write. A new
route with an ``{id}`` must register how to make an object of its kind in
OBJECT_FACTORIES, or this test fails: no endpoint escapes the sweep.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django_scopes import scope

from accounts import services
from accounts.models import Membership, Role, Tenant
from tests import factories

pytestmark = pytest.mark.django_db

WRITE_METHODS = {"post", "put", "patch", "delete"}


def _member(tenant: Tenant) -> str:
    user_email = f"sweep-{uuid.uuid4().hex[:8]}@example.com"
    return str(services.add_member(tenant, services.Actor.system("test"), user_email, Role.VIEWER).pk)


def _api_key(tenant: Tenant) -> str:
    key, _ = factories.make_api_key(tenant, Role.VIEWER, "sweep")
    return str(key.pk)


def _audit_event(tenant: Tenant) -> str:
    return str(services.record(tenant, services.Actor.system("test"), "sweep.test").pk)


def _sweep_bucket(tenant: Tenant) -> Any:
    from linked_accounts.models import AwsAccount

    account, _ = AwsAccount.objects.get_or_create(
        tenant=tenant, account_id="210987654321", defaults={"role_arn": "arn:aws:iam::210987654321:role/s3av"}
    )
    return factories.make_bucket_row(tenant, account, f"sweep-{uuid.uuid4().hex[:12]}")


def _result(tenant: Tenant) -> str:
    bucket = _sweep_bucket(tenant)
    result = factories.make_result(
        tenant, bucket, "k", "Infected", quarantine_bucket="q", quarantine_key="quarantine/k"
    )
    return str(result.pk)


def _policy(tenant: Tenant) -> str:
    return str(factories.make_policy(tenant, f"sweep {uuid.uuid4().hex[:8]}").pk)


def _aws_account(tenant: Tenant) -> str:
    return str(factories.make_account(tenant).pk)


def _organization(tenant: Tenant) -> str:
    from linked_accounts.models import AwsOrganization

    return str(AwsOrganization.objects.create(tenant=tenant, name="sweep").pk)


def _bucket(tenant: Tenant) -> str:
    return str(_sweep_bucket(tenant).pk)


def _job(tenant: Tenant) -> str:
    bucket = _sweep_bucket(tenant)
    return str(factories.make_job(tenant, bucket, status="scanning").pk)


def _schedule(tenant: Tenant) -> str:
    from scanning.models import Schedule

    bucket = _sweep_bucket(tenant)
    return str(Schedule.objects.create(tenant=tenant, bucket=bucket, cron="0 * * * *").pk)


def _channel(tenant: Tenant) -> str:
    channel = factories.make_channel(
        tenant, "sweep", kind="webhook", target="https://hooks.example.com/s3av", secret="s"
    )
    return str(channel.pk)


# Path prefix under /api/v1/ -> function making an object of that kind in a tenant.
OBJECT_FACTORIES: dict[str, Callable[[Tenant], str]] = {
    "members": _member,
    "api-keys": _api_key,
    "audit-events": _audit_event,
    "results": _result,
    "policies": _policy,
    "jobs": _job,
    "schedules": _schedule,
    "accounts": _aws_account,
    "organizations": _organization,
    "buckets": _bucket,
    "channels": _channel,
}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (path, method)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


@pytest.fixture
def schema(key_client, tenant) -> dict[str, Any]:
    response = key_client(tenant, Role.VIEWER).get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    import json

    return json.loads(response.content)


def _fill(path: str, object_id: str) -> str:
    return re.sub(r"\{[^}]+\}", object_id, path)


def test_every_object_route_answers_404_to_another_tenant(schema, tenant, outsider_tenant, key_client):
    outsider = key_client(outsider_tenant, Role.ADMIN)
    checked = 0
    for path, method in _operations(schema):
        if "{" not in path:
            continue
        kind = path.removeprefix("/api/v1/").split("/")[0]
        assert kind in OBJECT_FACTORIES, f"{path} has no factory in OBJECT_FACTORIES; add one"
        with scope(tenant=tenant):
            object_id = OBJECT_FACTORIES[kind](tenant)
        response = getattr(outsider, method)(_fill(path, object_id), {}, format="json")
        assert response.status_code == 404, f"{method.upper()} {path}: {response.status_code}"
        checked += 1
    assert checked >= 5


def test_every_write_answers_403_to_a_viewer(schema, tenant, key_client):
    viewer = key_client(tenant, Role.VIEWER)
    checked = 0
    for path, method in _operations(schema):
        if method not in WRITE_METHODS:
            continue
        object_id = "00000000-0000-0000-0000-000000000000"
        if "{" in path:
            kind = path.removeprefix("/api/v1/").split("/")[0]
            with scope(tenant=tenant):
                object_id = OBJECT_FACTORIES[kind](tenant)
        response = getattr(viewer, method)(_fill(path, object_id), {}, format="json")
        assert response.status_code == 403, f"{method.upper()} {path}: {response.status_code}"
        checked += 1
    assert checked >= 5


def test_every_route_answers_401_without_credentials(schema, client):
    for path, method in _operations(schema):
        response = getattr(client, method)(_fill(path, "00000000-0000-0000-0000-000000000000"))
        assert response.status_code == 401, f"{method.upper()} {path}: {response.status_code}"


def test_the_membership_factory_uses_fresh_emails(tenant):
    with scope(tenant=tenant):
        _member(tenant)
        assert Membership.objects.filter(tenant=tenant).count() == 2


def test_the_tenant_wide_routes_are_swept(schema):
    # No {id}: the outsider sweep skips them, the viewer and anonymous sweeps must not.
    operations = set(_operations(schema))
    for method in ("get", "put", "delete"):
        assert ("/api/v1/sso", method) in operations

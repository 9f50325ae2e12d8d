"""Shared fixtures: factories that return functions, and API clients per role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django_scopes import scope, scopes_disabled
from rest_framework.test import APIClient

from accounts import services
from accounts.models import Membership, Role, Tenant, User
from linked_accounts import aws

pytest_plugins = [
    "tests.fixtures.browser",
    "tests.fixtures.s3server",
    "tests.fixtures.scanning",
    "tests.fixtures.worker",
]


@pytest.fixture(autouse=True)
def _forget_aws_sessions() -> Any:
    """Each test starts with no cached role credentials or boto3 clients: a test's accounts are
    its own, and clients cached for every test's accounts held gigabytes by the end of a run."""
    yield
    aws.forget_all()


@pytest.fixture
def make_tenant(db: Any) -> Callable[..., Tenant]:
    counter = iter(range(1, 10_000))

    def make(name: str | None = None, **fields: Any) -> Tenant:
        n = next(counter)
        tenant, _, _ = services.create_tenant(
            services.Actor.system("test"),
            name or f"Tenant {n}",
            f"owner{n}-{Tenant.objects.count()}@example.com",
        )
        for field, value in fields.items():
            setattr(tenant, field, value)
        if fields:
            tenant.save()
        return tenant

    return make


@pytest.fixture
def make_user(db: Any) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(
        email: str | None = None, tenant: Tenant | None = None, role: str = Role.VIEWER, **extra: Any
    ) -> User:
        user = User.objects.create_user(
            email or f"user{next(counter)}-{User.objects.count()}@example.com", **extra
        )
        if tenant is not None:
            with scopes_disabled():
                Membership.objects.create(tenant=tenant, user=user, role=role)
        return user

    return make


@pytest.fixture
def key_client(db: Any) -> Callable[..., APIClient]:
    """An API client authenticated with a fresh API key of the given role."""

    def make(tenant: Tenant, role: str = Role.ADMIN) -> APIClient:
        with scope(tenant=tenant):
            key, secret = services.create_api_key(tenant, services.Actor.system("test"), f"{role} key", role)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        client.api_key = key  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def session_client(db: Any, make_user: Callable[..., User]) -> Callable[..., APIClient]:
    """An API client signed in as a new member of the tenant (portal session)."""

    def make(tenant: Tenant, role: str = Role.ADMIN) -> APIClient:
        user = make_user(tenant=tenant, role=role)
        client = APIClient()
        client.force_login(user)
        client.user = user  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant("Owner Org")


@pytest.fixture
def outsider_tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant("Outsider Org")

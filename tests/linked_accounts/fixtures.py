"""Fixtures for tests that talk to the moto endpoint through linked accounts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django_scopes import scope

from linked_accounts import aws
from tests.linked_accounts.factories import MOTO_ACCOUNT, MOTO_ROLE, make_account


@pytest.fixture
def aws_endpoint(settings: Any, s3_endpoint: str) -> Iterator[str]:
    """Point s3av at the moto server; moto accepts any AssumeRole, so the refusal check is off here."""
    settings.AWS_ENDPOINT_URL = s3_endpoint
    settings.AWS_REGION = "us-east-1"
    settings.AWS_REFUSE_ROLE_WITHOUT_EXTERNAL_ID = False
    aws._cache.clear()
    yield s3_endpoint
    aws._cache.clear()


@pytest.fixture
def moto_account(tenant: Any, aws_endpoint: str) -> Any:
    """A connected linked account whose role lands in moto's default account."""
    with scope(tenant=tenant):
        return make_account(tenant, account_id=MOTO_ACCOUNT, role_arn=MOTO_ROLE)

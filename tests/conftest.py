"""Registers the shared fixtures, one plugin module each under tests/fixtures/ (see tests/README.md)."""

from __future__ import annotations

from typing import Any

import pytest

from linked_accounts import aws

pytest_plugins = [
    "tests.fixtures.accounts",
    "tests.fixtures.broker",
    "tests.fixtures.browser",
    "tests.fixtures.linked_accounts",
    "tests.fixtures.s3server",
    "tests.fixtures.scanning",
    "tests.fixtures.webhooks",
    "tests.fixtures.worker",
]


@pytest.fixture(autouse=True)
def _forget_aws_sessions() -> Any:
    """Each test starts with no cached role credentials or boto3 clients: a test's accounts are
    its own, and clients cached for every test's accounts held gigabytes by the end of a run."""
    yield
    aws.forget_all()

"""Fixtures of the scanning tests, shared by their modules."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest
from botocore.stub import Stubber

from linked_accounts import aws
from linked_accounts.aws import make_client
from tests.scanning.jobkit import empty_broker, s3_calls

__all__ = ["empty_broker", "lose_role", "s3_calls"]


@pytest.fixture
def lose_role(monkeypatch: Any) -> Callable[[], None]:
    """Call it to make every AssumeRole from then on fail as STS does for a role that no longer trusts
    s3av (moto accepts any AssumeRole): an AccessDenied ClientError from a stubbed STS client."""

    def lose() -> None:
        sts = make_client("sts", region="us-east-1", credentials={"AccessKeyId": "x", "SecretAccessKey": "y"})
        stubber = Stubber(sts)
        for _ in range(20):
            stubber.add_client_error(
                "assume_role",
                service_error_code="AccessDenied",
                service_message="User is not authorized to perform: sts:AssumeRole",
                http_status_code=403,
            )
        stubber.activate()
        monkeypatch.setattr(aws, "service_client", lambda service, region=None: sts)
        # Forget the credentials and clients already cached for the role.
        monkeypatch.setattr(aws, "_cache", {})
        monkeypatch.setattr(aws, "_clients", OrderedDict())

    return lose

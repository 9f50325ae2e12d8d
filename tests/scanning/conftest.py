"""Fixtures of the bucket-scan tests (issue 5), shared by their modules."""

from tests.scanning.jobkit import empty_broker, s3_calls

__all__ = ["empty_broker", "s3_calls"]

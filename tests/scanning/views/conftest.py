"""Fixtures local to the portal pages' tests: the query count of a page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext


@pytest.fixture
def queries_of() -> Callable[..., int]:
    """``queries_of(client, url)``: how many queries one GET of the page costs."""

    def count(client: Any, url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, response.status_code
        return len(captured)

    return count

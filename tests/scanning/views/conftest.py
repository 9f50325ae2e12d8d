"""Fixtures of the portal pages' tests: rows made in a tenant's scope, and the query count of a page."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope

from accounts.models import Tenant
from tests.linked_accounts.factories import make_account, make_bucket_row
from tests.linked_accounts.fixtures import aws_endpoint  # noqa: F401  (the local STS for the browser tests)


@pytest.fixture
def bucket_row(db: Any) -> Callable[..., Any]:
    """``bucket_row(tenant, **fields)``: a Bucket row of a connected account (no S3 behind it)."""

    def make(tenant: Tenant, account: Any = None, **fields: Any) -> Any:
        with scope(tenant=tenant):
            return make_bucket_row(tenant, account or make_account(tenant), **fields)

    return make


@pytest.fixture
def queries_of() -> Callable[..., int]:
    """``queries_of(client, url)``: how many queries one GET of the page costs."""

    def count(client: Any, url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, response.status_code
        return len(captured)

    return count


class WebhookReceiver:
    """A webhook receiver on 127.0.0.1 that records each POST and answers 200 (or ``status``)."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/s3av?team=sec"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver(settings: Any) -> Iterator[WebhookReceiver]:
    """A loopback receiver; plain-http loopback webhooks are allowed for the test (the SSRF guard's
    switch for tests and the demo, S3AV_ALLOW_HTTP_WEBHOOKS)."""
    settings.ALLOW_HTTP_WEBHOOKS = True
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()

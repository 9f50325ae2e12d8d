"""Helpers for bucket-scan tests: run the stub broker's messages in the test's own thread and
transaction, and count S3 calls the code under test makes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import dramatiq
import pytest
from dramatiq import Message

from linked_accounts import aws
from scanning.pipeline import services


def drain(queues: tuple[str, ...] = ("listing", "listing.DQ", "scans"), limit: int = 100_000) -> int:
    """Run every queued message (and what they enqueue) until the queues are empty; returns how many."""
    broker = dramatiq.get_broker()
    ran = 0
    while ran < limit:
        progressed = False
        for name in queues:
            queue = broker.queues.get(name)  # type: ignore[attr-defined]
            while queue is not None and not queue.empty():
                message = Message.decode(queue.get_nowait())
                broker.get_actor(message.actor_name).fn(*message.args, **message.kwargs)
                ran += 1
                progressed = True
        if not progressed:
            return ran
    raise AssertionError("the queues never emptied")


def queued(name: str) -> list[Message[Any]]:
    broker = dramatiq.get_broker()
    queue = broker.queues.get(name)  # type: ignore[attr-defined]
    return [Message.decode(item) for item in list(queue.queue)] if queue is not None else []


@pytest.fixture
def empty_broker() -> Any:
    broker = dramatiq.get_broker()
    broker.flush_all()
    yield broker
    broker.flush_all()


# The counter of the running test. linked_accounts.aws caches clients across tests, so the hook is
# registered once per client (unique_id) and looks up the current counter when it fires.
_current: list[Counter[str]] = []


def _count(model: Any, **kwargs: Any) -> None:
    if _current:
        _current[-1][model.name] += 1


@pytest.fixture
def s3_calls(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Counts S3 operations (``GetObject``, ``ListObjectsV2``...) made by the scan pipeline and jobs."""
    calls: Counter[str] = Counter()
    original = aws.client_for

    def counting_client_for(account: Any, service: str, region: str | None = None) -> Any:
        client = original(account, service, region)
        client.meta.events.register("before-call.s3.*", _count, unique_id="s3av-test-count")
        return client

    monkeypatch.setattr(services, "client_for", counting_client_for)
    monkeypatch.setattr(aws, "client_for", counting_client_for)
    _current.append(calls)
    yield calls
    _current.remove(calls)

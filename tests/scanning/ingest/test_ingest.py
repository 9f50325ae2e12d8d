import json
import threading
import time

import pytest
from django.core.management import call_command
from django_scopes import scope

from accounts.services import Actor
from scanning.buckets import protection
from scanning.ingest import events as ingest
from scanning.pipeline import services as scan_services
from tests.factories import make_bucket_row, make_policy
from tests.fixtures.s3server import make_test_client

pytestmark = pytest.mark.django_db


ACTOR = Actor.system("test")


def _event(key, bucket="b", name="ObjectCreated:Put", **obj):
    return {
        "eventSource": "aws:s3",
        "eventName": name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 5, "eTag": "abc", **obj}},
    }


def _body(*records):
    return json.dumps({"Records": list(records)})


# --- parsing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "key"),
    [
        ("my+file.txt", "my file.txt"),
        ("a%2Bb.txt", "a+b.txt"),
        ("dir/caf%C3%A9+%E2%9C%93.pdf", "dir/café ✓.pdf"),
        ("dir%2Fsub%2Fx", "dir/sub/x"),
        ("100%25.txt", "100%.txt"),
    ],
)
def test_it_decodes_keys(encoded, key):
    (event,) = ingest.parse_message(_body(_event(encoded)))
    assert event.key == key


def test_it_reads_version_etag_size_and_sequencer():
    (event,) = ingest.parse_message(_body(_event("k", versionId="v1", sequencer="0055")))
    assert (event.bucket, event.version_id, event.etag, event.size, event.sequencer) == (
        "b",
        "v1",
        "abc",
        5,
        "0055",
    )


def test_it_ignores_the_test_event_and_other_event_types():
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"})
    assert ingest.parse_message(test_event) == []
    assert ingest.parse_message(_body(_event("k", name="ObjectRemoved:Delete"))) == []


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1]",
        json.dumps({"hello": 1}),
        _body({"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}),
        _body({"eventSource": "aws:sns"}),
    ],
)
def test_it_calls_anything_else_poison(body):
    with pytest.raises(ingest.PoisonMessage):
        ingest.parse_message(body)


# --- against the endpoint ----------------------------------------------------------------------------


@pytest.fixture
def sqs(s3_endpoint):
    return make_test_client(s3_endpoint, "sqs")


@pytest.fixture
def protected(tenant, moto_account, make_bucket):
    name = make_bucket()
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, moto_account, name)
        protection.protect_bucket(tenant, ACTOR, bucket)
    yield bucket
    with scope(tenant=tenant):
        protection.remove_protection(tenant, bucket)


@pytest.fixture
def requested(monkeypatch):
    calls = []

    def fake_request_scan(tenant, actor, bucket, key, **kwargs):
        calls.append({"tenant": tenant.pk, "bucket": bucket.pk, "key": key, **kwargs})
        return "dedupe"

    monkeypatch.setattr(scan_services, "request_scan", fake_request_scan)
    return calls


def _counts(sqs, url):
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _drain_until(predicate, attempts=5):
    stats = []
    for _ in range(attempts):
        stats.append(ingest.drain_once(wait_seconds=1))
        if predicate():
            break
    return stats


def test_an_upload_becomes_a_scan_request_and_the_message_is_deleted(
    tenant, protected, s3_client, sqs, requested
):
    s3_client.put_object(Bucket=protected.name, Key="reports/q1 (final)+café.txt", Body=b"hello")
    _drain_until(lambda: requested)
    assert [c["key"] for c in requested] == ["reports/q1 (final)+café.txt"]
    (call,) = requested
    assert call["bucket"] == protected.pk and call["tenant"] == tenant.pk
    assert call["etag"] and call["size"] == 5 and call["trigger"] == "event"
    assert _counts(sqs, protected.protection["queue_url"]) == (0, 0)  # test event and upload both deleted


# linked_accounts.aws caches clients across tests: the hook is registered once per client and counts
# into the running test's counter.
_sqs_counters: list = []


def _count_sqs_call(model, **kwargs):
    if _sqs_counters:
        _sqs_counters[-1][model.name] += 1


@pytest.fixture
def sqs_calls(monkeypatch):
    """The SQS operations ingest sends, counted on the clients it gets from linked_accounts.aws."""
    from collections import Counter

    from linked_accounts import aws

    calls = Counter()
    original = aws.client_for

    def counting(account, service, region=None):
        client = original(account, service, region)
        client.meta.events.register("before-call.sqs.*", _count_sqs_call, unique_id="ingest-test-calls")
        return client

    monkeypatch.setattr(aws, "client_for", counting)
    _sqs_counters.append(calls)
    yield calls
    _sqs_counters.remove(calls)


def test_the_messages_of_one_receive_are_deleted_in_one_call(protected, sqs, requested, sqs_calls):
    url = protected.protection["queue_url"]
    _drain_until(lambda: _counts(sqs, url) == (0, 0))  # the test event
    for n in range(7):
        sqs.send_message(QueueUrl=url, MessageBody=_body(_event(f"k{n}", bucket=protected.name)))
    sqs_calls.clear()

    stats = _drain_until(lambda: len(requested) == 7)

    receives_with_messages = sum(1 for s in stats if s.received)
    assert sorted(c["key"] for c in requested) == [f"k{n}" for n in range(7)]
    assert sum(s.deleted for s in stats) == 7
    assert sqs_calls["DeleteMessage"] == 0
    assert sqs_calls["DeleteMessageBatch"] == receives_with_messages
    assert _counts(sqs, url) == (0, 0)


def test_a_message_whose_delete_failed_stays_in_the_queue(protected, sqs, requested):
    url = protected.protection["queue_url"]
    _drain_until(lambda: _counts(sqs, url) == (0, 0))  # the test event
    for key in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=_body(_event(key, bucket=protected.name)))
    messages = []
    while len(messages) < 3:
        messages += ingest.receive(protected, wait_seconds=1)
    # SQS refuses one entry of the batch (here: a receipt handle it does not know).
    messages[1] = {**messages[1], "ReceiptHandle": "not-a-receipt-handle"}
    stats = ingest.Stats()

    ingest.handle_messages(protected, messages, stats)

    assert sorted(c["key"] for c in requested) == ["a", "b", "c"]  # every scan was requested
    assert stats.deleted == 2
    assert len(stats.errors) == 1 and "delete failed" in stats.errors[0]
    visible, in_flight = _counts(sqs, url)
    assert visible + in_flight == 1  # it comes back; its scan collapses onto the one just requested


def test_a_poison_message_does_not_stop_the_loop(protected, s3_client, sqs, requested):
    url = protected.protection["queue_url"]
    sqs.send_message(QueueUrl=url, MessageBody="this is not an S3 event")
    sqs.send_message(QueueUrl=url, MessageBody=_body(_event("x", bucket="someone-elses-bucket")))
    s3_client.put_object(Bucket=protected.name, Key="good.txt", Body=b"ok")
    stats = _drain_until(lambda: requested)
    assert [c["key"] for c in requested] == ["good.txt"]
    assert sum(s.poison for s in stats) == 2
    visible, in_flight = _counts(sqs, url)
    assert visible + in_flight == 2  # left for the dead-letter policy, not deleted


def test_a_message_stays_when_its_scan_cannot_be_enqueued(protected, sqs, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(scan_services, "request_scan", broken)
    url = protected.protection["queue_url"]
    sqs.send_message(QueueUrl=url, MessageBody=_body(_event("k", bucket=protected.name)))
    stats = _drain_until(lambda: False, attempts=2)
    assert sum(s.failed for s in stats) == 1 and sum(s.deleted for s in stats) <= 1  # the test event only
    visible, in_flight = _counts(sqs, url)
    assert visible + in_flight == 1


def test_the_real_request_scan_sends_one_message_per_record(
    protected, sqs, django_capture_on_commit_callbacks
):
    from scanning.pipeline.services import scan_object

    broker = scan_object.broker
    broker.flush_all()
    body = _body(_event("a+b", bucket=protected.name, versionId="v1"), _event("c", bucket=protected.name))
    sqs.send_message(QueueUrl=protected.protection["queue_url"], MessageBody=body)
    enqueued = 0
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            enqueued += ingest.drain_once(wait_seconds=1).enqueued
            if enqueued >= 2:
                break
    assert enqueued == 2
    keys = sorted(json.loads(m)["args"][2] for m in list(broker.queues["scans"].queue))
    assert keys == ["a b", "c"]
    broker.flush_all()


def test_each_scan_request_carries_its_events_sequencer(protected, sqs, django_capture_on_commit_callbacks):
    # Two PUTs of the same bytes (one key, one ETag, maybe within one second) carry their own sequencer.
    from scanning.pipeline.services import scan_object

    broker = scan_object.broker
    broker.flush_all()
    first = _event("k", bucket=protected.name, sequencer="0055AED6DCD90281E5")
    again = _event("k", bucket=protected.name, sequencer="0055AED6DCD90281E6")
    url = protected.protection["queue_url"]
    sqs.send_message(QueueUrl=url, MessageBody=_body(first, again))
    sqs.send_message(QueueUrl=url, MessageBody=_body(first))  # S3 delivered the first event twice
    enqueued = 0
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            enqueued += ingest.drain_once(wait_seconds=1).enqueued
            if enqueued >= 3:
                break
    messages = [json.loads(m) for m in list(broker.queues["scans"].queue)]
    broker.flush_all()
    # One dedupe key (one object pin); the sequencer travels with each so the scan can tell them apart.
    assert len({m["kwargs"]["dedupe_key"] for m in messages}) == 1
    assert sorted(m["kwargs"]["sequencer"] for m in messages) == [
        "0055AED6DCD90281E5",
        "0055AED6DCD90281E5",
        "0055AED6DCD90281E6",
    ]


def test_the_command_polls_once(protected, s3_client, requested):
    s3_client.put_object(Bucket=protected.name, Key="cmd.txt", Body=b"x")
    for _ in range(5):
        call_command("ingest_events", "--once", "--wait", "1")
        if requested:
            break
    assert [c["key"] for c in requested] == ["cmd.txt"]


def test_the_loop_picks_up_new_uploads_and_stops_when_asked(protected, s3_client, requested, monkeypatch):
    # The test's database connection lives on this thread; the loop runs here too, stopped from a timer.
    stop = threading.Event()
    s3_client.put_object(Bucket=protected.name, Key="loop.txt", Body=b"x")

    def on_pass(stats):
        if requested:
            stop.set()

    timer = threading.Timer(20, stop.set)
    timer.start()
    started = time.monotonic()
    try:
        total = ingest.run(stop, wait_seconds=1, refresh_seconds=0.5, on_pass=on_pass)
    finally:
        timer.cancel()
    assert [c["key"] for c in requested] == ["loop.txt"]
    assert total.enqueued == 1
    assert time.monotonic() - started < 15


def test_unprotected_and_suspended_tenants_buckets_are_not_polled(tenant, protected):
    assert protected.pk in {b.pk for b in ingest.active_buckets()}
    tenant.status = "suspended"
    tenant.save(update_fields=["status"])
    assert protected.pk not in {b.pk for b in ingest.active_buckets()}


def test_an_uploaded_eicar_is_found_through_the_event_path(
    tenant, key_client, moto_account, make_bucket, s3_client, aws_settings, django_capture_on_commit_callbacks
):
    """Protect through the API, upload, ingest, run the scan message: Infected within one pass."""
    from dramatiq import Message

    from accounts.models import Role
    from scanning.models import ScanResult, Verdict
    from scanning.pipeline.services import scan_object
    from tests.fixtures.scanning import EICAR

    name = make_bucket()
    bucket = make_bucket_row(tenant, moto_account, name)
    assert key_client(tenant, Role.OPERATOR).post(f"/api/v1/buckets/{bucket.pk}/protect").status_code == 200
    broker = scan_object.broker
    broker.flush_all()
    s3_client.put_object(Bucket=name, Key="upload/eicar test.com", Body=EICAR)
    enqueued = 0
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            enqueued += ingest.drain_once(wait_seconds=1).enqueued
            if enqueued:
                break
    assert enqueued == 1
    (raw,) = list(broker.queues["scans"].queue)
    message = Message.decode(raw)
    broker.flush_all()
    scan_object(*message.args, **message.kwargs)
    with scope(tenant=tenant):
        result = ScanResult.objects.get(tenant=tenant, bucket=bucket, key="upload/eicar test.com")
    assert result.verdict == Verdict.INFECTED
    tags = {
        t["Key"]: t["Value"]
        for t in s3_client.get_object_tagging(Bucket=name, Key="upload/eicar test.com")["TagSet"]
    }
    assert tags["scan-result"] == "Infected"


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_the_event_path_deletes_each_upload_of_malware_for_good(
    tenant, moto_account, make_bucket, s3_client, aws_settings, django_capture_on_commit_callbacks, versioned
):
    """moto's events name no version and no sequencer: every upload still ends pinned and deleted."""
    from dramatiq import Message

    from scanning.pipeline.services import scan_object
    from tests.fixtures.scanning import EICAR, assert_gone_for_good, next_second

    name = make_bucket(versioned=versioned)
    with scope(tenant=tenant):
        policy = make_policy(tenant, name="delete", on_infected="delete")
        bucket = make_bucket_row(tenant, moto_account, name, policy=policy)
        protection.protect_bucket(tenant, ACTOR, bucket)
    broker = scan_object.broker
    try:
        for _ in range(2):  # the same bytes, uploaded again after s3av deleted them
            broker.flush_all()
            version = s3_client.put_object(Bucket=name, Key="drop/evil.com", Body=EICAR).get("VersionId")
            enqueued = 0
            with django_capture_on_commit_callbacks(execute=True):
                for _ in range(5):
                    enqueued += ingest.drain_once(wait_seconds=1).enqueued
                    if enqueued:
                        break
            (raw,) = list(broker.queues["scans"].queue)
            message = Message.decode(raw)
            assert message.kwargs["version_id"] is None
            scan_object(*message.args, **message.kwargs)
            assert_gone_for_good(s3_client, name, "drop/evil.com", version)
            next_second()
    finally:
        broker.flush_all()
        with scope(tenant=tenant):
            protection.remove_protection(tenant, bucket)

import json

import pytest
from django_scopes import scope

from accounts.models import AuditEvent
from accounts.services import Actor, ServiceError
from linked_accounts import aws
from linked_accounts import services as account_services
from scanning.buckets import protection, read_gate
from tests.factories import make_bucket_row, make_policy
from tests.fixtures.s3server import make_test_client

pytestmark = pytest.mark.django_db


ACTOR = Actor.system("test")


@pytest.fixture
def sqs(s3_endpoint):
    return make_test_client(s3_endpoint, "sqs")


@pytest.fixture
def customer_queue(sqs):
    """A queue of the customer's own, with its notification already on the bucket."""
    created = []

    def make(s3_client, bucket):
        url = sqs.create_queue(QueueName=f"customer-{bucket}")["QueueUrl"]
        created.append(url)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        config = {
            "QueueConfigurations": [
                {"Id": "customer-deletes", "QueueArn": arn, "Events": ["s3:ObjectRemoved:*"]}
            ]
        }
        s3_client.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
        return url, config

    yield make
    for url in created:
        sqs.delete_queue(QueueUrl=url)


def _config(s3_client, bucket):
    config = s3_client.get_bucket_notification_configuration(Bucket=bucket)
    config.pop("ResponseMetadata")
    return config


def _queue_exists(sqs, url):
    return url in sqs.list_queues(QueueNamePrefix=url.rsplit("/", 1)[1]).get("QueueUrls", [])


def _drain(sqs, url, wait=2):
    bodies = []
    for _ in range(3):
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get(
            "Messages", []
        ):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if any("Records" in b for b in bodies):
            break
    return bodies


def test_it_protects_a_bucket_and_keeps_the_customers_notification(
    tenant, moto_account, s3_client, sqs, make_bucket, customer_queue
):
    name = make_bucket()
    _, customer = customer_queue(s3_client, name)
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, moto_account, name)
        protection.protect_bucket(tenant, ACTOR, bucket)
        bucket.refresh_from_db()
        assert bucket.protected
        state = bucket.protection
        assert state["notification_id"] == f"s3av-{bucket.pk}"

        config = _config(s3_client, name)
        ids = [c["Id"] for c in config["QueueConfigurations"]]
        assert ids == ["customer-deletes", f"s3av-{bucket.pk}"]
        assert config["QueueConfigurations"][0] == customer["QueueConfigurations"][0]

        policy = json.loads(
            sqs.get_queue_attributes(QueueUrl=state["queue_url"], AttributeNames=["Policy"])["Attributes"][
                "Policy"
            ]
        )
        (allow,) = policy["Statement"]
        assert allow["Condition"]["ArnEquals"]["aws:SourceArn"] == f"arn:aws:s3:::{name}"
        assert allow["Condition"]["StringEquals"]["aws:SourceAccount"] == moto_account.account_id
        redrive = json.loads(
            sqs.get_queue_attributes(QueueUrl=state["queue_url"], AttributeNames=["RedrivePolicy"])[
                "Attributes"
            ]["RedrivePolicy"]
        )
        assert redrive["deadLetterTargetArn"].endswith("-dlq")

        # The endpoint delivers the upload's event to s3av's queue.
        s3_client.put_object(Bucket=name, Key="new file.txt", Body=b"hello")
        records = [r for b in _drain(sqs, state["queue_url"]) for r in b.get("Records", [])]
        assert [r["s3"]["object"]["key"] for r in records] == ["new+file.txt"]

        protection.unprotect_bucket(tenant, ACTOR, bucket)
        bucket.refresh_from_db()
        assert not bucket.protected and bucket.protection == {}
        assert _config(s3_client, name) == customer
        assert not _queue_exists(sqs, state["queue_url"])
        assert not _queue_exists(sqs, state["dlq_url"])
        actions = set(AuditEvent.objects.filter(tenant=tenant).values_list("action", flat=True))
        assert {"bucket.protect", "bucket.unprotect"} <= actions


def test_protecting_twice_adds_one_notification(tenant, moto_account, s3_client, make_bucket):
    name = make_bucket()
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, moto_account, name)
        protection.protect_bucket(tenant, ACTOR, bucket)
        protection.protect_bucket(tenant, ACTOR, bucket)
        assert len(_config(s3_client, name)["QueueConfigurations"]) == 1
        protection.unprotect_bucket(tenant, ACTOR, bucket)
        assert _config(s3_client, name) == {}


def test_a_failed_protect_leaves_no_queue_behind(
    tenant, moto_account, s3_client, sqs, make_bucket, monkeypatch
):
    name = make_bucket()
    real_client_for = aws.client_for

    def client_for(account, service, region=None):
        client = real_client_for(account, service, region)
        if service == "s3":
            from botocore.exceptions import ClientError

            def refuse(**kwargs):
                raise ClientError(
                    {"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutBucketNotificationConfiguration"
                )

            client.put_bucket_notification_configuration = refuse
        return client

    monkeypatch.setattr(aws, "client_for", client_for)
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, moto_account, name)
        with pytest.raises(ServiceError, match="lacks a permission"):
            protection.protect_bucket(tenant, ACTOR, bucket)
        bucket.refresh_from_db()
        assert not bucket.protected and bucket.protection == {}
    base, dlq = protection.queue_names(bucket)
    assert not sqs.list_queues(QueueNamePrefix=base).get("QueueUrls")


def test_teardown_removes_only_what_s3av_created(
    tenant, moto_account, s3_client, sqs, make_bucket, customer_queue
):
    first, second, untouched = make_bucket(), make_bucket(), make_bucket()
    customer_url, customer = customer_queue(s3_client, first)
    with scope(tenant=tenant):
        buckets = [make_bucket_row(tenant, moto_account, n) for n in (first, second, untouched)]
        for bucket in buckets[:2]:
            protection.protect_bucket(tenant, ACTOR, bucket)
        urls = [b.protection["queue_url"] for b in buckets[:2]]

        report = account_services.teardown_tenant(tenant, ACTOR)

        assert report.not_removed == []
        assert len(report.removed) == 6  # two notifications, two queues, two dead-letter queues
        assert _config(s3_client, first) == customer
        assert _config(s3_client, second) == {}
        assert _queue_exists(sqs, customer_url)
        assert not any(_queue_exists(sqs, url) for url in urls)
        for bucket in buckets:
            bucket.refresh_from_db()
            assert not bucket.protected and bucket.protection == {}
        assert AuditEvent.objects.filter(tenant=tenant, action="account.teardown").count() == 1


def test_teardown_reports_what_it_could_not_remove(tenant, moto_account, s3_client, make_bucket, monkeypatch):
    name = make_bucket()
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, moto_account, name)
        protection.protect_bucket(tenant, ACTOR, bucket)

        def refuse(account, service, region=None):
            raise aws.AssumeRoleFailed(
                "s3av may not assume the role: the role's trust policy ...", "AccessDenied"
            )

        monkeypatch.setattr(aws, "client_for", refuse)
        report = account_services.teardown_account(tenant, ACTOR, moto_account)
        assert report.removed == []
        assert len(report.not_removed) == 3
        assert "trust policy" in report.not_removed[0]
        assert "kept because" in report.not_removed[1]
        bucket.refresh_from_db()
        assert bucket.protected  # still sending events: nothing was removed
        with pytest.raises(ServiceError, match="could not be removed"):
            protection.unprotect_bucket(tenant, ACTOR, bucket)

        monkeypatch.undo()
        protection.unprotect_bucket(tenant, ACTOR, bucket)
        assert _config(s3_client, name) == {}


def test_deleting_an_account_tears_it_down(tenant, moto_account, s3_client, make_bucket):
    name = make_bucket()
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, moto_account, name)
        protection.protect_bucket(tenant, ACTOR, bucket)
        report = account_services.delete_account(tenant, ACTOR, moto_account)
        assert report.not_removed == [] and len(report.removed) == 3
        assert _config(s3_client, name) == {}
        assert not type(moto_account).objects.filter(pk=moto_account.pk).exists()


def test_the_read_gate_merges_into_the_bucket_policy(tenant, moto_account, s3_client, make_bucket):
    name = make_bucket()
    theirs = {
        "Sid": "CustomerStatement",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:DeleteBucket",
        "Resource": f"arn:aws:s3:::{name}",
    }
    s3_client.put_bucket_policy(
        Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [theirs]})
    )
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, moto_account, name)
        gate = read_gate.apply(tenant, ACTOR, bucket)
        read_gate.apply(tenant, ACTOR, bucket)  # twice: still one s3av statement
    policy = json.loads(s3_client.get_bucket_policy(Bucket=name)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == [
        "CustomerStatement",
        read_gate.SID,
        read_gate.TAG_GUARD_SID,
        read_gate.COPY_GUARD_SID,
    ]
    assert policy["Statement"][0] == theirs
    assert gate["Effect"] == "Deny"
    assert gate["Condition"]["StringNotEquals"] == {
        "s3:ExistingObjectTag/scan-result": ["Clean", "InfectedAllowed"]
    }
    assert gate["Condition"]["ArnNotEquals"] == {"aws:PrincipalArn": moto_account.role_arn}


def test_the_first_protection_scans_what_the_bucket_already_holds(
    tenant, moto_account, s3_client, make_bucket
):
    from scanning.models import JobTrigger, ScanJob

    name = make_bucket()
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, moto_account, name)
        protection.protect_bucket(tenant, ACTOR, bucket)
        jobs = list(ScanJob.objects.filter(tenant=tenant, bucket=bucket))
        assert [job.trigger for job in jobs] == [JobTrigger.PROTECT]
        ScanJob.objects.filter(tenant=tenant, bucket=bucket).update(status="done")
        protection.unprotect_bucket(tenant, ACTOR, bucket)
        protection.protect_bucket(tenant, ACTOR, bucket)  # protected again: no second full scan
        assert ScanJob.objects.filter(tenant=tenant, bucket=bucket).count() == 1
        protection.unprotect_bucket(tenant, ACTOR, bucket)


def test_protection_can_skip_the_scan_of_existing_objects(tenant, moto_account, s3_client, make_bucket):
    from scanning.models import ScanJob

    name = make_bucket()
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, moto_account, name)
        protection.protect_bucket(tenant, ACTOR, bucket, scan_existing=False)
        assert not ScanJob.objects.filter(tenant=tenant, bucket=bucket).exists()
        protection.unprotect_bucket(tenant, ACTOR, bucket)


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_the_first_protections_scan_deletes_the_infected_version_for_good(
    tenant,
    moto_account,
    s3_client,
    make_bucket,
    aws_settings,
    empty_broker,
    django_capture_on_commit_callbacks,
    versioned,
):
    from tests.fixtures.broker import drain
    from tests.fixtures.scanning import EICAR, assert_gone_for_good

    name = make_bucket(versioned=versioned)
    version = s3_client.put_object(Bucket=name, Key="old/evil.com", Body=EICAR).get("VersionId")
    with scope(tenant=tenant):
        policy = make_policy(tenant, name="delete", on_infected="delete")
        bucket = make_bucket_row(tenant, moto_account, name, policy=policy)
        with django_capture_on_commit_callbacks(execute=True):
            protection.protect_bucket(tenant, ACTOR, bucket)
        drain()
        protection.unprotect_bucket(tenant, ACTOR, bucket)
    assert_gone_for_good(s3_client, name, "old/evil.com", version)

"""The listing actor's message: it names the job only, as every release has sent it.

``list_job`` is a ``tenant_actor`` (the tenant reloaded, its scope entered, the final attempt known)
whose loader finds the tenant through the job, so a message queued by an earlier release, before an
upgrade, is processed as it always was.
"""

from __future__ import annotations

import dramatiq
import pytest
from django_scopes import scope, scopes_disabled
from dramatiq import Message

from accounts.models import Tenant
from accounts.services import Actor
from scanning.jobs import services as jobs
from scanning.models import JobStatus, ScanJob
from tests.fixtures.broker import drain, queued
from tests.fixtures.scanning import EICAR

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_broker")]

SYSTEM = Actor.system("test")


def _queued_job(tenant, bucket, django_capture_on_commit_callbacks) -> ScanJob:
    with scope(tenant=tenant), django_capture_on_commit_callbacks(execute=True):
        job = jobs.start_bucket_scan(tenant, SYSTEM, bucket, "")
    dramatiq.get_broker().flush_all()  # the test enqueues the message itself
    return job


def _enqueue_as_an_earlier_release_did(job: ScanJob) -> None:
    # The message exactly as the plain dramatiq actor sent it: one argument, the job's id.
    message = Message(queue_name="listing", actor_name="list_job", args=(str(job.pk),), kwargs={}, options={})
    dramatiq.get_broker().enqueue(message)


def _status(job: ScanJob) -> str:
    with scopes_disabled():
        return ScanJob.objects.get(pk=job.pk).status


def test_a_listing_message_still_names_the_job_only(
    tenant, make_linked_bucket, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    with scope(tenant=tenant), django_capture_on_commit_callbacks(execute=True):
        job = jobs.start_bucket_scan(tenant, SYSTEM, bucket, "")
    assert [(m.actor_name, m.args) for m in queued("listing")] == [("list_job", (str(job.pk),))]


def test_a_message_queued_by_an_earlier_release_lists_and_scans_the_job(
    tenant, make_linked_bucket, s3_client, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    s3_client.put_object(Bucket=bucket.name, Key="a.txt", Body=b"alpha " * 50)
    s3_client.put_object(Bucket=bucket.name, Key="eicar.com", Body=EICAR)
    job = _queued_job(tenant, bucket, django_capture_on_commit_callbacks)
    _enqueue_as_an_earlier_release_did(job)
    drain()
    with scopes_disabled():
        job = ScanJob.objects.get(pk=job.pk)
    assert (job.status, job.listed, job.scanned, job.infected) == (JobStatus.DONE, 2, 2, 1)


def test_a_message_for_a_suspended_tenant_does_nothing(
    tenant, make_linked_bucket, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    job = _queued_job(tenant, bucket, django_capture_on_commit_callbacks)
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    _enqueue_as_an_earlier_release_did(job)
    assert drain() == 1
    assert _status(job) == JobStatus.QUEUED


def test_a_message_for_a_deleted_job_does_nothing(
    tenant, make_linked_bucket, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    job = _queued_job(tenant, bucket, django_capture_on_commit_callbacks)
    _enqueue_as_an_earlier_release_did(job)
    with scopes_disabled():
        ScanJob.objects.filter(pk=job.pk).delete()
    assert drain() == 1


def test_the_last_attempt_fails_the_job_with_the_reason(
    tenant, make_linked_bucket, monkeypatch, django_capture_on_commit_callbacks
):
    def throttled(*args, **kwargs):
        raise jobs.s3ops.TransientS3Error("SlowDown")

    bucket = make_linked_bucket(tenant)
    job = _queued_job(tenant, bucket, django_capture_on_commit_callbacks)
    monkeypatch.setattr(jobs.s3ops, "iter_keys", throttled)
    _enqueue_as_an_earlier_release_did(job)
    drain()  # outside a worker every attempt is the last one
    with scopes_disabled():
        job = ScanJob.objects.get(pk=job.pk)
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("gave up listing after retries")

"""Event-based protection of a bucket: an SQS queue and an S3 event notification that s3av owns.

Design: one queue per protected bucket (``s3av-<bucket id>``, plus ``s3av-<bucket id>-dlq`` as its
dead-letter queue), in the bucket's own account and region. Per bucket rather than per account/region
because then the queue policy names exactly one bucket (``aws:SourceArn`` and ``aws:SourceAccount``),
unprotecting deletes exactly one queue without rewriting a policy other buckets depend on, and one
noisy bucket cannot delay another's events. ``ingest_events`` polls the queues concurrently.

The bucket's notification configuration belongs to the customer: it is read, merged and written back
(``PutBucketNotificationConfiguration`` replaces the whole configuration), and s3av's entry is found by
its id ``s3av-<bucket id>``, so unprotecting removes exactly that entry. S3 offers no conditional write
here; a customer editing the configuration in the same second could lose one side of the race.

What exists in AWS is recorded on ``Bucket.protection`` as it is created, so a half-finished protect,
an unprotect or a tear-down knows precisely what to remove.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import Actor, ServiceError, get_owned, record
from linked_accounts import aws
from linked_accounts.models import AwsAccount
from linked_accounts.services import TeardownReport
from scanning.jobs import services as jobs
from scanning.models import Bucket, JobTrigger, ScanJob, ScanPolicy
from scanning.notifications import events as ops_notifications

log = logging.getLogger(__name__)

EVENTS = ["s3:ObjectCreated:*"]
# A message that failed this many receives goes to the dead-letter queue (poison messages).
MAX_RECEIVES = 5
_GONE_QUEUE_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
_GONE_BUCKET_CODES = {"NoSuchBucket"}


def notification_id(bucket: Bucket) -> str:
    return f"s3av-{bucket.pk}"


def queue_names(bucket: Bucket) -> tuple[str, str]:
    base = f"s3av-{bucket.pk.hex}"
    return base, f"{base}-dlq"


def bucket_arn(bucket: Bucket) -> str:
    return f"arn:{aws.partition_of(bucket.account)}:s3:::{bucket.name}"


def queue_policy(bucket: Bucket, queue_arn: str) -> dict[str, Any]:
    """Only this bucket, in this account, may send to the queue."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "S3avBucketEvents",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": bucket_arn(bucket)},
                    "StringEquals": {"aws:SourceAccount": bucket.account.account_id},
                },
            }
        ],
    }


def _check(tenant: Tenant, bucket: Bucket) -> None:
    get_owned(Bucket, tenant, bucket)


def _quarantines_into(tenant: Tenant, bucket: Bucket) -> ScanPolicy | None:
    return ScanPolicy.objects.filter(tenant=tenant, quarantine_bucket=bucket.name).first()


def _explain(exc: BaseException, doing: str) -> str:
    if isinstance(exc, aws.AssumeRoleFailed):
        return exc.message
    code = aws.error_code(exc)
    message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")) if code else ""
    if code in {"AccessDenied", "AccessDeniedException"}:
        return (
            f"AWS refused {doing}: the s3av role lacks a permission. Update the stack from s3av's template."
        )
    if "overlap" in message.lower():
        return (
            f"AWS refused {doing}: the bucket already sends object-created events to another destination "
            "for the same keys, and S3 does not allow overlapping notifications. Narrow that notification "
            "with a prefix or suffix filter, or send it through EventBridge, then try again."
        )
    if code in _GONE_BUCKET_CODES:
        return f"AWS refused {doing}: the bucket no longer exists."
    if code:
        return f"AWS refused {doing}: {code}."
    return f"AWS could not be reached while {doing}; try again later."


def _notification_config(s3: Any, name: str) -> dict[str, Any]:
    config = dict(s3.get_bucket_notification_configuration(Bucket=name))
    config.pop("ResponseMetadata", None)
    return config


def _without(config: dict[str, Any], entry_id: str) -> dict[str, Any]:
    """The configuration with every entry named ``entry_id`` removed; the rest untouched."""
    result = dict(config)
    for kind in ("QueueConfigurations", "TopicConfigurations", "LambdaFunctionConfigurations"):
        if kind not in result:
            continue
        kept = [entry for entry in result[kind] if entry.get("Id") != entry_id]
        if kept:
            result[kind] = kept
        else:
            result.pop(kind)
    return result


def _queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def _check_protectable(tenant: Tenant, bucket: Bucket) -> None:
    _check(tenant, bucket)
    if bucket.account.status != AwsAccount.Status.CONNECTED:
        raise ServiceError("Verify the bucket's account before protecting its buckets.")
    if bucket.missing_since is not None:
        raise ServiceError("This bucket was not found at the last discovery; it cannot be protected.")
    if (quarantining := _quarantines_into(tenant, bucket)) is not None and not bucket.protected:
        raise ServiceError(
            f"{bucket.name} is the quarantine bucket of policy {quarantining.name!r}: protecting it would "
            "have s3av scan (and quarantine again) its own quarantine copies. Give that policy another "
            "quarantine bucket first."
        )


def _create_queues(sqs: Any, bucket: Bucket, state: dict[str, Any]) -> None:
    """The dead-letter queue, then the bucket's queue; each is recorded in ``state`` as it is made."""
    name, dlq_name = queue_names(bucket)
    tags = {"created-by": "s3av", "s3av-bucket-id": str(bucket.pk)}
    dlq_url = sqs.create_queue(
        QueueName=dlq_name,
        Attributes={"MessageRetentionPeriod": "1209600", "SqsManagedSseEnabled": "true"},
        tags=tags,
    )["QueueUrl"]
    state["dlq_url"] = dlq_url
    redrive = {"deadLetterTargetArn": _queue_arn(sqs, dlq_url), "maxReceiveCount": str(MAX_RECEIVES)}
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "RedrivePolicy": json.dumps(redrive),
            "VisibilityTimeout": "120",
            "ReceiveMessageWaitTimeSeconds": "20",
            "SqsManagedSseEnabled": "true",
        },
        tags=tags,
    )["QueueUrl"]
    state["queue_url"] = queue_url
    queue_arn = _queue_arn(sqs, queue_url)
    state["queue_arn"] = queue_arn
    sqs.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"Policy": json.dumps(queue_policy(bucket, queue_arn))}
    )


def _add_notification(s3: Any, bucket: Bucket, queue_arn: str) -> None:
    """Merge s3av's entry into the bucket's notification configuration (read, merge, write)."""
    nid = notification_id(bucket)
    config = _without(_notification_config(s3, bucket.name), nid)
    config["QueueConfigurations"] = [
        *config.get("QueueConfigurations", []),
        {"Id": nid, "QueueArn": queue_arn, "Events": EVENTS},
    ]
    s3.put_bucket_notification_configuration(Bucket=bucket.name, NotificationConfiguration=config)


def protect_bucket(tenant: Tenant, actor: Actor, bucket: Bucket, scan_existing: bool = True) -> Bucket:
    """Create the bucket's queue and add s3av's event notification; idempotent.

    On the bucket's first protection, ``scan_existing`` also starts a scan of what it already holds
    (events only cover new uploads).
    """
    _check_protectable(tenant, bucket)
    account = bucket.account
    failure = None
    # The row lock serialises protect/unprotect of one bucket (each does a read-merge-write of the
    # bucket's notification configuration); it is held across the AWS calls on purpose.
    with transaction.atomic():
        locked = Bucket.objects.select_for_update().select_related("account").get(pk=bucket.pk, tenant=tenant)
        if locked.protected:
            bucket.protected, bucket.protection = locked.protected, locked.protection
            return locked
        state: dict[str, Any] = dict(locked.protection or {})
        state.update({"region": locked.region, "notification_id": notification_id(locked), "events": EVENTS})
        doing = "creating the event queue"
        try:
            _create_queues(aws.client_for(account, "sqs", locked.region), locked, state)
            doing = "adding the event notification to the bucket"
            _add_notification(aws.client_for(account, "s3", locked.region), locked, state["queue_arn"])
        except (aws.AssumeRoleFailed, ClientError, BotoCoreError) as exc:
            failure = _explain(exc, doing)
            log.warning("protect failed", extra={"bucket": str(locked.pk), "error": failure})
            # Take back the queues made so far, so a failed protect leaves nothing behind.
            state.pop("notification_id", None)
            state = _delete_queues(account, state, TeardownReport())
            locked.protection = state if ("queue_url" in state or "dlq_url" in state) else {}
            locked.save(update_fields=["protection"])
        else:
            state["protected_at"] = timezone.now().isoformat()
            locked.protection = state
            locked.protected = True
            locked.save(update_fields=["protection", "protected"])
            record(tenant, actor, "bucket.protect", locked, {"queue_arn": state["queue_arn"]})
            ops_notifications.tenant_event(tenant, "bucket.protected", f"s3://{locked.name} is now protected")
            if scan_existing:
                _scan_what_it_holds(tenant, actor, locked)
    bucket.protected, bucket.protection = locked.protected, locked.protection
    if failure:
        raise ServiceError(failure)
    return locked


def _scan_what_it_holds(tenant: Tenant, actor: Actor, bucket: Bucket) -> None:
    if ScanJob.objects.filter(tenant=tenant, bucket=bucket, trigger=JobTrigger.PROTECT).exists():
        return  # only the first protection: later ones are covered by that scan and by events
    try:
        jobs.start_bucket_scan(tenant, actor, bucket, "", JobTrigger.PROTECT)
    except ServiceError as exc:  # e.g. a scan of the bucket is already running
        log.info("no scan at first protection", extra={"bucket": str(bucket.pk), "reason": exc.message})


def _delete_queues(account: AwsAccount, state: dict[str, Any], report: TeardownReport) -> dict[str, Any]:
    """Delete the queues named in ``state``; return the state without the ones that are gone."""
    state = dict(state)
    urls = [(k, state[k]) for k in ("queue_url", "dlq_url") if state.get(k)]
    if not urls:
        return state
    try:
        sqs = aws.client_for(account, "sqs", state.get("region"))
    except aws.AssumeRoleFailed as exc:
        report.not_removed.extend(f"queue {url}: {exc.message}" for _, url in urls)
        return state
    for key, url in urls:
        try:
            sqs.delete_queue(QueueUrl=url)
        except (ClientError, BotoCoreError) as exc:
            if aws.error_code(exc) not in _GONE_QUEUE_CODES:
                report.not_removed.append(f"queue {url}: {_explain(exc, 'deleting the queue')}")
                continue
        report.removed.append(f"queue {url}")
        state.pop(key)
        if key == "queue_url":
            state.pop("queue_arn", None)
    return state


def remove_protection(tenant: Tenant, bucket: Bucket) -> TeardownReport:
    """Remove s3av's notification entry and queues of one bucket; nothing else. No audit (callers do)."""
    _check(tenant, bucket)
    report = TeardownReport()
    with transaction.atomic():
        locked = Bucket.objects.select_for_update().select_related("account").get(pk=bucket.pk, tenant=tenant)
        account = locked.account
        state = dict(locked.protection or {})
        nid = state.get("notification_id") or notification_id(locked)
        region = state.get("region") or locked.region
        where = f"event notification {nid} on s3://{locked.name}"
        notification_gone = False
        try:
            s3 = aws.client_for(account, "s3", region)
            config = _notification_config(s3, locked.name)
            stripped = _without(config, nid)
            if stripped != config:
                s3.put_bucket_notification_configuration(
                    Bucket=locked.name, NotificationConfiguration=stripped
                )
            notification_gone = True
        except (aws.AssumeRoleFailed, ClientError, BotoCoreError) as exc:
            if aws.error_code(exc) in _GONE_BUCKET_CODES:
                notification_gone = True
            else:
                report.not_removed.append(f"{where}: {_explain(exc, 'removing the event notification')}")
        if notification_gone:
            report.removed.append(where)
            state.pop("notification_id", None)
            state = _delete_queues(account, state, report)
        else:
            # Deleting a queue the bucket still points at would make S3 refuse the customer's own
            # later notification changes ("unable to validate destination"): keep it.
            report.not_removed.extend(
                f"queue {state[k]}: kept because the bucket's notification still points at it"
                for k in ("queue_url", "dlq_url")
                if state.get(k)
            )
        if notification_gone:
            locked.protected = False
        locked.protection = {} if not report.not_removed else state
        locked.save(update_fields=["protected", "protection"])
    bucket.protected, bucket.protection = locked.protected, locked.protection
    return report


def unprotect_bucket(tenant: Tenant, actor: Actor, bucket: Bucket) -> TeardownReport:
    report = remove_protection(tenant, bucket)
    record(tenant, actor, "bucket.unprotect", bucket, report.as_dict())
    ops_notifications.tenant_event(tenant, "bucket.unprotected", f"s3://{bucket.name} is no longer protected")
    if report.not_removed:
        raise ServiceError("Some of what s3av created could not be removed: " + "; ".join(report.not_removed))
    return report


@transaction.atomic
def set_bucket_policy(tenant: Tenant, actor: Actor, bucket: Bucket, policy: ScanPolicy | None) -> Bucket:
    _check(tenant, bucket)
    if policy is not None:
        get_owned(ScanPolicy, tenant, policy, field="policy", noun="policy")
    effective = policy or ScanPolicy.default_for(tenant)
    if effective.quarantine_bucket == bucket.name:
        raise ServiceError(
            f"Policy {effective.name!r} quarantines into {bucket.name} itself: quarantined objects would be "
            "scanned and quarantined again. Choose a policy with another quarantine bucket.",
            field="policy",
        )
    before = str(bucket.policy_id) if bucket.policy_id else None
    bucket.policy = policy
    bucket.save(update_fields=["policy"])
    record(
        tenant,
        actor,
        "bucket.policy",
        bucket,
        {"from": before, "to": str(policy.pk) if policy else None},
    )
    return bucket

"""Write operations on scan policies: create, update, delete.

Each takes the tenant and the acting identity first, validates with the model's own rules (the API and
the admin share them), and writes the change and its audit event in one transaction. The audit event
records the validated values, never the raw request body.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import Tenant
from accounts.services import Actor, ServiceError, get_owned, record
from scanning.models import Bucket, ScanPolicy

# The fields a tenant sets on a policy (everything else is the service's).
POLICY_FIELDS = (
    "name", "max_object_size", "include_patterns", "exclude_patterns", "tag_objects", "tag_result_key",
    "tag_date_key", "tag_virus_key", "tag_message_key", "on_infected", "on_unscannable", "on_error",
    "quarantine_bucket", "quarantine_prefix", "promote_to_bucket", "promote_prefix",
    "delete_staging_after_promote", "rescan_days_on_signature_change", "scan_bucket_on_infected",
)  # fmt: skip


def _check_fields(changes: dict[str, Any]) -> None:
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise ServiceError(f"Unknown fields: {', '.join(sorted(unknown))}.")


def _check_name_free(tenant: Tenant, name: str, policy: ScanPolicy | None = None) -> None:
    others = ScanPolicy.objects.filter(tenant=tenant, name=name)
    if policy is not None:
        others = others.exclude(pk=policy.pk)
    if others.exists():
        raise ServiceError("A policy with this name exists.", field="name")


def _check_bucket(tenant: Tenant, bucket: Bucket | None) -> None:
    # A referenced bucket must be the tenant's own; another tenant's is "no such bucket".
    if bucket is not None:
        get_owned(Bucket, tenant, bucket, field="promote_to_bucket")


def audit_values(policy: ScanPolicy, fields: Any) -> dict[str, Any]:
    """The policy's values of ``fields`` as the audit log keeps them (a bucket by its id)."""
    values: dict[str, Any] = {}
    for name in fields:
        if name == "promote_to_bucket":
            values[name] = str(policy.promote_to_bucket_id) if policy.promote_to_bucket_id else None
        else:
            values[name] = getattr(policy, name)
    return values


@transaction.atomic
def create_policy(tenant: Tenant, actor: Actor, **fields: Any) -> ScanPolicy:
    _check_fields(fields)
    _check_name_free(tenant, fields.get("name", ""))
    _check_bucket(tenant, fields.get("promote_to_bucket"))
    policy = ScanPolicy(tenant=tenant, **fields)
    policy.full_clean(validate_constraints=False)  # the name was checked above, with its field
    policy.save()
    record(tenant, actor, "policy.create", policy, audit_values(policy, POLICY_FIELDS))
    return policy


@transaction.atomic
def update_policy(tenant: Tenant, actor: Actor, policy: ScanPolicy, **changes: Any) -> ScanPolicy:
    get_owned(ScanPolicy, tenant, policy, noun="policy")
    _check_fields(changes)
    if "name" in changes:
        _check_name_free(tenant, changes["name"], policy)
    if "promote_to_bucket" in changes:
        _check_bucket(tenant, changes["promote_to_bucket"])
    policy = ScanPolicy.objects.select_for_update().get(pk=policy.pk, tenant=tenant)
    before = audit_values(policy, changes)
    for name, value in changes.items():
        setattr(policy, name, value)
    policy.full_clean(validate_constraints=False)
    policy.save()
    record(tenant, actor, "policy.update", policy, {"before": before, "after": audit_values(policy, changes)})
    return policy


@transaction.atomic
def delete_policy(tenant: Tenant, actor: Actor, policy: ScanPolicy) -> None:
    get_owned(ScanPolicy, tenant, policy, noun="policy")
    in_use = Bucket.objects.filter(tenant=tenant, policy=policy).count()
    record(tenant, actor, "policy.delete", policy, {"buckets_falling_back_to_default": in_use})
    policy.delete()

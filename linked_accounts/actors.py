"""Dramatiq actors of linked accounts: periodic bucket discovery. Thin: reload by id, scope, call."""

from __future__ import annotations

import logging

import dramatiq
from django_scopes import scope, scopes_disabled

from accounts.models import Tenant
from accounts.services import Actor, ServiceError
from linked_accounts import services
from linked_accounts.models import AwsAccount

log = logging.getLogger(__name__)


@dramatiq.actor(queue_name="default", max_retries=3, time_limit=600_000)
def discover_account(tenant_id: str, account_id: str) -> None:
    with scopes_disabled():
        tenant = Tenant.objects.filter(pk=tenant_id, status=Tenant.Status.ACTIVE).first()
    if tenant is None:
        return
    with scope(tenant=tenant):
        account = AwsAccount.objects.filter(tenant=tenant, pk=account_id).first()
        if account is None or account.status != AwsAccount.Status.CONNECTED:
            return
        try:
            services.discover_buckets(tenant, Actor.system("discovery"), account)
        except ServiceError as exc:  # recorded on the account; retrying will not help
            log.warning("discovery failed", extra={"account": account_id, "error": exc.message})


@dramatiq.actor(queue_name="default", max_retries=0)
def discover_all_accounts() -> None:
    """Enqueue discovery of every connected account (the scheduler sends this periodically)."""
    with scopes_disabled():
        pairs = list(
            AwsAccount.objects.filter(
                status=AwsAccount.Status.CONNECTED, tenant__status=Tenant.Status.ACTIVE
            ).values_list("tenant_id", "pk")
        )
    for tenant_id, pk in pairs:
        discover_account.send(str(tenant_id), str(pk))

"""The one way a Dramatiq actor acts for a tenant: take ids, reload the tenant, enter its scope.

``tenant_actor`` turns ``fn(tenant, *ids, **options)`` into an actor whose messages carry the tenant's
id: the tenant is reloaded (a suspended or deleted tenant's messages do nothing), the function runs
inside the tenant's django-scopes scope, and ``is_final_attempt()`` answers for the actor's own
``max_retries``. Messages are sent after the current transaction commits (``send_on_commit``), so a
worker never looks for a row that is not committed yet.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import dramatiq
from django.db import transaction
from django_scopes import scope, scopes_disabled
from dramatiq.middleware import CurrentMessage

from accounts.models import Tenant

# dramatiq's own default, for an actor declared without max_retries.
DEFAULT_MAX_RETRIES = 20

_max_retries: ContextVar[int] = ContextVar("s3av_actor_max_retries", default=DEFAULT_MAX_RETRIES)

R = TypeVar("R")


def is_final_attempt(max_retries: int | None = None) -> bool:
    """Whether the message being processed will not be retried again (True outside a worker).

    ``max_retries`` defaults to that of the ``tenant_actor`` running now.
    """
    message = CurrentMessage.get_current_message()
    if message is None:
        return True
    limit = _max_retries.get() if max_retries is None else max_retries
    return int(message.options.get("retries", 0)) >= limit


def active_tenant(tenant_id: str) -> Tenant | None:
    with scopes_disabled():
        return Tenant.objects.filter(pk=tenant_id, status=Tenant.Status.ACTIVE).first()


# Loads the tenant and, in the same query, rows the actor's first ids name: ``(tenant, args)`` with the
# rows in place of their ids, or None when the tenant is not active or a row is gone. It is given the
# message's keyword arguments too (read only: the function gets them unchanged).
Loader = Callable[..., "tuple[Tenant, tuple[Any, ...]] | None"]


def tenant_actor(
    *, load: Loader | None = None, **options: Any
) -> Callable[[Callable[..., R]], dramatiq.Actor[..., R | None]]:
    """Declare ``fn(tenant, ...)`` as an actor taking ``(tenant_id, ...)``; ``options`` go to dramatiq.

    ``load(tenant_id, *args, **kwargs)`` replaces the tenant's reload on a hot path (a scan loads its
    bucket and tenant in one query); it must refuse a tenant that is not active, as ``active_tenant``
    does. It gets the message's ids as sent, so a message may name a row that knows its tenant instead
    (``list_job``'s names the job).
    """
    max_retries = int(options.get("max_retries", DEFAULT_MAX_RETRIES))

    def declare(fn: Callable[..., R]) -> dramatiq.Actor[..., R | None]:
        @functools.wraps(fn)
        def run(tenant_id: str, *args: Any, **kwargs: Any) -> R | None:
            if load is None:
                tenant = active_tenant(tenant_id)
            else:
                loaded = load(tenant_id, *args, **kwargs)
                tenant, args = loaded if loaded is not None else (None, args)
            if tenant is None:
                return None
            token = _max_retries.set(max_retries)
            try:
                with scope(tenant=tenant):
                    return fn(tenant, *args, **kwargs)
            finally:
                _max_retries.reset(token)

        declared: dramatiq.Actor[..., R | None] = dramatiq.actor(actor_name=fn.__name__, **options)(run)
        return declared

    return declare


def send_on_commit(actor: dramatiq.Actor[..., Any], *args: Any, **kwargs: Any) -> None:
    """Send ``actor(*args, **kwargs)`` once the current transaction commits (at once outside one)."""
    message = actor.message(*args, **kwargs)
    transaction.on_commit(lambda: actor.broker.enqueue(message))


def enqueue_on_commit(message: dramatiq.Message[Any], broker: dramatiq.Broker | None = None) -> None:
    """Enqueue a built message (``actor.message(...)``) once the current transaction commits."""
    target = broker or dramatiq.get_broker()
    transaction.on_commit(lambda: target.enqueue(message))

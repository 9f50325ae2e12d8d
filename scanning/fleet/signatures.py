"""The Django side of signature updates: build the updater from the settings, run it, and record the
run as a ``SignatureUpdate`` (the deployment's system event; notifications read it in
scanning/fleet/agents.py).
The update itself is scanning/engine/signatures.py."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from linked_accounts import aws
from scanning.engine import clamd as engine
from scanning.engine import signatures
from scanning.models import SignatureUpdate
from scanning.pipeline import services

log = logging.getLogger(__name__)


def configured_source() -> signatures.Source | None:
    source = settings.SIGNATURES_SOURCE
    if not source:
        return None
    if source == "freshclam":
        return signatures.FreshclamSource(Path(settings.CLAMAV_DIR) / "freshclam", settings.FRESHCLAM_CONFIG)
    # The service's own credentials (not a tenant's role): the mirror belongs to the deployment.
    return signatures.S3Source(source, aws.service_client("s3"))


def reload_clients() -> list[engine.ClamdClient]:
    addresses = [settings.CLAMD_ADDRESS, *settings.SIGNATURES_CLAMDS]
    return [services.clamd_client(address) for address in dict.fromkeys(addresses)]


def update_signatures(source: signatures.Source | None = None) -> SignatureUpdate | None:
    """Run one update; None when no source is configured."""
    source = source or configured_source()
    if source is None:
        return None
    started = timezone.now()
    updater = signatures.Updater(
        Path(settings.CLAMAV_DIR), source, reload_clients(), reload_timeout=settings.SIGNATURES_RELOAD_TIMEOUT
    )
    result = updater.run()
    record = SignatureUpdate.objects.create(
        started_at=started,
        finished_at=timezone.now(),
        host=socket.gethostname()[:255],
        source=source.label,
        status=result.status,
        reason=result.reason,
        generation=result.generation,
        downloaded=result.downloaded,
        removed=result.removed,
        versions=result.versions,
    )
    extra = {"status": result.status, "generation": result.generation, "source": source.label}
    if result.ok:
        log.info("signature update %s", result.line(), extra=extra)
    else:
        log.error("signature update %s", result.line(), extra=extra)
    if result.status == signatures.UPDATED:
        # This process's own signature version is cached for a minute; forget it so what it records
        # next names the new set.
        services.forget_engine_identity()
    return record


def last_update() -> SignatureUpdate | None:
    return SignatureUpdate.objects.order_by("-started_at").first()

"""``manage.py update_signatures``: fetch new signature databases from ``S3AV_SIGNATURES_SOURCE``, prove
them in a scratch engine, swap them in and have every clamd reload them (scanning/engine/signatures.py).

Exit status: 0 when the database is current or was updated (also when no source is set), 1 when an
update was rejected or failed (the old database stays live); the reason is printed on one line.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from scanning.engine import signatures
from scanning.fleet.signatures import update_signatures


class Command(BaseCommand):
    help = "Update the signature databases from S3AV_SIGNATURES_SOURCE and reload clamd."

    def handle(self, *args: Any, **options: Any) -> None:
        record = update_signatures()
        if record is None:
            self.stdout.write(
                "no signature source configured (S3AV_SIGNATURES_SOURCE is empty): nothing to do"
            )
            return
        result = signatures.Result(
            record.status, record.reason, record.generation, list(record.downloaded), list(record.removed)
        )
        result.reloaded = list(record.versions)
        if not result.ok:
            raise CommandError(result.line(), returncode=1)
        self.stdout.write(result.line())

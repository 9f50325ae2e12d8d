"""One-shot scan of a bucket or prefix with the process's own AWS credentials (no tenant, no database).

Exit status follows clamscan: 0 all Clean, 1 any Infected, 2 any Unscannable or Error (or bad usage).
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TextIO

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from linked_accounts import aws
from s3av.env import parse_size
from scanning.engine import clamd as engine
from scanning.models import Verdict
from scanning.pipeline import scanner, services
from scanning.s3 import ops as s3ops

RETRIES = 3


class Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.enabled = stream.isatty()
        self.lock = threading.Lock()

    def show(self, done: int, listed: int, listing: bool, counts: Counter[str]) -> None:
        if not self.enabled:
            return
        total = f"{listed}+" if listing else str(listed)
        width = 30
        filled = width if not listed else int(width * done / max(listed, 1))
        bar = "#" * filled + "-" * (width - filled)
        summary = " ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items()))
        with self.lock:
            self.stream.write(f"\r[{bar}] {done}/{total} {summary}\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


class Command(BaseCommand):
    help = "Scan every object under s3://BUCKET[/PREFIX] and print one line per object and a summary."
    # No database, models or web settings: the service's system checks are not this command's business,
    # and one failing would exit 1, which here means "infected".
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help="s3://BUCKET or s3://BUCKET/PREFIX")
        parser.add_argument("--endpoint-url", default=None, help="S3-compatible or local endpoint")
        parser.add_argument("--region", default=None)
        parser.add_argument("--json", action="store_true", help="JSON lines on stdout; summary on stderr")
        parser.add_argument(
            "--all-versions", action="store_true", help="scan every version, not just the latest"
        )
        parser.add_argument("--concurrency", type=int, default=4)
        parser.add_argument("--max-size", default=None, help="larger objects are Unscannable (e.g. 512M)")

    def run_from_argv(self, argv: list[str]) -> None:
        # Run as a process of its own (manage.py, not call_command): everything Django and boto3
        # built at start-up lives until the process ends. Frozen, the collector never walks it again, and
        # the interpreter's shutdown (which collects over and over while it tears the modules down)
        # takes ~0.02 s instead of ~0.25 s (docs/performance.md, "Large objects").
        gc.freeze()
        super().run_from_argv(argv)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            bucket, prefix = s3ops.parse_s3_url(options["url"])
            max_size = parse_size(options["max_size"]) if options["max_size"] else settings.MAX_OBJECT_SIZE
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1", returncode=2)
        s3 = aws.make_client(
            "s3",
            endpoint_url=options["endpoint_url"] or settings.AWS_ENDPOINT_URL,
            region=options["region"] or settings.AWS_REGION,
        )
        clamd = services.clamd_client()
        try:
            identity = scanner.EngineIdentity(clamd, db_dir=str(settings.CLAMAV_DB_DIR))
            identity.get()
        except engine.EngineUnavailable as exc:
            raise CommandError(
                f"clamd is not answering at {settings.CLAMD_ADDRESS}: {exc}", returncode=2
            ) from exc
        run = _Run(self, lambda ref: _scan_one(s3, clamd, identity, ref, max_size), options["json"])
        try:
            run.scan_all(s3ops.iter_keys(s3, bucket, prefix, versions=options["all_versions"]), options)
        except s3ops.S3Error as exc:
            raise CommandError(f"listing s3://{bucket}/{prefix} failed: {exc.message}", returncode=2) from exc
        self._summarise(run, options["json"])

    def _summarise(self, run: _Run, as_json: bool) -> None:
        counts, done = run.counts, run.done
        summary = {"scanned": done, **{v.lower(): counts.get(v, 0) for v in scanner.VERDICTS}}
        if as_json:
            sys.stderr.write(json.dumps({"summary": summary}) + "\n")
        else:
            self.stdout.write(
                f"scanned {done}: " + ", ".join(f"{v.lower()} {counts.get(v, 0)}" for v in scanner.VERDICTS)
            )
        if counts.get(Verdict.INFECTED):
            sys.exit(1)
        if counts.get(Verdict.UNSCANNABLE) or counts.get(Verdict.ERROR):
            sys.exit(2)

    @staticmethod
    def _line(ref: s3ops.ObjectRef, outcome: scanner.Outcome, as_json: bool) -> str:
        if as_json:
            return json.dumps(
                {
                    "bucket": ref.bucket,
                    "key": ref.key,
                    "version_id": ref.version_id,
                    "verdict": outcome.verdict,
                    "signatures": outcome.signatures,
                    "message": outcome.message,
                },
                ensure_ascii=False,
            )
        version = f" (version {ref.version_id})" if ref.version_id else ""
        detail = ", ".join(outcome.signatures) or outcome.message
        return f"s3://{ref.bucket}/{ref.key}{version}: {outcome.verdict}" + (f" {detail}" if detail else "")


Scanned = tuple[s3ops.ObjectRef, scanner.Outcome]


def _scan_one(
    s3: Any, clamd: engine.ClamdClient, identity: scanner.EngineIdentity, ref: s3ops.ObjectRef, max_size: int
) -> Scanned:
    for attempt in range(RETRIES + 1):
        try:
            return ref, scanner.scan_ref(s3, clamd, identity, ref, max_size)
        except s3ops.PermanentS3Error as exc:  # replaced while the listing went on
            return ref, scanner.Outcome(verdict=Verdict.ERROR, message=exc.message)
        except (s3ops.TransientS3Error, engine.EngineUnavailable) as exc:
            if attempt == RETRIES:
                return ref, scanner.Outcome(verdict=Verdict.ERROR, message=f"gave up after retries: {exc}")
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


class _Run:
    """One run of the command: scans in a thread pool as the listing goes, lines printed as they end."""

    def __init__(self, command: Command, scan: Callable[[s3ops.ObjectRef], Scanned], as_json: bool) -> None:
        self.command = command
        self.scan = scan
        self.as_json = as_json
        self.counts: Counter[str] = Counter()
        self.progress = Progress(sys.stderr)
        self.out_lock = threading.Lock()
        self.done = self.listed = 0
        self.listing = True

    def scan_all(self, pages: Iterable[s3ops.ListingPage], options: dict[str, Any]) -> None:
        pending: set[Future[Scanned]] = set()
        with ThreadPoolExecutor(max_workers=options["concurrency"]) as pool:
            try:
                for page in pages:
                    for ref in page.refs:
                        self.listed += 1
                        pending.add(pool.submit(self.scan, ref))
                        # Keep memory flat on huge buckets: never more than a few scans queued.
                        while len(pending) >= options["concurrency"] * 4:
                            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                            for future in finished:
                                self.report(future)
            except s3ops.S3Error:
                for future in pending:
                    future.cancel()
                self.progress.close()
                raise
            self.listing = False
            for future in list(pending):
                future.result()
                self.report(future)
        self.progress.close()

    def report(self, future: Future[Scanned]) -> None:
        ref, outcome = future.result()
        self.counts[outcome.verdict] += 1
        self.done += 1
        with self.out_lock:
            self.command.stdout.write(Command._line(ref, outcome, self.as_json))
        self.progress.show(self.done, self.listed, self.listing, self.counts)

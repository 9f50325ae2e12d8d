"""Per-object cost of a scan (issue 10): the worker's CPU against clamd's, S3 calls and SQL statements.

Run from the repository root (clamd, PostgreSQL and RabbitMQ must be up; moto's server and one worker
are started here and stopped at the end, also on error):

    source scripts/test-env.sh && .venv/bin/python bench/cost.py [--count 300] [--size 256K] [--threads 4]
        [--keep-alive]

moto's own server answers every request with ``Connection: close``, so each S3 call reconnects; with
``--keep-alive`` the same moto app is served by gunicorn's threaded worker, which keeps connections open
as S3 does (the clients are the same: they hand every connection back to their pool either way).

In one run, on fresh distinct random objects for every phase (clamd's clean cache cannot help):

1. raw: COUNT files on disk streamed to clamd with ``ClamdClient.scan_stream`` from THREADS threads.
2. baseline: what the open-source peers do, in this process with THREADS threads: GetObject into a
   temporary file, stream the file to clamd, PutObjectTagging of one tag.
3. event path: one ``scan_object`` message per object as an S3 event makes it (ETag and size), on
   RabbitMQ, to one ``rundramatiq --processes 1 --threads THREADS`` worker.
4. bucket scan: ``start_bucket_scan`` of a bucket of COUNT objects; the same worker lists and scans.

For each: objects/s, and CPU seconds per object of the worker (or this process, for the baseline),
clamd and moto, read from /proc/<pid>/stat before and after. S3 calls per object by operation are read
from moto's request log for the phase's time span (only the phase's scanner talks to moto then).

5. SQL statements per object: SAMPLE objects of each path run one at a time in this process, the
   actor function called directly, under Django's ``CaptureQueriesContext`` (counts, not timings; the
   listing's own statements are spread over the objects it listed). Usage is added up in the process
   as a worker does (``pipeline/usage.py``) and written once after each path's sample: those
   statements are shown apart, as a worker writes them every few seconds, not per object.

Prints figures; asserts nothing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pipeline as common  # noqa: E402 - bench/pipeline.py: moto, worker, database and /proc helpers

MiB = common.MiB
KiB = 1024


# --- S3 calls from moto's request log ----------------------------------------------------------------

_REQUEST = re.compile(r'"(?P<method>GET|PUT|POST|HEAD|DELETE) (?P<path>\S+) HTTP/1\.[01]"')
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def operation_of(method: str, path: str) -> str:
    """The S3 operation of one request line (path-style addressing, as s3av uses with an endpoint)."""
    base, _, query = path.partition("?")
    params = {part.split("=", 1)[0] for part in query.split("&") if part}
    on_object = base.strip("/").count("/") >= 1
    if "tagging" in params:
        return {"GET": "GetObjectTagging", "PUT": "PutObjectTagging"}.get(method, f"{method} tagging")
    if "versioning" in params:
        return "GetBucketVersioning" if method == "GET" else f"{method} versioning"
    if "list-type" in params:
        return "ListObjectsV2"
    if "versions" in params:
        return "ListObjectVersions"
    if method == "POST" and base.strip("/") == "":
        return "POST / (SQS)"
    if on_object:
        return {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject/CopyObject",
                "DELETE": "DeleteObject"}.get(method, f"{method} object")  # fmt: skip
    return f"{method} bucket"


class MotoLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def calls_since_mark(self) -> Counter[str]:
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            text = fh.read().decode(errors="replace")
        calls: Counter[str] = Counter()
        for line in _ANSI.sub("", text).splitlines():
            match = _REQUEST.search(line)
            if match:
                calls[operation_of(match["method"], match["path"])] += 1
        return calls


# --- moto behind a keep-alive server ----------------------------------------------------------------

# moto's own server (werkzeug's development server) answers every request with `Connection: close`, so
# every S3 call of every client reconnects; S3 keeps connections open. --keep-alive serves the same moto
# app from gunicorn's threaded worker, which keeps them open; its access log has the same request lines.
_MOTO_APP = (
    "from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app\n"
    "app = DomainDispatcherApplication(create_backend_app)\n"
)


def start_moto_keep_alive(stack: ExitStack, workdir: Path) -> tuple[int, str]:
    """gunicorn serving moto (one worker process: moto keeps its state in memory); returns the worker's
    pid (the one whose CPU counts) and the URL."""
    (workdir / "motoapp.py").write_text(_MOTO_APP)
    port = common.free_port()
    url = f"http://127.0.0.1:{port}"
    logfile = open(workdir / "gunicorn.log", "wb")  # noqa: SIM115 - closed by the stack
    stack.callback(logfile.close)
    command = [sys.executable, "-m", "gunicorn", "--chdir", str(workdir), "--worker-class", "gthread",
               "--workers", "1", "--threads", "32", "--keep-alive", "75", "--bind", f"127.0.0.1:{port}",
               "--access-logfile", str(workdir / "moto.log"), "motoapp:app"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=logfile, stderr=subprocess.STDOUT, env={**os.environ, **common.AWS_ENV},
        start_new_session=True,
    )  # fmt: skip
    stack.callback(common.stop_process, process, "moto (gunicorn)")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):  # noqa: S310 - loopback
                break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.1)
    workers = common.children_of(process.pid)
    if process.poll() is not None or len(workers) != 1:
        raise RuntimeError(
            f"gunicorn did not start:\n{(workdir / 'gunicorn.log').read_text(errors='replace')}"
        )
    return workers[0], url


# --- phases ------------------------------------------------------------------------------------------


def phase_raw(args: Any, workdir: Path, pids: dict[str, int]) -> dict[str, Any]:
    from scanning.engine.clamd import ClamdClient

    folder = workdir / "raw"
    folder.mkdir()
    files = []
    for i in range(args.count):
        path = folder / f"obj-{i:05d}.bin"
        path.write_bytes(os.urandom(args.size))
        files.append(path)
    os.sync()
    client = ClamdClient(args.clamd, timeout=30, scan_timeout=300)

    def scan(path: Path) -> str:
        with open(path, "rb") as fh:
            return client.scan_stream(iter(lambda: fh.read(common.CHUNK), b"")).status

    common.log(f"raw: {args.count} files, {args.threads} threads")
    cpu0 = {n: common.cpu_seconds(p) for n, p in pids.items()}
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        statuses = Counter(pool.map(scan, files))
    wall = time.perf_counter() - started
    cpu1 = {n: common.cpu_seconds(p) for n, p in pids.items()}
    shutil.rmtree(folder)
    return {"wall": wall, "cpu": {n: cpu1[n] - cpu0[n] for n in pids}, "verdicts": dict(statuses)}


def phase_baseline(args: Any, s3: Any, bucket: str, workdir: Path, pids: dict[str, int]) -> dict[str, Any]:
    from scanning.engine.clamd import ClamdClient

    objects = common.upload(s3, bucket, args.count, args.size, "baseline")
    client = ClamdClient(args.clamd, timeout=30, scan_timeout=300)
    spool = workdir / "baseline"
    spool.mkdir()

    def one(item: tuple[str, str]) -> str:
        key, _ = item
        with tempfile.NamedTemporaryFile(dir=spool) as fh:
            s3.download_fileobj(bucket, key, fh)
            fh.flush()
            fh.seek(0)
            status = client.scan_stream(iter(lambda: fh.read(common.CHUNK), b"")).status
        s3.put_object_tagging(
            Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": "scan-result", "Value": status}]}
        )
        return status

    common.log(f"baseline: download, scan, tag {args.count} objects, {args.threads} threads")
    cpu0 = {n: common.cpu_seconds(p) for n, p in pids.items()}
    self0 = time.process_time()
    args.moto_log.mark()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        statuses = Counter(pool.map(one, objects))
    wall = time.perf_counter() - started
    cpu1 = {n: common.cpu_seconds(p) for n, p in pids.items()}
    cpu = {n: cpu1[n] - cpu0[n] for n in pids}
    cpu["scanner (this process)"] = time.process_time() - self0
    return {"wall": wall, "cpu": cpu, "verdicts": dict(statuses), "s3": args.moto_log.calls_since_mark()}


def _wait_results(bucket: Any, count: int, timeout: float, worker: Any) -> list[Any]:
    from django_scopes import scopes_disabled

    from scanning.models import ScanResult

    deadline = time.monotonic() + timeout
    while True:
        with scopes_disabled():
            rows = ScanResult.objects.filter(bucket=bucket).exclude(verdict="")
            done = rows.filter(action_status="done").count()
        if done >= count:
            with scopes_disabled():
                return list(rows)
        worker.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done}/{count} done after {timeout:g}s\n{worker.log()[-3000:]}")
        time.sleep(0.05)


def phase_events(args: Any, s3: Any, broker: Any, worker: Any, pids: dict[str, int]) -> dict[str, Any]:
    tenant, bucket = common.make_bucket_rows(s3, "event")
    objects = common.upload(s3, bucket.name, args.count, args.size, "event")
    messages = [common.message_for(tenant, bucket, k, e, args.size)[1] for k, e in objects]
    # Warm-up, not counted: each worker thread's first scan opens its database connection.
    warm_tenant, warm_bucket = common.make_bucket_rows(s3, "warm")
    for key, etag in common.upload(s3, warm_bucket.name, args.threads * 2, args.size, "warm"):
        broker.enqueue(common.message_for(warm_tenant, warm_bucket, key, etag, args.size)[1])
    _wait_results(warm_bucket, args.threads * 2, args.timeout, worker)
    common.log(f"event path: {args.count} scan_object messages")
    cpu0 = {n: common.cpu_seconds(p) for n, p in pids.items()}
    args.moto_log.mark()
    started = time.time()
    for message in messages:
        broker.enqueue(message)
    results = _wait_results(bucket, args.count, args.timeout, worker)
    cpu1 = {n: common.cpu_seconds(p) for n, p in pids.items()}
    wall = time.time() - started
    return {
        "wall": wall,
        "cpu": {n: cpu1[n] - cpu0[n] for n in pids},
        "verdicts": dict(Counter(r.verdict for r in results)),
        "s3": args.moto_log.calls_since_mark(),
    }


def phase_bucket_scan(args: Any, s3: Any, worker: Any, pids: dict[str, int]) -> dict[str, Any]:
    from django.db import transaction
    from django_scopes import scope, scopes_disabled

    from scanning.jobs import services as jobs
    from scanning.models import JobStatus, ScanJob

    tenant, bucket = common.make_bucket_rows(s3, "job")
    common.upload(s3, bucket.name, args.count, args.size, "job")
    common.log(f"bucket scan: {args.count} objects")
    cpu0 = {n: common.cpu_seconds(p) for n, p in pids.items()}
    args.moto_log.mark()
    started = time.time()
    with scope(tenant=tenant), transaction.atomic():
        job = jobs.start_bucket_scan(tenant, None, bucket)
    results = _wait_results(bucket, args.count, args.timeout, worker)
    deadline = time.monotonic() + 60
    while True:
        with scopes_disabled():
            status = ScanJob.objects.filter(pk=job.pk).values_list("status", flat=True).get()
        if status == JobStatus.DONE or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    cpu1 = {n: common.cpu_seconds(p) for n, p in pids.items()}
    wall = time.time() - started
    return {
        "wall": wall,
        "cpu": {n: cpu1[n] - cpu0[n] for n in pids},
        "verdicts": dict(Counter(r.verdict for r in results)),
        "job": status,
        "s3": args.moto_log.calls_since_mark(),
    }


def _statement_kind(sql: str) -> str:
    # Words outside parentheses only: a subquery's FROM (an EXISTS in the select list) is not the table.
    depth, top = 0, []
    for char in sql:
        depth += char == "("
        top.append(char if depth == 0 else " ")
        depth -= char == ")" and depth > 0
    words = "".join(top).split()
    verb = words[0].upper() if words else "?"
    marker = {"SELECT": "FROM", "INSERT": "INTO", "UPDATE": "UPDATE", "DELETE": "FROM"}.get(verb)
    if marker and marker in words[:-1]:
        return f"{verb} {words[words.index(marker) + 1].strip(chr(34))}"
    return verb


def _cpu_one_at_a_time(args: Any, s3: Any, scan_object: Any) -> list[float]:
    """This process's CPU seconds per event-path scan, 5 x SAMPLE objects one at a time, no query capture:
    steadier than the worker's figure on a busy machine (no threads, no broker), the same code."""
    tenant, bucket = common.make_bucket_rows(s3, "cpuevent")
    messages = [
        common.message_for(tenant, bucket, key, etag, args.size)[1]
        for key, etag in common.upload(s3, bucket.name, args.sample * 5, args.size, "cpu")
    ]
    spent = []
    for message in messages:
        started = time.process_time()
        scan_object.fn(*message.args, **message.kwargs)
        spent.append(time.process_time() - started)
    return spent


def phase_sql(args: Any, s3: Any) -> dict[str, Any]:
    """Statements per object, one object at a time in this process (the actor functions called directly)."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django_scopes import scope

    from scanning.jobs import services as jobs
    from scanning.pipeline import usage
    from scanning.pipeline.services import scan_object

    out: dict[str, Any] = {}
    # As in a worker: usage added up in the process; written here once after each path's sample.
    usage.start_batching()
    usage.PENDING.flush_seconds = float("inf")

    def flush_statements() -> int:
        with CaptureQueriesContext(connection) as captured:
            usage.flush()
        return len(captured)

    # Warm-up: the engine identity and the boto3 client are per process, asked once.
    tenant, bucket = common.make_bucket_rows(s3, "sqlwarm")
    for key, etag in common.upload(s3, bucket.name, 2, args.size, "warm"):
        message = common.message_for(tenant, bucket, key, etag, args.size)[1]
        scan_object.fn(*message.args, **message.kwargs)

    flush_statements()
    tenant, bucket = common.make_bucket_rows(s3, "sqlevent")
    kinds: Counter[str] = Counter()
    per_object = []
    for key, etag in common.upload(s3, bucket.name, args.sample, args.size, "sql"):
        message = common.message_for(tenant, bucket, key, etag, args.size)[1]
        with CaptureQueriesContext(connection) as captured:
            scan_object.fn(*message.args, **message.kwargs)
        per_object.append(len(captured))
        kinds.update(_statement_kind(q["sql"]) for q in captured.captured_queries)
    out["event"] = (per_object, kinds, flush_statements())
    out["event_cpu"] = _cpu_one_at_a_time(args, s3, scan_object)
    flush_statements()

    tenant, bucket = common.make_bucket_rows(s3, "sqljob")
    common.upload(s3, bucket.name, args.sample, args.size, "sql")
    sent: list[Any] = []
    original_send, original_list = jobs._send, jobs.list_job.send
    jobs._send = sent.extend  # type: ignore[assignment]
    jobs.list_job.send = lambda *a, **k: None  # type: ignore[method-assign]
    try:
        kinds = Counter()
        with CaptureQueriesContext(connection) as captured:
            with scope(tenant=tenant), transaction.atomic():
                job = jobs.start_bucket_scan(tenant, None, bucket)
            with scope(tenant=tenant):
                jobs.list_slice(str(job.pk))
        listing = len(captured)
        kinds.update(_statement_kind(q["sql"]) for q in captured.captured_queries)
        per_object = []
        for message in sent:
            with CaptureQueriesContext(connection) as captured:
                scan_object.fn(*message.args, **message.kwargs)
            per_object.append(len(captured))
            kinds.update(_statement_kind(q["sql"]) for q in captured.captured_queries)
    finally:
        jobs._send = original_send  # type: ignore[assignment]
        jobs.list_job.send = original_list  # type: ignore[method-assign]
    out["job"] = (per_object, kinds, listing, flush_statements())
    usage.PENDING.flush_seconds = usage.FLUSH_SECONDS
    usage.stop_batching()
    return out


# --- main --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--count", type=int, default=300, help="objects per phase (default 300, at most 2000)"
    )
    parser.add_argument(
        "--size", type=common.parse_size, default=256 * KiB, help="object size (default 256K)"
    )
    parser.add_argument("--threads", type=int, default=4, help="scan threads everywhere (default 4)")
    parser.add_argument("--sample", type=int, default=20, help="objects per path for the SQL count")
    parser.add_argument(
        "--database-url", default=os.environ.get("S3AV_BENCH_DATABASE_URL", common.DEFAULT_DB)
    )
    parser.add_argument(
        "--broker-url", default=os.environ.get("S3AV_BENCH_BROKER_URL", common.DEFAULT_BROKER)
    )
    parser.add_argument("--clamd", default=os.environ.get("S3AV_CLAMD") or common.DEFAULT_CLAMD)
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for each phase")
    parser.add_argument(
        "--keep-alive",
        action="store_true",
        help="serve moto from gunicorn, which keeps connections open as S3 does (moto's server closes each)",
    )
    args = parser.parse_args()
    if not 1 <= args.count <= 2000:
        parser.error("--count must be between 1 and 2000")

    from scanning.engine.clamd import ClamdClient

    clamd = ClamdClient(args.clamd, timeout=10)
    clamd.ping()
    clamd_version = clamd.version().engine
    clamd_pid = common.clamd_pid_of(args.clamd)
    if not clamd_pid:
        raise SystemExit(f"clamd's pid is unknown (no clamd.pid beside {args.clamd}): its CPU cannot be read")
    common.ensure_database(args.database_url)
    common.ensure_vhost(args.broker_url)

    with ExitStack() as stack:
        (ROOT / "var").mkdir(exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="s3av-cost-", dir=ROOT / "var"))
        stack.callback(shutil.rmtree, workdir, True)
        if args.keep_alive:
            moto_pid, endpoint = start_moto_keep_alive(stack, workdir)
        else:
            moto, endpoint = common.start_moto(stack, workdir)
            moto_pid = moto.pid
        args.moto_log = MotoLog(workdir / "moto.log")
        pids = {"clamd": clamd_pid, "moto": moto_pid}

        raw = phase_raw(args, workdir, pids)

        env = {
            **common.AWS_ENV,
            "DATABASE_URL": args.database_url,
            "S3AV_BROKER_URL": args.broker_url,
            "S3AV_CLAMD": args.clamd,
            "S3AV_AWS_ENDPOINT_URL": endpoint,
            "S3AV_SECRET_KEY": os.environ.get("S3AV_SECRET_KEY")
            or "bench-secret-key-bench-secret-key-0123456789",
            "S3AV_AWS_CONFUSED_DEPUTY_CHECK": "0",
            "S3AV_LOG_LEVEL": "WARNING",
        }
        common.setup_django(env)
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        from linked_accounts.aws import make_client

        s3 = make_client("s3", endpoint_url=endpoint, region="us-east-1", credentials=None)
        baseline_bucket = f"s3av-bench-baseline-{uuid.uuid4().hex[:10]}"
        s3.create_bucket(Bucket=baseline_bucket)
        base = phase_baseline(args, s3, baseline_bucket, workdir, pids)

        sql = phase_sql(args, s3)

        logging.getLogger("pika").setLevel(logging.ERROR)
        broker = RabbitmqBroker(url=args.broker_url)
        stack.callback(broker.close)
        for queue in ("scans", "default", "listing"):
            broker.declare_queue(queue)
            broker.flush(queue)
        worker = common.Worker(
            stack,
            workdir,
            args.threads,
            {**os.environ, **env, "S3AV_LOG_LEVEL": "INFO", "dramatiq_queue_prefetch": str(args.threads)},
        )
        pids = {"worker": worker.pid, **pids}
        common.log(f"worker pid {worker.pid}, moto {endpoint}")
        events = phase_events(args, s3, broker, worker, pids)
        job = phase_bucket_scan(args, s3, worker, pids)
        worker.check()
        report(args, clamd_version, raw, base, events, job, sql)
    return 0


def usage_seconds() -> float:
    from scanning.pipeline import usage

    return usage.FLUSH_SECONDS


def report(args: Any, clamd_version: str, raw: dict, base: dict, events: dict, job: dict, sql: dict) -> None:
    n = args.count
    print()
    print(
        f"s3av per-object cost  {datetime.now(UTC):%Y-%m-%d %H:%M UTC}  {clamd_version}  "
        f"{os.cpu_count()} CPUs  count={n} size={args.size} B threads={args.threads}  "
        f"S3: {'moto under gunicorn (keep-alive)' if args.keep_alive else 'moto server (Connection: close)'}"
    )
    print()
    print(f"{'':40} {'obj/s':>7} {'wall s':>7} {'scanner':>9} {'clamd':>7} {'moto':>7}   CPU ms per object")
    rows = [
        ("raw clamd INSTREAM (disk)", raw, None),
        ("download, scan, tag (peers' way)", base, "scanner (this process)"),
        ("s3av event path (worker)", events, "worker"),
        ("s3av bucket scan (worker)", job, "worker"),
    ]
    for label, phase, scanner in rows:
        cpu = phase["cpu"]
        own = f"{cpu[scanner] * 1000 / n:9.1f}" if scanner else f"{'-':>9}"
        print(
            f"{label:40} {n / phase['wall']:7.1f} {phase['wall']:7.1f} {own} "
            f"{cpu['clamd'] * 1000 / n:7.1f} {cpu['moto'] * 1000 / n:7.1f}"
        )
    for label, phase in (("event path", events), ("bucket scan", job)):
        ratio = phase["cpu"]["worker"] / max(phase["cpu"]["clamd"], 1e-9)
        print(
            f"  {label}: worker CPU / clamd CPU = {ratio:.2f} (target <= 1); "
            f"throughput / peers' way = {base['wall'] / phase['wall']:.2f} (target >= 1); "
            f"/ raw = {raw['wall'] / phase['wall']:.2f}"
        )
    print(
        f"  verdicts: raw {raw['verdicts']}, peers {base['verdicts']}, events {events['verdicts']}, "
        f"bucket scan {job['verdicts']} (job {job['job']})"
    )
    print()
    print("S3 calls per object (moto's request log, during each phase):")
    for label, phase in (("peers' way", base), ("event path", events), ("bucket scan", job)):
        calls = phase["s3"]
        detail = ", ".join(f"{op} {count / n:.2f}" for op, count in sorted(calls.items()))
        print(f"  {label:12} {sum(calls.values()) / n:5.2f}  ({detail})")
    print()
    print(f"SQL statements per object (one at a time in the bench process, {args.sample} objects per path):")
    event_counts, event_kinds, event_flush = sql["event"]
    job_counts, job_kinds, listing, job_flush = sql["job"]
    print(
        f"  event path   {sum(event_counts) / len(event_counts):5.2f}  (min {min(event_counts)}, "
        f"max {max(event_counts)}; target <= 4)"
    )
    print(
        f"  bucket scan  {(sum(job_counts) + listing) / len(job_counts):5.2f}  (scan min {min(job_counts)}, "
        f"max {max(job_counts)}, plus {listing} for starting and listing the job; target <= 5)"
    )
    print(
        f"  usage, written every {usage_seconds():g} s per worker process, not per object: "
        f"{event_flush} statements after the event sample, {job_flush} after the bucket scan's"
    )
    cpu = sorted(sql["event_cpu"])
    print(
        f"  event path CPU ms per object of this process, {len(cpu)} objects one at a time: median "
        f"{cpu[len(cpu) // 2] * 1000:.1f}, mean {sum(cpu) * 1000 / len(cpu):.1f}"
    )
    for label, kinds, count in (("event path", event_kinds, len(event_counts)),
                                ("bucket scan", job_kinds, len(job_counts))):  # fmt: skip
        detail = ", ".join(f"{kind} {c / count:.2f}" for kind, c in kinds.most_common())
        print(f"    {label}: {detail}")


if __name__ == "__main__":
    sys.exit(main())

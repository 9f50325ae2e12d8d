"""Benchmark of event scanning: latency from PutObject to a final verdict under a steady upload stream.

Run from the repository root (clamd, PostgreSQL and RabbitMQ or Redis must be up; moto's server, one
``ingest_events`` and one worker are started here and stopped at the end, also on error or Ctrl-C):

    source scripts/test-env.sh && .venv/bin/python bench/event_latency.py [--rate 5] [--duration 30]

Setup uses the service functions (create_tenant, link_account, verify_account, discover_buckets,
protect_bucket), so the bucket gets its real SQS queue and S3 event notification on moto. Then objects
(small, distinct, 1 in 10 is EICAR) are uploaded at ``--rate`` per second for ``--duration`` seconds.
For each: PutObject returned -> claim row created (``ScanResult.created_at``) -> verdict
(``ScanResult.scanned_at``) -> tags visible on the object (GetObjectTagging polled from here).

A short probe first measures moto's own delivery (PutObject returned -> message received by a long poll
on a second, unprotected bucket's queue), so the rest of the latency can be told apart.

Prints figures; asserts nothing. Every wait has a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/s3av_bench_events"
BROKERS = {
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/%2F",
    "redis": "redis://127.0.0.1:6379/3",
}
DEFAULT_CLAMD = f"unix://{ROOT / 'var' / 'clamav' / 'clamd.sock'}"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
ACCOUNT_ID = "123456789012"  # moto's default account
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live children."""
    total = 0.0
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        pids.append(int(entry))
            except OSError:
                continue
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except OSError:
            pass
    return total


# --- processes ---------------------------------------------------------------------------------------


class Proc:
    """A child process in its own session, logging to a file; killed (group) on exit."""

    def __init__(self, stack: ExitStack, name: str, argv: list[str], env: dict[str, str], logdir: Path):
        self.name = name
        self.log_path = logdir / f"{name}.log"
        logfile = open(self.log_path, "wb")  # noqa: SIM115 - closed by the stack
        stack.callback(logfile.close)
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
        )
        stack.callback(self.stop)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            self.check()
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not log {text!r} within {timeout:g}s:\n{self.log()[-3000:]}")

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=15)
        except ProcessLookupError:
            pass


def start_moto(stack: ExitStack, env: dict[str, str], logdir: Path) -> tuple[Proc, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Proc(
        stack, "moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env, logdir
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        proc.check()
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):  # noqa: S310 - loopback
                return proc, url
        except urllib.error.HTTPError:
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto did not start:\n{proc.log()}")


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            log(f"created database {name}")


def flush_broker(url: str) -> None:
    """Drop leftovers of an earlier (interrupted) run from the scans queue of this broker."""
    from scanning.pipeline.services import scan_object

    broker = scan_object.broker
    broker.declare_queue("scans")
    broker.flush("scans")


# --- setup with the service functions ----------------------------------------------------------------


def setup_tenant(s3: Any) -> tuple[Any, Any]:
    from django_scopes import scope, scopes_disabled

    from accounts.services import Actor, create_tenant
    from linked_accounts import services as link_services
    from scanning.buckets import discovery
    from scanning.buckets.protection import protect_bucket
    from scanning.models import Bucket

    # Buckets protected by earlier runs point at queues of a moto that is gone: ingest would poll them
    # (and back off on errors) alongside ours. This database is the bench's own.
    with scopes_disabled():
        stale = Bucket.objects.filter(protected=True).update(protected=False)
    if stale:
        log(f"unprotected {stale} bucket(s) left by earlier runs")

    actor = Actor.system("bench")
    suffix = uuid.uuid4().hex[:8]
    name = f"s3av-bench-events-{suffix}"
    s3.create_bucket(Bucket=name)
    tenant, _, _ = create_tenant(actor, f"Bench events {suffix}", f"bench-events-{suffix}@example.com")
    with scope(tenant=tenant):
        account = link_services.link_account(tenant, actor, ACCOUNT_ID, "bench")
        link_services.verify_account(tenant, actor, account, f"arn:aws:iam::{ACCOUNT_ID}:role/s3av-scanner")
        discovery.discover_buckets(tenant, actor, account)
        bucket = Bucket.objects.get(tenant=tenant, account=account, name=name)
        protect_bucket(tenant, actor, bucket)
        bucket.refresh_from_db()
    return tenant, bucket


# --- moto's own delivery -----------------------------------------------------------------------------


def probe_delivery(s3: Any, sqs: Any, count: int, rate: float, wait: int) -> list[float]:
    """PutObject returned -> message received, on a queue no one else polls (long poll ``wait`` s)."""
    name = f"s3av-bench-probe-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={
            "QueueConfigurations": [{"Id": "probe", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    sqs.purge_queue(QueueUrl=url)
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    done = threading.Event()

    def receiver() -> None:
        deadline = time.monotonic() + count / rate + 30
        while not done.is_set() and time.monotonic() < deadline and len(got) < count:
            for message in sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
            ).get("Messages", []):
                now = time.monotonic()
                for record in json.loads(message["Body"]).get("Records", []):
                    got.setdefault(record["s3"]["object"]["key"], now)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    thread = threading.Thread(target=receiver, daemon=True)
    thread.start()
    time.sleep(0.5)  # the first long poll is in flight
    start = time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        key = f"probe-{i:04d}"
        s3.put_object(Bucket=name, Key=key, Body=os.urandom(64))
        sent[key] = time.monotonic()
    thread.join(timeout=wait + 15)
    done.set()
    return [got[k] - sent[k] for k in sent if k in got]


# --- the measured stream -----------------------------------------------------------------------------


class Upload:
    __slots__ = (
        "key",
        "infected",
        "put_wall",
        "put_mono",
        "etag",
        "verdict",
        "claim",
        "final",
        "tagged",
        "action",
    )

    def __init__(self, key: str, infected: bool) -> None:
        self.key = key
        self.infected = infected
        self.put_wall = 0.0
        self.put_mono = 0.0
        self.etag = ""
        self.verdict = ""
        self.claim: float | None = None  # seconds after PutObject returned
        self.final: float | None = None
        self.tagged: float | None = None
        self.action = ""


def body_for(i: int, infected: bool) -> bytes:
    if infected:
        # ClamAV matches EICAR only as the whole file (trailing whitespace at most): same bytes each time.
        return EICAR
    return f"bench object {i} {uuid.uuid4()}\n".encode() + os.urandom(1024)


def uploader(s3: Any, bucket: str, uploads: list[Upload], rate: float, prefix: str, lag: list[float]) -> None:
    start = time.monotonic()
    for i, up in enumerate(uploads):
        target = start + i / rate
        time.sleep(max(0.0, target - time.monotonic()))
        lag.append(max(0.0, time.monotonic() - target))
        up.etag = s3.put_object(Bucket=bucket, Key=up.key, Body=body_for(i, up.infected))["ETag"].strip('"')
        up.put_mono = time.monotonic()
        up.put_wall = time.time()


def watch(
    bucket: Any,
    uploads: list[Upload],
    s3: Any,
    check_tags: bool,
    deadline: float,
    procs: list[Proc],
    poll: float = 0.05,
) -> None:
    """Poll the database for final verdicts (and the object for tags) until all are in or the deadline."""
    from django_scopes import scopes_disabled

    from scanning.models import ScanResult

    by_key = {u.key: u for u in uploads}
    while time.monotonic() < deadline:
        waiting = [u.key for u in uploads if u.put_mono and u.final is None]
        if waiting:
            with scopes_disabled():
                rows = list(
                    ScanResult.objects.filter(bucket_id=bucket.pk, key__in=waiting)
                    .exclude(verdict="")
                    .values_list("key", "verdict", "created_at", "scanned_at")
                )
            for key, verdict, created_at, scanned_at in rows:
                up = by_key[key]
                up.verdict = verdict
                up.claim = created_at.timestamp() - up.put_wall
                up.final = scanned_at.timestamp() - up.put_wall
        if check_tags:
            for up in uploads:
                if up.final is not None and up.tagged is None:
                    tags = s3.get_object_tagging(Bucket=bucket.name, Key=up.key)["TagSet"]
                    if any(t["Key"] == "scan-result" for t in tags):
                        up.tagged = time.monotonic() - up.put_mono
        if all(u.put_mono for u in uploads) and all(
            u.final is not None and (u.tagged is not None or not check_tags) for u in uploads
        ):
            break
        for proc in procs:
            proc.check()
        time.sleep(poll)
    with scopes_disabled():
        actions = dict(ScanResult.objects.filter(bucket_id=bucket.pk).values_list("key", "action_status"))
    for up in uploads:
        up.action = actions.get(up.key, "")


def row(label: str, values: list[float], n_expected: int | None = None) -> str:
    if not values:
        return f"  {label:<28} {'-':>8} {'-':>8} {'-':>8} {'-':>8}   n=0"
    ms = [v * 1000 for v in values]
    extra = f" of {n_expected}" if n_expected is not None else ""
    return (
        f"  {label:<28} {pct(ms, 50):8.0f} {pct(ms, 95):8.0f} {max(ms):8.0f} {min(ms):8.0f}"
        f"   n={len(ms)}{extra}"
    )


# --- main --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=5.0, help="uploads per second (default 5)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of uploads (default 30)")
    parser.add_argument("--wait", type=int, default=10, help="ingest_events --wait (long-poll s, default 10)")
    parser.add_argument("--threads", type=int, default=2, help="worker threads (default 2)")
    parser.add_argument("--broker", choices=sorted(BROKERS), default="rabbitmq", help="default rabbitmq")
    parser.add_argument("--broker-url", help="overrides --broker")
    parser.add_argument(
        "--database-url", default=os.environ.get("S3AV_BENCH_EVENTS_DATABASE_URL", DEFAULT_DB)
    )
    parser.add_argument("--clamd", default=os.environ.get("S3AV_CLAMD", DEFAULT_CLAMD))
    parser.add_argument("--no-tags", action="store_true", help="do not poll the objects for their tags")
    parser.add_argument("--warmup", type=int, default=3, help="objects scanned before measuring (default 3)")
    parser.add_argument("--probe", type=int, default=20, help="objects for the moto delivery probe; 0: skip")
    parser.add_argument("--drain-timeout", type=float, default=90.0, help="wait after the last upload (s)")
    args = parser.parse_args()
    broker_url = args.broker_url or BROKERS[args.broker]

    env = {
        "DATABASE_URL": args.database_url,
        "S3AV_BROKER_URL": broker_url,
        "S3AV_CLAMD": args.clamd,
        "S3AV_SECRET_KEY": os.environ.get("S3AV_SECRET_KEY", "bench-secret-key-bench-secret-key-0123456789"),
        "S3AV_AWS_CONFUSED_DEPUTY_CHECK": "false",
        "S3AV_LOG_LEVEL": "INFO",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    logdir = ROOT / "var" / f"bench-events-{time.strftime('%Y%m%d-%H%M%S')}"
    logdir.mkdir(parents=True, exist_ok=True)

    with ExitStack() as stack:
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        stack.callback(signal.signal, signal.SIGTERM, previous)
        child_env = {**os.environ, **env}
        moto, endpoint = start_moto(stack, child_env, logdir)
        env["S3AV_AWS_ENDPOINT_URL"] = child_env["S3AV_AWS_ENDPOINT_URL"] = endpoint
        log(f"moto on {endpoint}; logs in {logdir.relative_to(ROOT)}")

        ensure_database(args.database_url)
        os.environ.update(env)
        os.environ["S3AV_LOG_LEVEL"] = "WARNING"  # this process: no pika chatter; the children log INFO
        os.environ["DJANGO_SETTINGS_MODULE"] = "s3av.settings"
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        flush_broker(broker_url)

        from linked_accounts.aws import make_client

        s3 = make_client("s3", endpoint_url=endpoint, region="us-east-1")
        sqs = make_client("sqs", endpoint_url=endpoint, region="us-east-1")

        probe: list[float] = []
        if args.probe:
            log(f"probe: moto delivery of {args.probe} events at {args.rate:g}/s, long poll {args.wait}s")
            probe = probe_delivery(s3, sqs, args.probe, args.rate, args.wait)

        tenant, bucket = setup_tenant(s3)
        log(f"tenant {tenant.slug}, bucket {bucket.name} protected (queue {bucket.protection['queue_url']})")

        worker = Proc(
            stack,
            "worker",
            [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", str(args.threads)],
            {**child_env, "dramatiq_queue_prefetch": "1"},
            logdir,
        )
        ingest = Proc(
            stack,
            "ingest",
            [sys.executable, "manage.py", "ingest_events", "--wait", str(args.wait)],
            child_env,
            logdir,
        )
        worker.wait_for("ready for action", 90)
        ingest.wait_for("ingest_events started", 60)
        procs = [moto, worker, ingest]
        log(
            f"worker ({args.threads} threads) and ingest_events (--wait {args.wait}) running; "
            f"broker {broker_url}"
        )

        check_tags = not args.no_tags
        if args.warmup:
            warm = [Upload(f"warmup/{i}-{uuid.uuid4().hex[:6]}.txt", False) for i in range(args.warmup)]
            uploader(s3, bucket.name, warm, args.rate, "warmup", [])
            watch(bucket, warm, s3, check_tags, time.monotonic() + 60, procs)
            if any(u.final is None for u in warm):
                raise RuntimeError(f"warm-up objects never got a verdict; see {logdir}")
            log(f"warm-up: {args.warmup} objects scanned")

        count = max(1, round(args.rate * args.duration))
        uploads = [Upload(f"in/{i:05d}-{uuid.uuid4().hex[:8]}.bin", i % 10 == 9) for i in range(count)]
        lag: list[float] = []
        cpu0 = {p.name: tree_cpu(p.process.pid) for p in procs}
        clamd_pid = _clamd_pid(args.clamd)
        cpu0["clamd"] = tree_cpu(clamd_pid) if clamd_pid else float("nan")
        log(f"uploading {count} objects at {args.rate:g}/s ({count // 10} EICAR)")
        started = time.monotonic()
        thread = threading.Thread(
            target=uploader, args=(s3, bucket.name, uploads, args.rate, "in", lag), daemon=True
        )
        thread.start()
        watch(bucket, uploads, s3, check_tags, started + args.duration + args.drain_timeout, procs)
        thread.join(timeout=5)
        wall = time.monotonic() - started
        cpu = {p.name: tree_cpu(p.process.pid) - cpu0[p.name] for p in procs}
        cpu["clamd"] = (tree_cpu(clamd_pid) if clamd_pid else float("nan")) - cpu0["clamd"]

        report(args, broker_url, uploads, lag, probe, wall, cpu, check_tags)
        log(f"stopping; logs in {logdir.relative_to(ROOT)}")
    return 0


def _clamd_pid(address: str) -> int:
    path = urlsplit(address).path
    try:
        return int((Path(path).parent / "clamd.pid").read_text().strip()) if path else 0
    except (OSError, ValueError):
        return 0


def report(
    args: argparse.Namespace,
    broker_url: str,
    uploads: list[Upload],
    lag: list[float],
    probe: list[float],
    wall: float,
    cpu: dict[str, float],
    check_tags: bool,
) -> None:
    n = len(uploads)
    final = [u for u in uploads if u.final is not None]
    wrong = [u for u in final if u.verdict != ("Infected" if u.infected else "Clean")]
    missing = [u for u in uploads if u.final is None]
    first_put = min((u.put_wall for u in uploads if u.put_wall), default=0.0)
    last_final = max((u.put_wall + u.final for u in final), default=first_put)
    span = last_final - first_put
    print()
    print(
        f"Event scanning latency: {n} uploads at {args.rate:g}/s for {args.duration:g}s, "
        f"ingest --wait {args.wait}, worker 1 process x {args.threads} threads, "
        f"broker {urlsplit(broker_url).scheme}"
    )
    print(f"  {'ms':<28} {'p50':>8} {'p95':>8} {'max':>8} {'min':>8}")
    if probe:
        # Negative: moto sends the message inside PutObject, so a waiting long poll can return first.
        print(row("moto delivery (probe)", probe, args.probe))
    print(row("put -> claimed (worker)", [u.claim for u in final if u.claim is not None]))
    print(row("claimed -> verdict", [u.final - u.claim for u in final if u.claim is not None]))
    print(row("put -> verdict", [u.final for u in final], n))
    print(row("  clean", [u.final for u in final if not u.infected]))
    print(row("  EICAR", [u.final for u in final if u.infected]))
    if check_tags:
        print(row("put -> tag on object", [u.tagged for u in uploads if u.tagged is not None], n))
    print(
        f"  throughput: {len(final) / span if span > 0 else float('nan'):.2f} verdicts/s "
        f"(first put -> last verdict {span:.1f}s); upload schedule lag p95 {pct(lag, 95) * 1000:.0f} ms"
    )
    print(
        f"  verdicts: {len(final)}/{n} final, {len(wrong)} unexpected, {len(missing)} missing; "
        f"actions done {sum(u.action == 'done' for u in uploads)}/{n}"
    )
    print(
        "  CPU s during the run: "
        + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        + f" (wall {wall:.1f}s)"
    )
    for u in wrong[:5]:
        print(f"    unexpected: {u.key} infected={u.infected} verdict={u.verdict}")
    for u in missing[:5]:
        print(f"    missing: {u.key}")


if __name__ == "__main__":
    sys.exit(main())

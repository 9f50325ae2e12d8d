"""Benchmark of the scan pipeline: raw clamd INSTREAM vs the whole worker pipeline, and worker memory.

Run from the repository root (clamd, PostgreSQL and RabbitMQ must be up; moto's server and the worker are
started here and stopped at the end, also on error):

    source scripts/test-env.sh && .venv/bin/python bench/pipeline.py [--count 200] [--size 1M] [--threads 2]

1. Raw clamd: COUNT files of SIZE random (distinct) bytes on local disk, streamed with
   ``ClamdClient.scan_stream`` from THREADS threads.
2. Pipeline: COUNT fresh random objects on moto's S3 server, ``scan_object`` messages on RabbitMQ, one
   ``rundramatiq --processes 1 --threads THREADS`` worker; wall time until every ScanResult is final.
   When the pipeline falls short of 80 % of raw, a step-by-step profile of one scan (done in this
   process, on the same endpoints) says where the time goes.
3. Memory: one BIG_SIZE object (10^9 bytes by default) scanned by the same worker while its RSS is
   sampled every 50 ms.

Prints figures; asserts nothing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
CHUNK = MiB  # what the worker reads from S3 per chunk (s3ops.stream_object)
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/s3av_bench"
# A vhost of its own: the integration tests flush and consume the "scans" queue of "/" while they run.
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/s3av_bench"
DEFAULT_CLAMD = f"unix://{ROOT / 'var' / 'clamav' / 'clamd.sock'}"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- small helpers -----------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 1024, "M": MiB, "G": 1024 * MiB}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(float(text))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process, in bytes."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


def random_chunks(size: int, chunk: int = 8 * MiB) -> Iterator[bytes]:
    left = size
    while left > 0:
        n = min(chunk, left)
        yield os.urandom(n)
        left -= n


# --- external pieces ---------------------------------------------------------------------------------


def clamd_pid_of(address: str) -> int:
    """clamd's pid from the pid file next to its socket (scripts/clamav.sh layout), or 0 if unknown."""
    path = urlsplit(address).path
    try:
        return int((Path(path).parent / "clamd.pid").read_text().strip()) if path else 0
    except (OSError, ValueError):
        return 0


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            log(f"created database {name}")


def ensure_vhost(url: str) -> None:
    vhost = unquote(urlsplit(url).path.lstrip("/")) or "/"
    if vhost == "/" or not shutil.which("rabbitmqctl"):
        return
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, timeout=60, check=False
    ).stdout.split()
    if vhost not in listed:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], capture_output=True, timeout=60, check=True)
        log(f"created RabbitMQ vhost {vhost}")
    user = urlsplit(url).username or "guest"
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"],
        capture_output=True,
        timeout=60,
        check=True,
    )


def start_moto(stack: ExitStack, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logfile = open(workdir / "moto.log", "wb")  # noqa: SIM115 - closed by the stack
    stack.callback(logfile.close)
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=logfile,
        stderr=subprocess.STDOUT,
        env={**os.environ, **AWS_ENV},
        start_new_session=True,
    )
    stack.callback(stop_process, process, "moto")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):  # noqa: S310 - loopback
                return process, url
        except urllib.error.HTTPError:
            return process, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto did not start:\n{(workdir / 'moto.log').read_text(errors='replace')}")


def stop_process(process: subprocess.Popen[bytes], name: str) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=15)
    log(f"stopped {name} (pid {process.pid})")


class Worker:
    def __init__(self, stack: ExitStack, workdir: Path, threads: int, env: dict[str, str]) -> None:
        self.log_path = workdir / "worker.log"
        logfile = open(self.log_path, "wb")  # noqa: SIM115 - closed by the stack
        stack.callback(logfile.close)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", str(threads)],
            cwd=ROOT,
            env=env,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stack.callback(stop_process, self.process, "worker")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if "ready for action" in self.log():
                break
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.log()}")
            time.sleep(0.2)
        else:
            raise RuntimeError(f"worker did not start:\n{self.log()}")
        # rundramatiq execs `dramatiq`, whose main process forks the worker process that runs actors.
        kids = children_of(self.process.pid)
        if len(kids) != 1:
            raise RuntimeError(f"expected one worker process under {self.process.pid}, found {kids}")
        self.pid = kids[0]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"worker died:\n{self.log()[-4000:]}")


# --- 1. raw clamd ------------------------------------------------------------------------------------


def bench_raw(clamd_address: str, count: int, size: int, threads: int, workdir: Path) -> dict[str, Any]:
    from scanning.engine.clamd import ClamdClient

    folder = workdir / "raw"
    folder.mkdir()
    files = []
    for i in range(count):
        path = folder / f"obj-{i:05d}.bin"
        path.write_bytes(os.urandom(size))
        files.append(path)
    os.sync()
    client = ClamdClient(clamd_address, timeout=30, scan_timeout=300)

    def scan(path: Path) -> tuple[float, str]:
        started = time.perf_counter()
        with open(path, "rb") as fh:
            reply = client.scan_stream(iter(lambda: fh.read(CHUNK), b""))
        return time.perf_counter() - started, reply.status

    log(f"raw clamd: {count} x {size} B from disk, {threads} threads")
    busy0 = machine_busy()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(scan, files))
    wall = time.perf_counter() - started
    busy1 = machine_busy()
    shutil.rmtree(folder)
    statuses = {s for _, s in results}
    latencies = [t for t, _ in results]
    return {
        "wall": wall,
        "objs": count / wall,
        "mibs": count * size / MiB / wall,
        "p50": pct(latencies, 50),
        "p95": pct(latencies, 95),
        "statuses": statuses,
        "cpu_busy": (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1),
    }


# --- Django side -------------------------------------------------------------------------------------


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "s3av.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def make_bucket_rows(s3: Any, label: str) -> tuple[Any, Any]:
    from django_scopes import scope

    from accounts.services import Actor, create_tenant
    from linked_accounts.models import AwsAccount
    from scanning.models import Bucket, ScanPolicy

    suffix = uuid.uuid4().hex[:10]
    tenant, _, _ = create_tenant(
        Actor.system("bench"), f"Bench {label} {suffix}", f"bench-{suffix}@example.com"
    )
    name = f"s3av-bench-{label}-{suffix}"
    s3.create_bucket(Bucket=name)
    with scope(tenant=tenant):
        account = AwsAccount.objects.create(
            tenant=tenant,
            account_id="123456789012",
            name="bench",
            role_arn="arn:aws:iam::123456789012:role/s3av",
            status=AwsAccount.Status.CONNECTED,
        )
        policy = ScanPolicy.objects.create(tenant=tenant, name=f"bench {suffix}")
        bucket = Bucket.objects.create(tenant=tenant, account=account, name=name, policy=policy)
    return tenant, bucket


def upload(s3: Any, bucket: str, count: int, size: int, prefix: str) -> list[tuple[str, str]]:
    def put(i: int) -> tuple[str, str]:
        key = f"{prefix}/obj-{i:05d}.bin"
        etag = s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(size))["ETag"]
        return key, etag

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(put, range(count)))


def message_for(tenant: Any, bucket: Any, key: str, etag: str, size: int) -> tuple[str, Any]:
    """The message an S3 event becomes: it carries the object's ETag and size, as S3 events do."""
    from django_scopes import scope

    from scanning.pipeline import services
    from scanning.pipeline.services import scan_object

    with scope(tenant=tenant):
        dedupe = services.dedupe_key_for(bucket, key, None, etag, False)
    message = scan_object.message(
        str(tenant.pk),
        str(bucket.pk),
        key,
        version_id=None,
        etag=etag,
        size=size,
        trigger="event",
        dedupe_key=dedupe,
    )
    return dedupe, message


def wait_final(dedupes: list[str], timeout: float, worker: Worker) -> list[Any]:
    from django_scopes import scopes_disabled

    from scanning.models import ScanResult

    deadline = time.monotonic() + timeout
    while True:
        with scopes_disabled():
            done = ScanResult.objects.filter(dedupe_key__in=dedupes).exclude(verdict="").count()
        if done == len(dedupes):
            with scopes_disabled():
                return list(ScanResult.objects.filter(dedupe_key__in=dedupes))
        worker.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done}/{len(dedupes)} final after {timeout:g}s\n{worker.log()[-3000:]}")
        time.sleep(0.1)


def wait_actions(dedupes: list[str], timeout: float) -> float:
    from django_scopes import scopes_disabled

    from scanning.models import ScanResult

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with scopes_disabled():
            pending = ScanResult.objects.filter(dedupe_key__in=dedupes).exclude(action_status="done").count()
        if not pending:
            return time.time()
        time.sleep(0.05)
    return float("nan")


# --- 2. pipeline -------------------------------------------------------------------------------------


def bench_pipeline(
    s3: Any, broker: Any, worker: Worker, count: int, size: int, pids: dict[str, int], timeout: float
) -> dict[str, Any]:
    tenant, bucket = make_bucket_rows(s3, "pipe")
    log(f"pipeline: uploading {count} x {size} B to s3://{bucket.name}")
    objects = upload(s3, bucket.name, count, size, "pipe")
    messages = [message_for(tenant, bucket, key, etag, size) for key, etag in objects]
    enqueued: dict[str, float] = {}
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    busy0 = machine_busy()
    log(f"pipeline: enqueueing {count} scan_object messages")
    started = time.time()
    for dedupe, message in messages:
        enqueued[dedupe] = time.time()
        broker.enqueue(message)
    enqueue_s = time.time() - started
    results = wait_final(list(enqueued), timeout, worker)
    busy1 = machine_busy()
    cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    last_scanned = max(r.scanned_at.timestamp() for r in results)
    wall = last_scanned - started
    actions_done = wait_actions(list(enqueued), 60)
    verdicts: dict[str, int] = {}
    for r in results:
        verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
    from_enqueue = [r.scanned_at.timestamp() - enqueued[r.dedupe_key] for r in results]
    from_claim = [(r.scanned_at - r.created_at).total_seconds() for r in results]
    durations = [r.duration_ms / 1000 for r in results if r.duration_ms is not None]
    return {
        "tenant": tenant,
        "bucket": bucket,
        "objects": objects,
        "wall": wall,
        "wall_actions": actions_done - started,
        "enqueue_s": enqueue_s,
        "objs": count / wall,
        "mibs": count * size / MiB / wall,
        "lat_enqueue": (pct(from_enqueue, 50), pct(from_enqueue, 95)),
        "lat_claim": (pct(from_claim, 50), pct(from_claim, 95)),
        "lat_worker": (pct(durations, 50), pct(durations, 95)),
        "verdicts": verdicts,
        "attempts": max(r.attempts for r in results),
        "cpu": {name: cpu1[name] - cpu0[name] for name in pids},
        "cpu_busy": (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1),
    }


def profile_steps(
    s3: Any, clamd_address: str, tenant: Any, bucket: Any, size: int, samples: int
) -> list[tuple]:
    """Time each step of one scan, sequentially, in this process against the same endpoints."""
    from django.conf import settings
    from django_scopes import scope

    from linked_accounts.aws import client_for
    from scanning.engine.clamd import ClamdClient
    from scanning.models import ScanResult
    from scanning.pipeline import services
    from scanning.s3 import ops as s3ops

    objects = upload(s3, bucket.name, samples, size, "profile")
    clamd = ClamdClient(clamd_address, timeout=30, scan_timeout=300)
    steps: dict[str, list[tuple[float, float]]] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        w0, c0 = time.perf_counter(), time.process_time()
        value = fn()
        steps.setdefault(name, []).append((time.perf_counter() - w0, time.process_time() - c0))
        return value

    def one(key: str) -> None:
        client = timed(
            "boto3 client_for (one call; run_scan makes two)", lambda: client_for(bucket.account, "s3")
        )
        ref = timed("HeadObject", lambda: s3ops.head_object(client, bucket.name, key))

        def get() -> bytes:
            stream = s3ops.DigestingStream(s3ops.stream_object(client, ref))
            return b"".join(stream)

        body = timed("GetObject + sha256 (1 MiB chunks)", get)
        fresh = os.urandom(len(body))
        timed("clamd INSTREAM (fresh bytes, memory)", lambda: clamd.scan_stream(iter([fresh])))

        def db_claim() -> Any:
            return ScanResult.objects.create(
                tenant=tenant, bucket=bucket, bucket_name=bucket.name, key=key, dedupe_key=uuid.uuid4().hex,
                trigger="event", claimed_until=ScanResult.lease(settings.SCAN_LEASE_SECONDS), attempts=1,
            )  # fmt: skip

        result = timed("DB claim (INSERT)", db_claim)

        def db_verdict() -> None:
            # What a Clean scan of a tag-only policy writes (scanning/pipeline/services.py): one look at
            # the key's other verdicts, then verdict and action in one UPDATE.
            others = ScanResult.objects.filter(tenant=tenant, bucket_name=bucket.name, bucket=bucket, key=key)
            others.exclude(pk=result.pk).exclude(verdict="").values_list("pk", "verdict", "etag").first()
            ScanResult.objects.filter(pk=result.pk, verdict="").update(
                verdict="Clean",
                scanned_at=datetime.now(UTC),
                tagged=True,
                action_status="done",
                claimed_until=None,
            )

        timed("DB other-verdicts look (SELECT) + verdict and action (one UPDATE)", db_verdict)
        result.scanned_at = datetime.now(UTC)
        result.verdict = "Clean"
        tags = services.scan_tags(policy, result)
        timed(
            "tagging (GetObjectTagging + PutObjectTagging)",
            lambda: s3ops.put_scan_tags(client, ref, tags, managed_keys=policy.managed_tag_keys),
        )
        ScanResult.objects.filter(pk=result.pk).delete()

    with scope(tenant=tenant):
        policy = bucket.effective_policy()
        services.engine_identity().get()
        for key, _ in objects:
            one(key)
        # The whole service call, in process (no broker), on fresh objects.
        fresh = upload(s3, bucket.name, samples, size, "profile-run")
        for key, etag in fresh:
            dedupe = services.dedupe_key_for(bucket, key, None, etag, False)
            timed(
                "whole services.run_scan (in process)",
                lambda k=key, e=etag, d=dedupe: services.run_scan(
                    tenant, bucket, k, version_id=None, etag=e, trigger="event", dedupe_key=d
                ),
            )
        # Experiment (this process only, no file changed): the same with one boto3 client per account
        # and thread instead of a new one per call, to show what client construction costs a scan.
        cached: dict[tuple[Any, ...], Any] = {}
        original = services.client_for

        def cached_client_for(account: Any, service: str, region: str | None = None) -> Any:
            key = (account.pk, service, region, threading.get_ident())
            if key not in cached:
                cached[key] = original(account, service, region)
            return cached[key]

        services.client_for = cached_client_for
        try:
            for key, etag in upload(s3, bucket.name, samples, size, "profile-cached"):
                dedupe = services.dedupe_key_for(bucket, key, None, etag, False)
                timed(
                    "  same, boto3 client cached per account (experiment)",
                    lambda k=key, e=etag, d=dedupe: services.run_scan(
                        tenant, bucket, k, version_id=None, etag=e, trigger="event", dedupe_key=d
                    ),
                )
        finally:
            services.client_for = original
    return [
        (name, statistics.mean(w for w, _ in v), statistics.mean(c for _, c in v), len(v))
        for name, v in steps.items()
    ]


# --- 3. memory ---------------------------------------------------------------------------------------


def bench_memory(s3: Any, broker: Any, worker: Worker, big_size: int, timeout: float) -> dict[str, Any]:
    tenant, bucket = make_bucket_rows(s3, "mem")
    key = "big/object.bin"
    log(f"memory: uploading {big_size} B to s3://{bucket.name}/{key} (multipart, 64 MiB parts)")
    upload_id = s3.create_multipart_upload(Bucket=bucket.name, Key=key)["UploadId"]
    parts = []
    for n, chunk in enumerate(random_chunks(big_size, 64 * MiB), start=1):
        etag = s3.upload_part(Bucket=bucket.name, Key=key, UploadId=upload_id, PartNumber=n, Body=chunk)[
            "ETag"
        ]
        parts.append({"PartNumber": n, "ETag": etag})
        del chunk
    etag = s3.complete_multipart_upload(
        Bucket=bucket.name, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )["ETag"]
    dedupe, message = message_for(tenant, bucket, key, etag, big_size)

    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                samples.append((time.monotonic(), proc_status(worker.pid)["VmRSS"]))
            except OSError:
                return
            stop.wait(0.05)

    before = proc_status(worker.pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(2.0)  # idle baseline
    baseline = statistics.median(rss for _, rss in samples) if samples else before["VmRSS"]
    log("memory: enqueueing the scan of the big object")
    started = time.monotonic()
    try:
        broker.enqueue(message)
        (result,) = wait_final([dedupe], timeout, worker)
    finally:
        stop.set()
        sampler.join(5)
    elapsed = time.monotonic() - started
    after = proc_status(worker.pid)
    during = [rss for t, rss in samples if t >= started]
    peak = max(during) if during else float("nan")
    return {
        "size": big_size,
        "verdict": result.verdict,
        "message": result.message,
        "worker_duration": (result.duration_ms or 0) / 1000,
        "elapsed": elapsed,
        "baseline": baseline,
        "peak": peak,
        "growth": peak - baseline,
        "hwm_before": before["VmHWM"],
        "hwm_after": after["VmHWM"],
        "samples": len(during),
    }


# --- main --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200, help="objects per phase (default 200)")
    parser.add_argument("--size", type=parse_size, default=MiB, help="object size (default 1M = 1 MiB)")
    parser.add_argument("--threads", type=int, default=2, help="scan threads, raw and worker (default 2)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the big-object memory phase")
    parser.add_argument("--skip-profile", action="store_true", help="never run the step profile")
    parser.add_argument("--profile-samples", type=int, default=30)
    parser.add_argument("--big-size", type=parse_size, default=10**9, help="memory phase object size")
    parser.add_argument("--database-url", default=os.environ.get("S3AV_BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--broker-url", default=os.environ.get("S3AV_BENCH_BROKER_URL", DEFAULT_BROKER))
    parser.add_argument("--clamd", default=os.environ.get("S3AV_CLAMD") or DEFAULT_CLAMD)
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for each phase")
    args = parser.parse_args()

    from scanning.engine.clamd import ClamdClient

    clamd = ClamdClient(args.clamd, timeout=10)
    clamd.ping()
    clamd_version = clamd.version().engine
    clamd_pid = clamd_pid_of(args.clamd)

    ensure_database(args.database_url)
    ensure_vhost(args.broker_url)

    with ExitStack() as stack:
        (ROOT / "var").mkdir(exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="s3av-bench-", dir=ROOT / "var"))
        stack.callback(shutil.rmtree, workdir, True)

        raw = bench_raw(args.clamd, args.count, args.size, args.threads, workdir)
        log(f"raw: {raw['objs']:.1f} obj/s")

        moto, endpoint = start_moto(stack, workdir)
        env = {
            **AWS_ENV,
            "DATABASE_URL": args.database_url,
            "S3AV_BROKER_URL": args.broker_url,
            "S3AV_CLAMD": args.clamd,
            "S3AV_AWS_ENDPOINT_URL": endpoint,
            "S3AV_SECRET_KEY": os.environ.get("S3AV_SECRET_KEY")
            or "bench-secret-key-bench-secret-key-0123456789",
            "S3AV_AWS_CONFUSED_DEPUTY_CHECK": "0",
            "S3AV_LOG_LEVEL": "WARNING",
        }
        setup_django(env)
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        from linked_accounts.aws import make_client

        s3 = make_client("s3", endpoint_url=endpoint, region="us-east-1", credentials=None)
        logging.getLogger("pika").setLevel(logging.ERROR)  # flushing a queue not declared yet is fine
        broker = RabbitmqBroker(url=args.broker_url)
        stack.callback(broker.close)
        for queue in ("scans", "default"):
            broker.declare_queue(queue)
            broker.flush(queue)

        worker = Worker(
            stack,
            workdir,
            args.threads,
            # INFO, as in production and the integration tests: the worker's "ready for action" is INFO.
            {**os.environ, **env, "S3AV_LOG_LEVEL": "INFO", "dramatiq_queue_prefetch": str(args.threads)},
        )
        log(f"worker pid {worker.pid} (dramatiq main {worker.process.pid}), moto {endpoint}")
        pids = {
            "worker": worker.pid,
            "clamd": clamd_pid,
            "moto": moto.pid,
            "dramatiq main": worker.process.pid,
        }

        pipe = bench_pipeline(s3, broker, worker, args.count, args.size, pids, args.timeout)
        ratio = pipe["objs"] / raw["objs"]

        profile = None
        if not args.skip_profile and ratio < 0.8:
            log("pipeline below 80 % of raw: profiling the steps of one scan")
            profile = profile_steps(
                s3, args.clamd, pipe["tenant"], pipe["bucket"], args.size, args.profile_samples
            )

        mem = None
        if not args.skip_memory:
            mem = bench_memory(s3, broker, worker, args.big_size, args.timeout)
        worker.check()

        report(args, clamd_version, raw, pipe, ratio, profile, mem)
        for queue in ("scans", "default"):
            broker.flush(queue)
    return 0


def report(
    args: Any, clamd_version: str, raw: dict, pipe: dict, ratio: float, profile: Any, mem: Any
) -> None:
    size_mib = args.size / MiB
    print()
    print(
        f"s3av scan pipeline benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M UTC}  {clamd_version}  "
        f"{os.cpu_count()} CPUs  count={args.count} size={args.size} B ({size_mib:g} MiB) "
        f"threads={args.threads}"
    )
    print()
    print(f"{'':34} {'obj/s':>7} {'MiB/s':>7} {'wall s':>7} {'p50 s':>7} {'p95 s':>7}")
    print(
        f"{'raw clamd INSTREAM (disk)':34} {raw['objs']:7.1f} {raw['mibs']:7.1f} {raw['wall']:7.1f} "
        f"{raw['p50']:7.3f} {raw['p95']:7.3f}   (CPU busy {raw['cpu_busy']:.0%})"
    )
    lat = pipe["lat_enqueue"]
    print(
        f"{'pipeline (enqueue -> scanned_at)':34} {pipe['objs']:7.1f} {pipe['mibs']:7.1f} "
        f"{pipe['wall']:7.1f} "
        f"{lat[0]:7.3f} {lat[1]:7.3f}   (CPU busy {pipe['cpu_busy']:.0%})"
    )
    for label, key in (
        ("  latency claim -> scanned_at", "lat_claim"),
        ("  latency worker duration_ms", "lat_worker"),
    ):
        p50, p95 = pipe[key]
        print(f"{label:34} {'':7} {'':7} {'':7} {p50:7.3f} {p95:7.3f}")
    print(f"pipeline / raw throughput: {ratio:.0%}  (target >= 80%: {'met' if ratio >= 0.8 else 'NOT met'})")
    print(
        f"  verdicts {pipe['verdicts']}, max attempts {pipe['attempts']}, "
        f"enqueue took {pipe['enqueue_s']:.2f} s, "
        f"all actions done at {pipe['wall_actions']:.1f} s"
    )
    cpu = ", ".join(f"{name} {secs:.1f}" for name, secs in pipe["cpu"].items())
    print(
        f"  CPU seconds during the pipeline phase ({pipe['wall']:.1f} s wall x {os.cpu_count()} CPUs): {cpu}"
    )
    if profile:
        print()
        print(f"step profile, one scan at a time in the bench process (mean of {profile[0][3]} objects):")
        print(f"  {'step':58} {'wall ms':>8} {'CPU ms':>8}")
        for name, wall, cpu_s, _ in profile:
            print(f"  {name:58} {wall * 1000:8.1f} {cpu_s * 1000:8.1f}")
    if mem:
        print()
        print(
            f"worker memory, one {mem['size']} B object: verdict {mem['verdict']} {mem['message']!r}, "
            f"worker duration {mem['worker_duration']:.1f} s, enqueue->final {mem['elapsed']:.1f} s, "
            f"{mem['samples']} RSS samples"
        )
        mb = 1e6
        print(
            f"  RSS baseline {mem['baseline'] / mb:.1f} MB, peak {mem['peak'] / mb:.1f} MB, "
            f"growth {mem['growth'] / mb:.1f} MB "
            f"(target < 64 MB: {'met' if mem['growth'] < 64 * mb else 'NOT met'}); "
            f"VmHWM before {mem['hwm_before'] / mb:.1f} MB, after {mem['hwm_after'] / mb:.1f} MB"
        )


if __name__ == "__main__":
    sys.exit(main())

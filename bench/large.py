"""One large object: s3av's ``manage.py scan`` against raw clamd on the same bytes (issue 10).

Run from the repository root (clamd must be up; moto's S3 server is started here and stopped at the end):

    source scripts/test-env.sh && .venv/bin/python bench/large.py [--size 512M] [--repeat 3] [--small 128M]

Every scan gets bytes clamd has not seen (the first 32 bytes are rewritten before each run), so its
clean-result cache never answers. Raw and s3av runs are interleaved, REPEAT times, and the order flips
on every round; medians and the spread are printed with the load average at each run.

1. raw ``clamdscan --stream`` of the file on disk (clamd's own client: 8 KiB frames, C, no start-up).
2. raw INSTREAM of the file through ``scanning.engine.clamd.ClamdClient`` (1 MiB reads).
3. s3av: ``manage.py scan s3://BUCKET/KEY --endpoint-url MOTO`` of the same bytes uploaded to moto (as
   ``upload_file`` does it: multipart, 8 MiB parts), a fresh process each time; its wall time and peak
   RSS (``ru_maxrss`` from ``wait4``). With ``--before DIR`` (a plain export of another commit, e.g.
   ``git archive main | tar -x -C DIR``), the same command from DIR too, interleaved.
4. breakdown, each REPEAT times: process start (``manage.py scan`` of an empty prefix: Python, Django,
   boto3, one ListObjectsV2, clamd's VERSION, exit), GetObject transfer alone (read and dropped),
   SHA-256 of SIZE bytes in memory, and the delivery to clamd alone for several read/frame sizes and
   socket send buffers, from disk and from S3 through s3av's own reader (``s3ops.open_object`` and
   ``DigestingStream``). Delivery stops before the terminating frame, so clamd drops the stream and
   scans nothing: it is the part of a scan that differs between raw and s3av (clamd spools the whole
   stream to its temporary file before it scans, so for one object the two never overlap).
5. peak RSS of ``manage.py scan`` for a SMALL and a SIZE object: flat means independent of size.

Prints figures; asserts nothing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pipeline as common  # noqa: E402 - bench/pipeline.py: moto and /proc helpers

MiB = common.MiB
log = common.log


class _Stop(Exception):
    """Raised by a chunk iterator after its last chunk: the client drops the stream unterminated."""


# --- small helpers -----------------------------------------------------------------------------------


def stamp(path: Path) -> None:
    """Make the file's bytes new to clamd (its clean cache is keyed by the whole content's hash)."""
    with open(path, "r+b") as fh:
        fh.write(uuid.uuid4().bytes + uuid.uuid4().bytes)


def load() -> float:
    return os.getloadavg()[0]


def timed_process(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, int, str, float]:
    """(wall s, peak RSS bytes, exit status, output, CPU s) of one child process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode(errors="replace")
    return wall, usage.ru_maxrss * 1024, process.returncode, text, usage.ru_utime + usage.ru_stime


def file_chunks(path: Path, size: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(size):
            yield chunk


def unterminated(chunks: Iterable[bytes]) -> Iterator[bytes]:
    yield from chunks
    raise _Stop


def clamdscan_config(address: str, workdir: Path) -> Path:
    # clamdscan stops sending at its own StreamMaxLength (read from this file, 100M when unset) and
    # clamd then answers OK for what it got: the limit must cover the whole file.
    parts = urlsplit(address)
    path = workdir / "clamdscan.conf"
    limit = "StreamMaxLength 2047M\n"
    if parts.scheme == "unix":
        path.write_text(f"LocalSocket {parts.path}\n{limit}")
    else:
        path.write_text(f"TCPSocket {parts.port}\nTCPAddr {parts.hostname}\n{limit}")
    return path


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):6.2f}  ({min(values):.2f}-{max(values):.2f})"


# --- the runs ----------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: Any, stack: ExitStack, workdir: Path) -> None:
        from linked_accounts import aws
        from scanning.engine.clamd import ClamdClient

        self.args = args
        self.workdir = workdir
        self.clamd = ClamdClient(args.clamd, timeout=30, scan_timeout=600)
        self.version = self.clamd.version().raw.strip("\0").strip()
        moto, self.endpoint = common.start_moto(stack, workdir)
        self.s3 = aws.make_client("s3", endpoint_url=self.endpoint, region="us-east-1")
        self.bucket = f"large-{uuid.uuid4().hex[:8]}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.conf = clamdscan_config(args.clamd, workdir)
        self.env = {**os.environ, **common.AWS_ENV, "S3AV_CLAMD": args.clamd, "S3AV_LOG_LEVEL": "ERROR"}
        self.clamd_pid = common.clamd_pid_of(args.clamd)
        self.moto_pid = moto.pid
        self.files: dict[int, Path] = {}
        self.results: dict[str, list[float]] = {}
        self.loads: dict[str, list[float]] = {}

    def file(self, size: int) -> Path:
        if size not in self.files:
            path = self.workdir / f"object-{size}.bin"
            with open(path, "wb") as fh:
                for chunk in common.random_chunks(size):
                    fh.write(chunk)
            self.files[size] = path
        return self.files[size]

    def record(self, name: str, value: float) -> None:
        self.results.setdefault(name, []).append(value)
        self.loads.setdefault(name, []).append(load())

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far of clamd and moto (NaN when clamd's pid file is not beside its socket)."""
        clamd = common.cpu_seconds(self.clamd_pid) if self.clamd_pid else float("nan")
        return clamd, common.cpu_seconds(self.moto_pid)

    def record_cpu(self, name: str, before: tuple[float, float], own: float, moto: bool = False) -> None:
        after = self.cpu()
        self.record(f"{name}: CPU s of the scanner", own)
        self.record(f"{name}: CPU s of clamd", after[0] - before[0])
        if moto:
            self.record(f"{name}: CPU s of moto", after[1] - before[1])

    def upload(self, size: int) -> str:
        path = self.file(size)
        stamp(path)
        key = f"obj-{uuid.uuid4().hex[:8]}"
        self.s3.upload_file(str(path), self.bucket, key)
        return key

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    # -- whole scans --

    def clamdscan(self, size: int) -> None:
        path = self.file(size)
        stamp(path)
        cpu = self.cpu()
        wall, _, status, out, own = timed_process(
            ["clamdscan", f"--config-file={self.conf}", "--stream", "--no-summary", str(path)], self.env, ROOT
        )
        if status != 0 or "OK" not in out:
            raise RuntimeError(f"clamdscan: status {status}: {out}")
        self.record(f"raw clamdscan --stream {size // MiB} MiB", wall)
        self.record_cpu(f"raw clamdscan --stream {size // MiB} MiB", cpu, own)

    def instream(self, size: int) -> None:
        path = self.file(size)
        stamp(path)
        started = time.perf_counter()
        reply = self.clamd.scan_stream(file_chunks(path, MiB))
        wall = time.perf_counter() - started
        if not reply.is_clean:
            raise RuntimeError(f"INSTREAM: {reply}")
        self.record(f"raw INSTREAM (ClamdClient) {size // MiB} MiB", wall)

    def s3av(self, size: int, label: str, tree: Path) -> None:
        key = self.upload(size)
        cmd = [
            sys.executable,
            "manage.py",
            "scan",
            f"s3://{self.bucket}/{key}",
            "--endpoint-url",
            self.endpoint,
        ]
        cpu = self.cpu()
        wall, rss, status, out, own = timed_process(cmd, {**self.env, "PYTHONDONTWRITEBYTECODE": "1"}, tree)
        self.record_cpu(f"{label} manage.py scan {size // MiB} MiB", cpu, own, moto=True)
        self.delete(key)
        if status != 0 or ": Clean" not in out:
            raise RuntimeError(f"{label}: status {status}: {out}")
        self.record(f"{label} manage.py scan {size // MiB} MiB", wall)
        self.record(f"{label} peak RSS MiB, {size // MiB} MiB object", rss / MiB)

    def rounds(self, size: int) -> None:
        trees = [("s3av", ROOT)] + ([("s3av before", Path(self.args.before))] if self.args.before else [])
        runs: list[Callable[[], None]] = [lambda: self.clamdscan(size), lambda: self.instream(size)]
        runs += [lambda label=label, tree=tree: self.s3av(size, label, tree) for label, tree in trees]
        for i in range(self.args.repeat):
            log(f"round {i + 1}/{self.args.repeat} of {size // MiB} MiB (load {load():.1f})")
            for run in runs if i % 2 == 0 else reversed(runs):
                run()

    # -- breakdown --

    def deliver(self, chunks: Iterable[bytes], send_buffer: int | None, frame: int) -> float:
        from scanning.engine.clamd import ClamdClient

        client = ClamdClient(self.args.clamd, timeout=30, max_frame=frame, send_buffer=send_buffer)
        started = time.perf_counter()
        try:
            client.scan_stream(unterminated(chunks))
        except _Stop:
            pass
        return time.perf_counter() - started

    def s3_chunks(self, key: str, chunk: int) -> Iterator[bytes]:
        from scanning.s3 import ops as s3ops

        ref = s3ops.head_object(self.s3, self.bucket, key)
        _, chunks = s3ops.open_object(self.s3, ref, chunk)
        stream = s3ops.DigestingStream(chunks)
        yield from stream
        stream.check_size(ref)

    def breakdown(self, size: int) -> None:
        from scanning.engine.clamd import SEND_BUFFER

        path = self.file(size)
        env = {**self.env, "PYTHONDONTWRITEBYTECODE": "1"}
        start_cmd = [
            sys.executable,
            "manage.py",
            "scan",
            f"s3://{self.bucket}/nothing/",
            "--endpoint-url",
            self.endpoint,
        ]
        # (read size, SO_SNDBUF, INSTREAM frame)
        big = SEND_BUFFER
        variants = [(MiB, None, MiB), (MiB, big, MiB), (4 * MiB, None, MiB),
                    (4 * MiB, big, MiB), (4 * MiB, big, 4 * MiB), (8 * MiB, big, MiB)]  # fmt: skip
        for i in range(self.args.repeat):
            log(f"breakdown round {i + 1}/{self.args.repeat} (load {load():.1f})")
            trees = [("s3av", ROOT)] + ([("s3av before", Path(self.args.before))] if self.args.before else [])
            for label, tree in trees:
                wall, _, _, _, own = timed_process(start_cmd, env, tree)
                self.record(f"{label} process start (manage.py scan of an empty prefix)", wall)
                self.record(f"{label} process start: CPU s", own)
            key = self.upload(size)
            for chunk in (MiB, 4 * MiB):
                started = time.perf_counter()
                ref_chunks = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].iter_chunks(chunk)
                sum(len(c) for c in ref_chunks)
                self.record(
                    f"GetObject transfer alone, {chunk // MiB} MiB reads", time.perf_counter() - started
                )
            block, digest = os.urandom(MiB), hashlib.sha256()
            started = time.perf_counter()
            for _ in range(size // MiB):
                digest.update(block)
            self.record("SHA-256 in memory, 1 MiB updates", time.perf_counter() - started)
            for chunk, buf, frame in variants:
                sndbuf = f"{buf // MiB} MiB" if buf else "default"
                name = f"read {chunk // MiB} MiB, frame {frame // MiB} MiB, SO_SNDBUF {sndbuf}"
                self.record(f"deliver from disk, {name}", self.deliver(file_chunks(path, chunk), buf, frame))
                self.record(
                    f"deliver from S3 (s3av reader), {name}",
                    self.deliver(self.s3_chunks(key, chunk), buf, frame),
                )
            self.delete(key)


# --- main --------------------------------------------------------------------------------------------


def report(bench: Bench, args: Any, started: float) -> None:
    print()
    print(
        f"Large object: {args.size // MiB} MiB, {args.repeat} rounds, {bench.version}, clamd at {args.clamd}"
    )
    loads = sum(bench.loads.values(), [])
    print(f"  {os.cpu_count()} CPUs; load average at the runs: median {statistics.median(loads):.1f}")
    print(f"  {'what':72s} {'median s':>8s}  (min-max)   load")
    for name, values in bench.results.items():
        loads = bench.loads[name]
        print(f"  {name:72s} {summary(values)}  {min(loads):.1f}-{max(loads):.1f}")
    raw = bench.results.get(f"raw clamdscan --stream {args.size // MiB} MiB", [])
    for label in ("s3av", "s3av before"):
        mine = bench.results.get(f"{label} manage.py scan {args.size // MiB} MiB", [])
        if raw and mine:
            ratios = [m / r for m, r in zip(mine, raw, strict=False)]
            print(f"  {label} / raw clamdscan: median {statistics.median(mine) / statistics.median(raw):.2f}x"
                  f" (per round {', '.join(f'{r:.2f}' for r in ratios)}; target <= 1.15x)")  # fmt: skip
    print(f"  bench's own peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB;"
          f" {time.monotonic() - started:.0f} s in all")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=common.parse_size, default=512 * MiB)
    parser.add_argument("--small", type=common.parse_size, default=128 * MiB, help="second size, for RSS")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clamd", default=os.environ.get("S3AV_CLAMD", common.DEFAULT_CLAMD))
    parser.add_argument("--before", default=None, help="a plain export of another commit to compare")
    parser.add_argument("--skip-breakdown", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "s3av.settings")
    for name, value in common.AWS_ENV.items():
        os.environ.setdefault(name, value)
    workdir = Path(tempfile.mkdtemp(prefix="large-", dir=ROOT / "var" if (ROOT / "var").is_dir() else None))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        bench = Bench(args, stack, workdir)
        bench.rounds(args.size)
        if args.small:
            bench.rounds(args.small)
        if not args.skip_breakdown:
            bench.breakdown(args.size)
        report(bench, args, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Signature updates against a clamd of their own (started from the project's clamd.conf template under a
temporary directory, so the suite's shared clamd is never reloaded): the local S3 endpoint as the private
mirror, and freshclam against an HTTP mirror on loopback."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from scanning.engine import signatures
from scanning.engine.clamd import ClamdClient
from scanning.fleet.signatures import configured_source, update_signatures
from scanning.models import SignatureUpdate
from tests.fixtures.scanning import EICAR, ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def private_clamd() -> Iterator[tuple[Path, str]]:
    # Short: the socket path inside it is limited to 107 bytes.
    clamav_dir = Path(tempfile.mkdtemp(prefix="s3avsig", dir="/tmp"))
    env = {**os.environ, "S3AV_CLAMAV_DIR": str(clamav_dir), "S3AV_MAX_OBJECT_SIZE": "64M"}
    script = str(ROOT / "scripts" / "clamav.sh")
    out = subprocess.run(
        ["bash", script, "start"], env=env, check=True, capture_output=True, text=True
    ).stdout
    address = next(line.split("=", 1)[1] for line in out.splitlines() if line.startswith("S3AV_CLAMD="))
    try:
        yield clamav_dir, address
    finally:
        subprocess.run(["bash", script, "stop"], env=env, check=False, capture_output=True)
        shutil.rmtree(clamav_dir, ignore_errors=True)


@pytest.fixture
def clamd(private_clamd: tuple[Path, str]) -> ClamdClient:
    return ClamdClient(private_clamd[1], timeout=30)


@pytest.fixture
def updater_settings(settings: Any, private_clamd: tuple[Path, str]) -> Any:
    settings.CLAMAV_DIR = private_clamd[0]
    settings.CLAMAV_DB_DIR = private_clamd[0] / "db"
    settings.CLAMD_ADDRESS = private_clamd[1]
    settings.SIGNATURES_CLAMDS = []
    settings.SIGNATURES_RELOAD_TIMEOUT = 60
    return settings


@pytest.fixture
def mirror(updater_settings: Any, s3_endpoint: str, s3_client: Any, make_bucket: Any) -> tuple[Any, str]:
    bucket = make_bucket(prefix="s3av-mirror")
    updater_settings.AWS_ENDPOINT_URL = s3_endpoint
    updater_settings.SIGNATURES_SOURCE = f"s3://{bucket}/clamav"
    return s3_client, bucket


def hsb(data: bytes, name: str) -> bytes:
    return f"{hashlib.sha256(data).hexdigest()}:{len(data)}:{name}\n".encode()


def verdict(client: ClamdClient, data: bytes) -> tuple[str, list[str]]:
    reply = client.scan_stream([data])
    return reply.status, [name.removesuffix(".UNOFFICIAL") for name in reply.signatures]


def clamd_pid(clamav_dir: Path) -> str:
    return (clamav_dir / "clamd.pid").read_text().strip()


class CountingSource:
    """The configured source, counting what it downloads."""

    def __init__(self, inner: signatures.Source):
        self.inner = inner
        self.label = inner.label
        self.fetched: list[str] = []

    def list(self) -> dict[str, signatures.RemoteFile]:
        return self.inner.list()

    def fetch(self, remote: signatures.RemoteFile, dest: Path) -> None:
        self.fetched.append(remote.name)
        self.inner.fetch(remote, dest)


def update(capsys: Any) -> tuple[int, str]:
    try:
        call_command("update_signatures")
    except CommandError as exc:
        return exc.returncode, str(exc)
    return 0, capsys.readouterr().out.strip()


def test_it_detects_a_signature_published_to_the_mirror_without_restarting_clamd_and_keeps_it_when_a_corrupt_one_follows(  # noqa: E501
    mirror: tuple[Any, str], clamd: ClamdClient, private_clamd: tuple[Path, str], capsys: Any
) -> None:
    s3, bucket = mirror
    clamav_dir = private_clamd[0]
    sample = b"an ordinary file today, malware tomorrow " + os.urandom(16)
    assert verdict(clamd, sample)[0] == "clean"
    pid = clamd_pid(clamav_dir)

    s3.put_object(Bucket=bucket, Key="clamav/published.hsb", Body=hsb(sample, "S3av.Test.Published"))
    code, line = update(capsys)
    assert code == 0, line
    assert line.startswith("updated to generation"), line
    assert verdict(clamd, sample) == ("infected", ["S3av.Test.Published"])
    assert verdict(clamd, EICAR)[0] == "infected"  # the base test signatures were carried over
    assert clamd_pid(clamav_dir) == pid  # reloaded, not restarted
    live = signatures.live_generation(clamav_dir)
    assert SignatureUpdate.objects.latest().status == "updated"

    # Unchanged mirror: current, nothing downloaded, the same generation.
    source = CountingSource(configured_source())
    record = update_signatures(source)
    assert record is not None and record.status == "current"
    assert source.fetched == []
    assert signatures.live_generation(clamav_dir) == live

    # A corrupt database: rejected with the reason on one line, the old generation stays live.
    s3.put_object(Bucket=bucket, Key="clamav/broken.ndb", Body=b"this is not:a valid:body signature\n")
    code, line = update(capsys)
    assert code == 1
    assert "\n" not in line and "rejected" in line and "test load failed" in line, line
    assert signatures.live_generation(clamav_dir) == live
    assert verdict(clamd, sample) == ("infected", ["S3av.Test.Published"])
    assert clamd_pid(clamav_dir) == pid
    assert SignatureUpdate.objects.latest().status == "rejected"
    assert not [p for p in (clamav_dir / "db.d").iterdir() if p.name.startswith(".")]

    # The same corrupt file again: rejected again, without downloading it again.
    source = CountingSource(configured_source())
    record = update_signatures(source)
    assert record is not None and record.status == "rejected" and source.fetched == []

    # Withdrawn from the mirror together with the published one: both gone, the sample is Clean again.
    s3.delete_object(Bucket=bucket, Key="clamav/broken.ndb")
    s3.delete_object(Bucket=bucket, Key="clamav/published.hsb")
    code, line = update(capsys)
    assert code == 0, line
    assert "-published.hsb" in line
    assert verdict(clamd, sample)[0] == "clean"
    assert verdict(clamd, EICAR)[0] == "infected"


def test_it_rejects_a_database_that_no_longer_detects_the_known_infected_file(
    mirror: tuple[Any, str], clamd: ClamdClient, private_clamd: tuple[Path, str], capsys: Any
) -> None:
    s3, bucket = mirror
    live = signatures.live_generation(private_clamd[0])
    # A false-positive list that allows the EICAR test file: loads fine, detects less than it must.
    fp = f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:S3av.Test.EICAR\n".encode()  # noqa: S324
    s3.put_object(Bucket=bucket, Key="clamav/allow-everything.fp", Body=fp)
    code, line = update(capsys)
    s3.delete_object(Bucket=bucket, Key="clamav/allow-everything.fp")
    assert code == 1
    assert "does not detect the EICAR test file" in line
    assert signatures.live_generation(private_clamd[0]) == live
    assert verdict(clamd, EICAR)[0] == "infected"


def test_it_reports_an_unreachable_mirror_and_keeps_the_database(
    updater_settings: Any, clamd: ClamdClient, private_clamd: tuple[Path, str], s3_endpoint: str, capsys: Any
) -> None:
    updater_settings.AWS_ENDPOINT_URL = s3_endpoint
    updater_settings.SIGNATURES_SOURCE = "s3://s3av-no-such-mirror-bucket/clamav"
    live = signatures.live_generation(private_clamd[0])
    code, line = update(capsys)
    assert code == 1
    assert line.startswith("failed: listing s3://s3av-no-such-mirror-bucket/clamav/: NoSuchBucket"), line
    assert signatures.live_generation(private_clamd[0]) == live
    assert verdict(clamd, EICAR)[0] == "infected"


def test_it_does_nothing_without_a_source(settings: Any, capsys: Any) -> None:
    settings.SIGNATURES_SOURCE = ""
    call_command("update_signatures")
    assert "nothing to do" in capsys.readouterr().out
    assert not SignatureUpdate.objects.exists()


def test_it_fails_when_a_clamd_does_not_confirm_the_new_generation(
    mirror: tuple[Any, str], updater_settings: Any, tmp_path: Path, capsys: Any
) -> None:
    s3, bucket = mirror
    updater_settings.SIGNATURES_CLAMDS = [f"unix://{tmp_path}/nobody.sock"]
    s3.put_object(Bucket=bucket, Key="clamav/other.hsb", Body=hsb(os.urandom(32), "S3av.Test.Other"))
    code, line = update(capsys)
    s3.delete_object(Bucket=bucket, Key="clamav/other.hsb")
    assert code == 1
    assert "not confirmed by every clamd" in line and "nobody.sock" in line


# --- freshclam ---------------------------------------------------------------------------------------


@pytest.fixture
def http_mirror(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_it_updates_through_freshclam_from_a_private_http_mirror(
    updater_settings: Any,
    http_mirror: tuple[Path, str],
    clamd: ClamdClient,
    private_clamd: tuple[Path, str],
    tmp_path: Path,
    capsys: Any,
) -> None:
    root, url = http_mirror
    conf = tmp_path / "freshclam.conf"
    # The official CVDs must carry ClamAV's own signature, so a private mirror cannot serve home-made
    # ones; the custom-database path (DatabaseCustomURL) is what runs here, through freshclam's own
    # download, its TestDatabases check and our test-load and reload.
    conf.write_text(
        f"DatabaseOwner {pwd.getpwuid(os.getuid()).pw_name}\n"
        "DNSDatabaseInfo no\n"
        f"PrivateMirror {url}\n"
        "ExcludeDatabase daily\nExcludeDatabase main\nExcludeDatabase bytecode\n"
        f"DatabaseCustomURL {url}/mirrored.hsb\n"
        "ScriptedUpdates no\n"
    )
    updater_settings.SIGNATURES_SOURCE = "freshclam"
    updater_settings.FRESHCLAM_CONFIG = str(conf)
    first = b"found through freshclam " + os.urandom(16)
    second = b"found through freshclam, the next day " + os.urandom(16)
    (root / "mirrored.hsb").write_bytes(hsb(first, "S3av.Test.Freshclam.One"))
    assert verdict(clamd, first)[0] == "clean"

    code, line = update(capsys)
    assert code == 0, line
    assert verdict(clamd, first) == ("infected", ["S3av.Test.Freshclam.One"])

    # freshclam asks with If-Modified-Since: the next publication must look newer.
    (root / "mirrored.hsb").write_bytes(hsb(second, "S3av.Test.Freshclam.Two"))
    later = time.time() + 5
    os.utime(root / "mirrored.hsb", (later, later))
    code, line = update(capsys)
    assert code == 0, line
    assert verdict(clamd, second) == ("infected", ["S3av.Test.Freshclam.Two"])
    assert verdict(clamd, first)[0] == "clean"


def test_it_reports_freshclam_failing(updater_settings: Any, tmp_path: Path, capsys: Any) -> None:
    conf = tmp_path / "freshclam.conf"
    conf.write_text(
        f"DatabaseOwner {pwd.getpwuid(os.getuid()).pw_name}\nDNSDatabaseInfo no\n"
        "PrivateMirror http://127.0.0.1:9\nExcludeDatabase daily\nExcludeDatabase main\n"
        "ExcludeDatabase bytecode\nDatabaseCustomURL http://127.0.0.1:9/x.hsb\n"
    )
    updater_settings.SIGNATURES_SOURCE = "freshclam"
    updater_settings.FRESHCLAM_CONFIG = str(conf)
    code, line = update(capsys)
    assert code == 1
    assert line.startswith("failed: freshclam exited"), line


# --- plain functions ---------------------------------------------------------------------------------


def test_it_plans_only_changed_files(tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    (live / "a.hsb").write_bytes(b"x" * 3)
    (live / "gone.ndb").write_bytes(b"y")
    state = signatures.State(
        files={"a.hsb": {"etag": "e1", "size": 3}, "gone.ndb": {"etag": "e2", "size": 1}}, source="s3://m/p/"
    )
    remote = {
        "a.hsb": signatures.RemoteFile("a.hsb", "e1", 3),
        "b.ldb": signatures.RemoteFile("b.ldb", "e3", 7),
    }
    plan = signatures.make_plan(state, live, remote, "s3://m/p/")
    assert [r.name for r in plan.download] == ["b.ldb"]
    assert plan.remove == ["gone.ndb"]
    # Another source: nothing it recorded is trusted.
    assert [r.name for r in signatures.make_plan(state, live, remote, "freshclam").download] == [
        "a.hsb",
        "b.ldb",
    ]


@pytest.mark.parametrize(
    ("name", "wanted"),
    [
        ("daily.cvd", True),
        ("daily-27000.cvd.sign", True),
        ("custom.hsb", True),
        ("rules.yar", True),
        ("local.ign2", True),
        ("freshclam.dat", False),
        ("README.md", False),
        ("../evil.hsb", False),
        (".hidden.hsb", False),
        ("sub/dir.hsb", False),
        (signatures.CANARY_FILE, False),
    ],
)
def test_it_takes_only_database_files_from_the_source(name: str, wanted: bool) -> None:
    assert signatures.is_database_name(name) is wanted


def test_the_scheduler_updates_at_the_interval_when_a_source_is_set(mirror: tuple[Any, str]) -> None:
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from scanning.schedules.services import Scheduler

    settings.SIGNATURES_INTERVAL = 7200
    scheduler = Scheduler()
    now = timezone.now()
    assert scheduler.tick(now).signatures in {"updated", "current"}
    assert scheduler.tick(now + timedelta(minutes=119)).signatures == ""
    assert scheduler.tick(now + timedelta(minutes=121)).signatures == "current"
    assert SignatureUpdate.objects.count() == 2

    settings.SIGNATURES_SOURCE = ""
    assert Scheduler().tick(now).signatures == ""


def test_a_clamd_that_missed_the_reload_gets_it_at_the_next_run(
    mirror: tuple[Any, str], updater_settings: Any, clamd: ClamdClient, tmp_path: Path, capsys: Any
) -> None:
    s3, bucket = mirror
    sample = b"published while clamd was unreachable " + os.urandom(16)
    s3.put_object(Bucket=bucket, Key="clamav/missed.hsb", Body=hsb(sample, "S3av.Test.Missed"))
    address = updater_settings.CLAMD_ADDRESS
    updater_settings.CLAMD_ADDRESS = f"unix://{tmp_path}/unreachable.sock"
    code, line = update(capsys)
    assert code == 1 and "not confirmed by every clamd" in line
    assert verdict(clamd, sample)[0] == "clean"  # never told to reload

    updater_settings.CLAMD_ADDRESS = address
    code, line = update(capsys)
    s3.delete_object(Bucket=bucket, Key="clamav/missed.hsb")
    assert code == 0 and line.startswith("current"), line
    assert verdict(clamd, sample) == ("infected", ["S3av.Test.Missed"])
    update(capsys)

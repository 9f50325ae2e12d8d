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


def test_it_fails_with_a_clear_reason_when_the_mirror_prefix_holds_no_databases(
    mirror: tuple[Any, str],
    updater_settings: Any,
    clamd: ClamdClient,
    private_clamd: tuple[Path, str],
    capsys: Any,
) -> None:
    s3, bucket = mirror
    # The right bucket, a mistyped prefix: the listing is empty, which must not read as "nothing changed".
    s3.put_object(Bucket=bucket, Key="clamav/present.hsb", Body=hsb(os.urandom(32), "S3av.Test.Present"))
    updater_settings.SIGNATURES_SOURCE = f"s3://{bucket}/clamv"
    live = signatures.live_generation(private_clamd[0])
    code, line = update(capsys)
    s3.delete_object(Bucket=bucket, Key="clamav/present.hsb")
    assert code == 1, line
    assert line == f"failed: s3://{bucket}/clamv/ holds no signature databases (is the prefix right?)"
    assert SignatureUpdate.objects.latest().status == "failed"
    assert signatures.live_generation(private_clamd[0]) == live
    assert verdict(clamd, EICAR)[0] == "infected"


def test_a_reload_keeps_scanning_with_the_old_database_while_the_new_one_loads(
    mirror: tuple[Any, str], updater_settings: Any, clamd: ClamdClient, monkeypatch: Any, capsys: Any
) -> None:
    from scanning.fleet.signatures import reload_clients

    s3, bucket = mirror
    sample = b"published while the fleet is busy " + os.urandom(16)
    # Enough signatures that loading them takes a second or more (the official databases take 10-40 s).
    bulk = "".join(
        f"{hashlib.md5(str(i).encode()).hexdigest()}:{1000 + i % 5000}:S3av.Test.Bulk{i}\n"  # noqa: S324
        for i in range(600_000)
    )
    s3.put_object(Bucket=bucket, Key="clamav/bulk.hdb", Body=bulk.encode())
    s3.put_object(Bucket=bucket, Key="clamav/during.hsb", Body=hsb(sample, "S3av.Test.During"))
    reloading = threading.Event()
    real_reload = ClamdClient.reload

    def reload(self: ClamdClient) -> str:
        reply = real_reload(self)
        reloading.set()
        return reply

    monkeypatch.setattr(ClamdClient, "reload", reload)
    # The plain updater in a thread (no database: the test's transaction is this thread's).
    updater = signatures.Updater(
        Path(updater_settings.CLAMAV_DIR), configured_source(), reload_clients(), reload_timeout=120
    )
    outcome: dict[str, signatures.Result] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=updater.run()))
    thread.start()
    try:
        assert reloading.wait(180), "the update never sent RELOAD"
        started = time.monotonic()
        quick = ClamdClient(updater_settings.CLAMD_ADDRESS, timeout=0.5)
        # While the new engine loads, scans and PING are answered at once, by the old engine.
        assert verdict(quick, sample)[0] == "clean"
        assert quick.ping()
        assert time.monotonic() - started < 1.0
        thread.join(180)
        assert outcome["result"].status == signatures.UPDATED, outcome["result"].line()
        assert verdict(clamd, sample) == ("infected", ["S3av.Test.During"])
    finally:
        thread.join(180)
        monkeypatch.undo()
        s3.delete_object(Bucket=bucket, Key="clamav/bulk.hdb")
        s3.delete_object(Bucket=bucket, Key="clamav/during.hsb")
        update(capsys)


def test_verdicts_do_not_claim_a_signature_set_that_clamd_has_not_loaded_yet(
    mirror: tuple[Any, str], clamd: ClamdClient, private_clamd: tuple[Path, str], capsys: Any
) -> None:
    from scanning.pipeline.scanner import EngineIdentity, _database_digest

    s3, bucket = mirror
    db = private_clamd[0] / "db"
    s3.put_object(Bucket=bucket, Key="clamav/ahead.hsb", Body=hsb(os.urandom(32), "S3av.Test.Ahead"))
    try:
        code, line = update(capsys)
        assert code == 0, line
        s3.put_object(Bucket=bucket, Key="clamav/ahead.hsb", Body=hsb(os.urandom(32), "S3av.Test.Ahead2"))
        # Swapped in on disk, clamd not (yet) reloaded: down at the time, or still loading.
        source = configured_source()
        assert source is not None
        assert signatures.Updater(private_clamd[0], source, []).run().status == signatures.UPDATED
        on_disk = _database_digest(str(db))
        assert on_disk and on_disk.startswith("custom-")

        def version() -> str:
            return EngineIdentity(clamd, db_dir=str(db), ttl=0).get()[1]

        assert version() == f"{on_disk}-reloading"
        code, line = update(capsys)  # the next run reloads the clamd that is behind
        assert code == 0 and line.startswith("current"), line
        assert version() == on_disk
    finally:
        s3.delete_object(Bucket=bucket, Key="clamav/ahead.hsb")
        update(capsys)


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

    s3, bucket = mirror
    s3.put_object(Bucket=bucket, Key="clamav/interval.hsb", Body=hsb(os.urandom(32), "S3av.Test.Interval"))
    settings.SIGNATURES_INTERVAL = 7200
    scheduler = Scheduler()
    now = timezone.now()
    assert scheduler.tick(now).signatures in {"updated", "current"}
    assert scheduler.tick(now + timedelta(minutes=119)).signatures == ""
    assert scheduler.tick(now + timedelta(minutes=121)).signatures == "current"
    assert SignatureUpdate.objects.count() == 2
    s3.delete_object(Bucket=bucket, Key="clamav/interval.hsb")
    update_signatures()

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


class DirSource:
    """A directory as the source (the update logic without S3 or freshclam around it)."""

    label = "dir"

    def __init__(self, root: Path):
        self.root = root

    def list(self) -> dict[str, signatures.RemoteFile]:
        return {
            path.name: signatures.RemoteFile(
                path.name, hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size
            )
            for path in self.root.iterdir()
        }

    def fetch(self, remote: signatures.RemoteFile, dest: Path) -> None:
        shutil.copyfile(self.root / remote.name, dest)


def test_a_test_load_that_could_not_run_is_not_remembered_as_a_rejection(tmp_path: Path) -> None:
    source_dir = tmp_path / "source"
    source_dir.mkdir()
    eicar = tmp_path / "eicar"
    eicar.write_bytes(EICAR)
    (source_dir / "base.hsb").write_bytes(hsb(EICAR, "S3av.Test.EICAR"))
    clamav_dir = tmp_path / "clamav"

    # clamscan missing (or killed, or timed out) says nothing about the files: a failure, not a verdict.
    broken = signatures.Updater(clamav_dir, DirSource(source_dir), [], clamscan=str(tmp_path / "no-clamscan"))
    result = broken.run()
    assert result.status == signatures.FAILED, result.line()
    assert "could not test-load" in result.reason
    assert signatures.read_state(clamav_dir).rejected == {}

    # With clamscan back, the same files go live instead of being "rejected earlier".
    result = signatures.Updater(clamav_dir, DirSource(source_dir), []).run()
    assert result.status == signatures.UPDATED, result.line()
    assert (clamav_dir / "db" / "base.hsb").is_file()


def _version_of(db: Path) -> str:
    from scanning.pipeline.scanner import _database_digest

    # What the signature version is named by with custom databases alone (clamd reports no number).
    digest = _database_digest(str(db))
    assert digest is not None
    return digest


def test_hosts_that_built_the_same_signatures_record_the_same_signature_version(tmp_path: Path) -> None:
    source_dir = tmp_path / "source"
    source_dir.mkdir()
    (source_dir / "base.hsb").write_bytes(hsb(EICAR, "S3av.Test.EICAR"))
    (source_dir / "extra.hsb").write_bytes(hsb(b"one", "S3av.Test.One"))
    host_a, host_b = tmp_path / "a", tmp_path / "b"
    assert signatures.Updater(host_a, DirSource(source_dir), []).run().status == signatures.UPDATED
    time.sleep(1.1)  # the other host downloads later: other times, another generation and canary
    assert signatures.Updater(host_b, DirSource(source_dir), []).run().status == signatures.UPDATED
    assert signatures.live_generation(host_a) != signatures.live_generation(host_b)
    version = _version_of(host_a / "db")
    assert version.startswith("custom-") and _version_of(host_b / "db") == version

    # A generation rebuilt from the same files (its canary went missing) is no new signature version,
    # so it starts no signature-change rescan.
    (host_a / "db" / signatures.CANARY_FILE).unlink()
    assert signatures.Updater(host_a, DirSource(source_dir), []).run().status == signatures.UPDATED
    assert _version_of(host_a / "db") == version

    # A real change, even of the same size, is a new version.
    (source_dir / "extra.hsb").write_bytes(hsb(b"two", "S3av.Test.Two"))
    assert signatures.Updater(host_a, DirSource(source_dir), []).run().status == signatures.UPDATED
    assert _version_of(host_a / "db") != version


def test_clamav_sh_lists_its_set_as_the_updater_does() -> None:
    clamav_dir = Path(tempfile.mkdtemp(prefix="s3avsh", dir="/tmp"))
    try:
        env = {**os.environ, "S3AV_CLAMAV_DIR": str(clamav_dir)}
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "clamav.sh"), "sigs"], env=env, check=True, capture_output=True
        )
        db = clamav_dir / "db"
        listed = (db / signatures.MANIFEST_FILE).read_text()
        assert listed == signatures.manifest(db)
        assert "  s3av-test.hsb\n" in listed
    finally:
        shutil.rmtree(clamav_dir, ignore_errors=True)

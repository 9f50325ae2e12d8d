"""Signature updates: fetch what changed from the source, prove it in a scratch engine, swap it in with
one rename, and have every clamd RELOAD it. Plain Python: no Django (the management command records the
outcome and reads the settings).

Layout under the clamav directory (``settings.CLAMAV_DIR``, where scripts/clamav.sh runs clamd from)::

    db                 symlink to db.d/<generation>: clamd's DatabaseDirectory and what the signature
                       version's digest reads. Replaced with one rename(2), so a reader sees the old set
                       or the new one, never a mix and never nothing.
    db.d/<generation>  one directory per generation, never written once it is live; the live one and
                       the one before it are kept, older ones removed.
    signatures.json    what the source held when the live generation was built (name -> etag, size),
                       when the source was last found current, the last rejected plan.
    freshclam/         freshclam's own download directory (source ``freshclam``): freshclam keeps its
                       state there and downloads only diffs.

Files of the live directory that the source never named (scripts/clamav.sh's ``s3av-test.hsb`` with the
EICAR and clam.exe test signatures, official databases it copied) are carried into every generation.

Every generation holds a canary: a hash signature of bytes named after the generation. After RELOAD a
clamd proves it runs *this* generation by finding the canary in those bytes; its VERSION cannot say so
when only custom databases are loaded (it then reports no database number).

A candidate is rejected when clamscan cannot load it (a malformed database), when it reports a known
clean file, or when it misses the EICAR test file or the canary (a ``.fp``/``.ign2`` that allows too much).
A rejected candidate is deleted; the live generation is not touched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from scanning.engine import clamd as engine

log = logging.getLogger(__name__)

CURRENT = "current"
UPDATED = "updated"
REJECTED = "rejected"
FAILED = "failed"

# Databases clamd loads (plus the detached .sign files ClamAV 1.5 checks CVDs with). Anything else in
# the source (a README, freshclam.dat) is ignored.
DATABASE_SUFFIXES = (
    ".cvd", ".cld", ".cud", ".sign", ".hdb", ".hsb", ".mdb", ".msb", ".ndb", ".ldb", ".cdb", ".yar",
    ".yara", ".ign2", ".fp", ".sfp", ".ftm", ".pdb", ".wdb", ".crb",
)  # fmt: skip
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
CANARY_FILE = "s3av-canary.hsb"
# `sha256sum` of the generation's databases, canary aside (scripts/clamav.sh writes the same): what the
# signature version is named by (scanning/pipeline/scanner.py), so hosts that built the same set from the same
# files name it alike, whatever the files' times or the generation's name.
MANIFEST_FILE = "s3av-set.sha256"
CANARY_PREFIX = "S3av.Canary."
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
KNOWN_CLEAN = b"s3av known-clean test file: plain text that no signature should match.\n"
STATE_FILE = "signatures.json"
CLAMSCAN_TIMEOUT = 900.0


class SourceError(Exception):
    """The source could not be read (unreachable, access denied, freshclam failed)."""


class Rejected(Exception):
    """The candidate database must not go live."""


class CannotTestLoad(SourceError):
    """The scratch engine could not be run (clamscan missing, killed, timed out): nothing was learnt about
    the candidate, so the run fails without remembering the files as rejected."""


def is_database_name(name: str) -> bool:
    return bool(_NAME_RE.match(name)) and name.lower().endswith(DATABASE_SUFFIXES) and name != CANARY_FILE


@dataclass(frozen=True)
class RemoteFile:
    name: str
    etag: str
    size: int


class Source(Protocol):
    label: str

    def list(self) -> dict[str, RemoteFile]: ...

    def fetch(self, remote: RemoteFile, dest: Path) -> None: ...


# --- sources -----------------------------------------------------------------------------------------


class S3Source:
    """``s3://bucket/prefix``: the database files directly under the prefix, compared by ETag and size."""

    def __init__(self, url: str, client: Any):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.label = f"s3://{bucket}/{self.prefix}"
        self.client = client

    def list(self) -> dict[str, RemoteFile]:
        found: dict[str, RemoteFile] = {}
        with _s3_errors(f"listing {self.label}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix) :]
                    if is_database_name(name):
                        found[name] = RemoteFile(
                            name, str(item.get("ETag", "")).strip('"'), int(item["Size"])
                        )
        return found

    def fetch(self, remote: RemoteFile, dest: Path) -> None:
        key = self.prefix + remote.name
        with _s3_errors(f"downloading s3://{self.bucket}/{key}"):
            # If-Match: the bytes listed are the bytes downloaded (a publish in between fails this run).
            body = self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=f'"{remote.etag}"')["Body"]
            with open(dest, "wb") as out:
                for chunk in body.iter_chunks(1024 * 1024):
                    out.write(chunk)
        if dest.stat().st_size != remote.size:
            raise SourceError(
                f"s3://{self.bucket}/{key}: got {dest.stat().st_size} bytes, listed {remote.size}"
            )


@contextlib.contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise SourceError(f"{what}: {error.get('Code', '?')} {error.get('Message', '')}".strip()) from exc
    except (BotoCoreError, OSError) as exc:
        raise SourceError(f"{what}: {exc}") from exc


class FreshclamSource:
    """freshclam (ClamAV's mirror, or the private mirror its own configuration names) run into a staging
    directory of its own; what it holds afterwards is the source."""

    label = "freshclam"

    def __init__(self, staging: Path, config: str, timeout: float = 1800.0):
        self.staging = staging
        self.config = config
        self.timeout = timeout

    def list(self) -> dict[str, RemoteFile]:
        self.staging.mkdir(parents=True, exist_ok=True)
        command = ["freshclam", f"--config-file={self.config}", f"--datadir={self.staging}", "--stdout"]
        try:
            run = subprocess.run(  # noqa: S603 - fixed program, our own arguments
                command, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SourceError(f"freshclam: {exc}") from exc
        # 0: updated, 1: already up to date; anything else is an error (freshclam(1)).
        if run.returncode not in (0, 1):
            lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
            errors = [line for line in lines if "ERROR" in line] or lines
            raise SourceError(f"freshclam exited {run.returncode}: {errors[-1] if errors else 'no output'}")
        found: dict[str, RemoteFile] = {}
        for path in sorted(self.staging.iterdir()):
            if path.is_file() and is_database_name(path.name):
                stat = path.stat()
                found[path.name] = RemoteFile(path.name, f"{stat.st_size}-{stat.st_mtime_ns}", stat.st_size)
        return found

    def fetch(self, remote: RemoteFile, dest: Path) -> None:
        shutil.copy2(self.staging / remote.name, dest)


# --- state -------------------------------------------------------------------------------------------


@dataclass
class State:
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""
    generation: str = ""
    updated_at: str = ""
    checked_at: str = ""
    rejected: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> State:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError):
            log.warning("signature state %s unreadable; starting afresh", path)
            return cls()
        known = {name: raw[name] for name in cls.__dataclass_fields__ if name in raw}
        return cls(**known)

    def write(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2, sort_keys=True))
        os.replace(tmp, path)


@dataclass
class Plan:
    download: list[RemoteFile]
    remove: list[str]

    @property
    def empty(self) -> bool:
        return not self.download and not self.remove

    def fingerprint(self) -> str:
        parts = [f"+{r.name}:{r.etag}:{r.size}" for r in sorted(self.download, key=lambda r: r.name)]
        parts += [f"-{name}" for name in sorted(self.remove)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def make_plan(state: State, live: Path | None, remote: dict[str, RemoteFile], source: str) -> Plan:
    known = state.files if state.source == source else {}
    download = []
    for name, item in sorted(remote.items()):
        recorded = known.get(name)
        present = live is not None and (live / name).is_file() and (live / name).stat().st_size == item.size
        if not (
            present and recorded and recorded.get("etag") == item.etag and recorded.get("size") == item.size
        ):
            download.append(item)
    remove = [
        name for name in sorted(known) if name not in remote and live is not None and (live / name).exists()
    ]
    return Plan(download, remove)


# --- the update --------------------------------------------------------------------------------------


@dataclass
class Result:
    status: str
    reason: str = ""
    generation: str = ""
    downloaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (CURRENT, UPDATED)

    def line(self) -> str:
        if self.status == CURRENT:
            return f"current: generation {self.generation or '?'} matches the source"
        if self.status == UPDATED:
            changed = ", ".join(self.downloaded + [f"-{name}" for name in self.removed]) or "nothing"
            return f"updated to generation {self.generation} ({changed}); reloaded {len(self.reloaded)} clamd"
        # One line whatever the reason carries (a botocore message, clamscan's output).
        return f"{self.status}: {' '.join(self.reason.split())}"


class Updater:
    """One update run against ``clamav_dir`` (see the module docstring for its layout)."""

    def __init__(
        self,
        clamav_dir: Path,
        source: Source,
        clamds: list[engine.ClamdClient],
        reload_timeout: float = 300.0,
        clamscan: str = "clamscan",
    ):
        self.dir = Path(clamav_dir)
        self.link = self.dir / "db"
        self.generations = self.dir / "db.d"
        self.state_path = self.dir / STATE_FILE
        self.source = source
        self.clamds = clamds
        self.reload_timeout = reload_timeout
        self.clamscan = clamscan

    def run(self) -> Result:
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            with _locked(self.dir / ".lock"):
                return self._run()
        except SourceError as exc:
            return Result(FAILED, str(exc))

    def _run(self) -> Result:
        state = State.read(self.state_path)
        live = self.link.resolve() if self.link.is_dir() else None
        try:
            remote = self.source.list()
        except SourceError as exc:
            return Result(FAILED, str(exc), generation=state.generation)
        if not remote and not (state.source == self.source.label and state.files):
            # A wrong prefix lists nothing rather than failing: that must not read as "nothing changed"
            # (current, forever). A source that did deliver files may withdraw them all.
            return Result(
                FAILED,
                f"{self.source.label} holds no signature databases (is the prefix right?)",
                generation=state.generation,
            )
        plan = make_plan(state, live, remote, self.source.label)
        canary_live = live is not None and (live / CANARY_FILE).is_file()
        if plan.empty and canary_live:
            state.checked_at = _now()
            state.rejected = {}
            state.write(self.state_path)
            result = Result(CURRENT, generation=state.generation)
            # A clamd that missed the last RELOAD (down, or slower than the timeout) gets it now.
            assert live is not None
            self._reload_all(live.name, result, only_if_behind=True)
            return result
        if state.rejected.get("plan") == plan.fingerprint():
            # The same files as the rejected run: reject again without downloading them again.
            return Result(
                REJECTED, state.rejected.get("reason", "rejected earlier"), generation=state.generation
            )
        generation = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
        self.generations.mkdir(exist_ok=True)
        candidate = self.generations / f".{generation}.tmp"
        refused = self._build_verified(candidate, live, plan, generation, state)
        if refused is not None:
            return refused
        previous = self._swap(candidate, generation) or (live.name if live is not None else "")
        state.files = {name: {"etag": item.etag, "size": item.size} for name, item in remote.items()}
        state.source = self.source.label
        state.generation = generation
        state.updated_at = state.checked_at = _now()
        state.rejected = {}
        state.write(self.state_path)
        result = Result(
            UPDATED,
            generation=generation,
            downloaded=[item.name for item in plan.download],
            removed=list(plan.remove),
        )
        self._reload_all(generation, result)
        self._prune(keep={generation, previous})
        return result

    def _build_verified(
        self, candidate: Path, live: Path | None, plan: Plan, generation: str, state: State
    ) -> Result | None:
        """Build the candidate set and test-load it; the Result to answer when it must not go live."""
        try:
            try:
                self._build(candidate, live, plan, generation)
            except OSError as exc:  # the disk (full, permissions), not the source
                raise SourceError(f"building {candidate.name}: {exc}") from exc
            verify(candidate, generation, self.clamscan)
        except Rejected as exc:
            shutil.rmtree(candidate, ignore_errors=True)
            state.rejected = {"plan": plan.fingerprint(), "reason": str(exc), "at": _now()}
            state.write(self.state_path)
            return Result(REJECTED, str(exc), generation=state.generation)
        except SourceError as exc:
            shutil.rmtree(candidate, ignore_errors=True)
            return Result(FAILED, str(exc), generation=state.generation)
        return None

    def _build(self, candidate: Path, live: Path | None, plan: Plan, generation: str) -> None:
        candidate.mkdir()
        replaced = {item.name for item in plan.download} | set(plan.remove) | {CANARY_FILE, MANIFEST_FILE}
        if live is not None:
            for path in live.iterdir():
                if path.is_file() and path.name not in replaced:
                    _link_or_copy(path, candidate / path.name)
        for item in plan.download:
            self.source.fetch(item, candidate / item.name)
        (candidate / MANIFEST_FILE).write_text(manifest(candidate))
        (candidate / CANARY_FILE).write_text(canary_signature(generation))

    def _swap(self, candidate: Path, generation: str) -> str:
        """Make ``generation`` live; returns the name a plain directory moved aside got ('' if none)."""
        final = self.generations / generation
        os.rename(candidate, final)
        legacy = ""
        if self.link.is_dir() and not self.link.is_symlink():
            # The first update of a directory scripts/clamav.sh built before generations existed: move it
            # aside as a generation of its own. Between these two renames the path is briefly missing;
            # clamd reads it only at RELOAD, which comes after.
            legacy = "legacy-" + secrets.token_hex(3)
            os.rename(self.link, self.generations / legacy)
        tmp_link = self.dir / f".db.{generation}.link"
        os.symlink(os.path.join("db.d", generation), tmp_link)
        os.replace(tmp_link, self.link)
        _fsync_dir(self.dir)
        return legacy

    def _reload_all(self, generation: str, result: Result, only_if_behind: bool = False) -> None:
        failures = []
        for client in self.clamds:
            try:
                if only_if_behind and runs_generation(client, generation):
                    continue
                result.versions[client.address] = reload_and_confirm(client, generation, self.reload_timeout)
                result.reloaded.append(client.address)
            except engine.EngineError as exc:
                failures.append(f"{client.address}: {exc}")
        if failures:
            result.status = FAILED
            result.reason = (
                f"generation {generation} is live on disk but not confirmed by every clamd: "
                + "; ".join(failures)
            )

    def _prune(self, keep: set[str]) -> None:
        for path in self.generations.iterdir():
            if path.name not in keep and path.is_dir() and not path.name.startswith("."):
                shutil.rmtree(path, ignore_errors=True)
            elif path.name.startswith(".") and path.name.endswith(".tmp"):
                # A candidate left by a killed run (we hold the lock, so none is being built now).
                shutil.rmtree(path, ignore_errors=True)


# --- proving a candidate -----------------------------------------------------------------------------


def canary_bytes(generation: str) -> bytes:
    return f"s3av signature canary {generation}\n".encode()


def canary_name(generation: str) -> str:
    return CANARY_PREFIX + generation


def canary_signature(generation: str) -> str:
    data = canary_bytes(generation)
    return f"{hashlib.sha256(data).hexdigest()}:{len(data)}:{canary_name(generation)}\n"


def _is_canary(name: str, generation: str) -> bool:
    # clamscan (and clamd, in some builds) append .UNOFFICIAL to signatures from non-CVD databases.
    return name.removesuffix(".UNOFFICIAL") == canary_name(generation)


def verify(candidate: Path, generation: str, clamscan: str = "clamscan") -> None:
    """Load ``candidate`` in a scratch engine (clamscan) and scan a known-clean file, the EICAR test file
    and the generation's canary. Raises Rejected with the reason on one line."""
    with tempfile.TemporaryDirectory(prefix="s3av-sigtest-") as work:
        files = {"clean": KNOWN_CLEAN, "eicar": EICAR, "canary": canary_bytes(generation)}
        for name, data in files.items():
            Path(work, name).write_bytes(data)
        command = [clamscan, "--no-summary", "--stdout", "-d", str(candidate)]
        command += [str(Path(work, name)) for name in files]
        try:
            run = subprocess.run(  # noqa: S603 - fixed program, our own arguments
                command, capture_output=True, text=True, timeout=CLAMSCAN_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CannotTestLoad(f"could not test-load the candidate: {exc}") from exc
        output = run.stdout + run.stderr
        if run.returncode < 0:  # killed (the OOM killer, say): says nothing about the candidate
            raise CannotTestLoad(f"clamscan was killed by signal {-run.returncode} while test-loading")
        if run.returncode not in (0, 1):
            raise Rejected(f"test load failed (clamscan exit {run.returncode}): {_first_error(output)}")
        found = {name: _reply_for(output, str(Path(work, name))) for name in files}
    if found["clean"] != "OK":
        raise Rejected(f"the candidate reports a known-clean file as {found['clean'] or 'nothing'}")
    if not found["eicar"].endswith(" FOUND"):
        raise Rejected("the candidate does not detect the EICAR test file")
    if not _is_canary(found["canary"].removesuffix(" FOUND"), generation):
        raise Rejected(
            f"the candidate does not load its own canary signature (got {found['canary'] or 'nothing'})"
        )


def _reply_for(output: str, path: str) -> str:
    for line in output.splitlines():
        if line.startswith(path + ": "):
            return line[len(path) + 2 :].strip()
    return ""


def _first_error(output: str) -> str:
    # clamscan's own "ERROR: Malformed database" plus libclamav's lines naming the file and line.
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line.removeprefix("LibClamAV Error: ") for line in lines if "rror" in line]
    return "; ".join(dict.fromkeys(errors or lines or ["no output"]))[:500]


def canary_generation(db_dir: str | Path) -> str | None:
    """The generation whose canary ``db_dir`` holds (None for a set without one)."""
    try:
        line = (Path(db_dir) / CANARY_FILE).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    name = line.rsplit(":", 1)[-1]
    return name.removeprefix(CANARY_PREFIX) if name.startswith(CANARY_PREFIX) else None


def runs_generation(client: engine.ClamdClient, generation: str) -> bool:
    reply = client.scan_stream([canary_bytes(generation)])
    return any(_is_canary(name, generation) for name in reply.signatures)


def reload_and_confirm(client: engine.ClamdClient, generation: str, timeout: float) -> str:
    """RELOAD, then wait until clamd finds this generation's canary; returns its VERSION reply."""
    client.reload()
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while True:
        try:
            reply = client.scan_stream([canary_bytes(generation)])
            if any(_is_canary(name, generation) for name in reply.signatures):
                return client.version().raw.strip("\0").strip()
            last = f"still answers {reply.raw.strip(chr(0)).strip()!r}"
        except engine.EngineUnavailable as exc:
            last = str(exc)  # busy loading: a non-concurrent reload answers nothing meanwhile
        if time.monotonic() >= deadline:
            raise engine.EngineUnavailable(
                f"did not load generation {generation} within {timeout:g}s ({last})"
            )
        time.sleep(0.25)


def manifest(directory: Path) -> str:
    """The ``MANIFEST_FILE`` of ``directory``: one ``<sha256>  <name>`` line per database, by name."""
    lines = []
    for path in sorted(directory.iterdir(), key=lambda p: p.name):
        if path.is_file() and path.name not in (CANARY_FILE, MANIFEST_FILE):
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1024 * 1024), b""):
                    digest.update(block)
            lines.append(f"{digest.hexdigest()}  {path.name}\n")
    return "".join(lines)


def live_generation(clamav_dir: Path) -> str:
    """The generation clamd's database directory points at ('' without generations yet)."""
    link = Path(clamav_dir) / "db"
    return link.resolve().name if link.is_symlink() else ""


def read_state(clamav_dir: Path) -> State:
    return State.read(Path(clamav_dir) / STATE_FILE)


# --- plumbing ----------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _link_or_copy(src: Path, dest: Path) -> None:
    # A hard link keeps size and mtime (so the signature version's digest of unchanged files is stable)
    # and costs no space; generations are never written, so sharing inodes is safe.
    try:
        os.link(src, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(src, dest)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(path: Path, wait: float = 300.0, sleep: Callable[[float], None] = time.sleep) -> Iterator[None]:
    # The same lock file scripts/clamav.sh takes (flock(1)), so `clamav.sh sigs` and an update never
    # build the database at once.
    with open(path, "a") as fh:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SourceError(f"timed out waiting for the lock on {path}") from None
                sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)

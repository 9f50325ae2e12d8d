"""Scan one pinned S3 object version with clamd. No database: the verdict is the caller's to record.

Used by the worker pipeline and by the one-shot `scan` command. Fails closed: the outcome is Clean
only when clamd answered OK after the terminating frame and exactly ``ref.size`` bytes went through.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from scanning.engine import clamd as engine
from scanning.engine import signatures
from scanning.models import Verdict
from scanning.s3 import ops as s3ops

logger = logging.getLogger(__name__)

# The verdicts a scan can end with (InfectedAllowed is an operator's, never a scan's).
VERDICTS = (Verdict.CLEAN, Verdict.INFECTED, Verdict.UNSCANNABLE, Verdict.ERROR)

# What clamd answered (the engine's own reply status), as a verdict.
_VERDICT_OF_STATUS = {
    engine.CLEAN: Verdict.CLEAN,
    engine.INFECTED: Verdict.INFECTED,
    engine.UNSCANNABLE: Verdict.UNSCANNABLE,
}


def verdict_of(reply: engine.EngineReply) -> Verdict:
    return _VERDICT_OF_STATUS[reply.status]


@dataclass
class Outcome:
    verdict: str
    signatures: list[str] = field(default_factory=list)
    message: str = ""
    sha256: str = ""
    bytes_read: int = 0
    engine: str = ""
    signature_version: str = ""
    duration_ms: int = 0
    # S3 said there is no such object (version): nothing to tag or act on.
    gone: bool = False
    # What GetObject said the bytes are (None when nothing was read): the version a request without
    # a version id ends pinned to.
    read: s3ops.ObjectRef | None = None


class EngineIdentity:
    """The engine and signature version, asked of clamd at most once a minute per process.

    The signature version is clamd's database version (the daily number of the official databases) and,
    when clamd's database directory is readable here, a digest of its files: custom databases (hash
    signatures added by an operator) change no number clamd reports, so the digest is what tells a
    changed signature set from the old one. With neither, the version is the constant ``custom`` and a
    warning says so once. When the directory holds a generation's canary (scanning/engine/signatures.py),
    clamd must find it: until it does (a RELOAD under way, or missed) the digest ends in ``-reloading``.
    """

    def __init__(self, client: engine.ClamdClient, db_dir: str | None = None, ttl: float = 60.0):
        self.client = client
        self.db_dir = db_dir
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: tuple[float, str, str] | None = None  # (valid until, engine, signature version)

    def get(self) -> tuple[str, str]:
        with self._lock:
            if self._value and time.monotonic() < self._value[0]:
                return self._value[1], self._value[2]
        version = self.client.version()
        digest = _database_digest(self.db_dir)
        ttl = self.ttl
        generation = signatures.canary_generation(self.db_dir) if digest and self.db_dir else None
        if digest and generation and not signatures.runs_generation(self.client, generation):
            # The directory is ahead of clamd (a RELOAD under way, or one it missed): the files name a
            # set clamd does not run yet. Verdicts must not claim it, or the rescans for it skip them.
            # Asked again soon: a reload takes seconds.
            digest += "-reloading"
            ttl = min(ttl, 1.0)
        signature_version = _signature_version(version.signature_version, digest)
        with self._lock:
            self._value = (time.monotonic() + ttl, version.engine, signature_version)
        return version.engine, signature_version


_warned_unknown = False


def _signature_version(reported: str | None, digest: str | None) -> str:
    global _warned_unknown
    if reported and digest:
        return f"{reported}+{digest}"
    if reported or digest:
        return reported or digest or ""
    if not _warned_unknown:
        _warned_unknown = True
        logger.warning(
            "clamd reports no database version and its database directory is not readable here "
            "(S3AV_CLAMAV_DIR/db): the signature version is the constant 'custom', so a changed database "
            "neither invalidates earlier verdicts nor starts signature-change rescans"
        )
    return "custom"


def _database_digest(db_dir: str | None) -> str | None:
    # Name the set by a digest of its files, so a changed database changes the signature version results
    # are pinned to. None when the directory is not here. A set built by update_signatures or clamav.sh
    # lists its files' SHA-256 (signatures.MANIFEST_FILE): then names, sizes and that list, so every host
    # holding the same files names them alike and a rebuilt generation of the same files changes nothing
    # (the canary is per generation, not part of the set); else names, sizes and modification times.
    if not db_dir or not os.path.isdir(db_dir):
        return None
    names = sorted(os.listdir(db_dir))
    listed = signatures.MANIFEST_FILE in names
    digest = hashlib.sha256()
    for name in names:
        path = os.path.join(db_dir, name)
        if name == signatures.CANARY_FILE or not os.path.isfile(path):
            continue
        stat = os.stat(path)
        if name == signatures.MANIFEST_FILE:
            with open(path, "rb") as fh:
                digest.update(fh.read())
        elif listed:
            digest.update(f"{name}:{stat.st_size}\n".encode())
        else:
            digest.update(f"{name}:{stat.st_size}:{int(stat.st_mtime)}\n".encode())
    return f"custom-{digest.hexdigest()[:12]}"


def _with_heartbeat(
    chunks: Iterator[bytes], beat: Callable[[], None] | None, every: float
) -> Iterator[bytes]:
    last = time.monotonic()
    for chunk in chunks:
        if beat is not None and time.monotonic() - last > every:
            beat()
            last = time.monotonic()
        yield chunk


def scan_ref(
    s3: Any,
    clamd: engine.ClamdClient,
    identity: EngineIdentity,
    ref: s3ops.ObjectRef,
    max_size: int,
    heartbeat: Callable[[], None] | None = None,
    heartbeat_every: float = 30.0,
) -> Outcome:
    """Scan ``ref``. Raises TransientS3Error / EngineUnavailable for the caller to retry; a permanent
    S3 failure becomes an Error outcome."""
    started = time.monotonic()
    engine_name, signature_version = identity.get()
    outcome = Outcome(verdict=Verdict.ERROR, engine=engine_name, signature_version=signature_version)
    if ref.size > max_size:
        outcome.verdict = Verdict.UNSCANNABLE
        outcome.message = f"object is {ref.size} bytes, larger than the {max_size}-byte limit; not downloaded"
        return outcome
    try:
        outcome.read, chunks = s3ops.open_object(s3, ref)
        stream = s3ops.DigestingStream(chunks)
    except s3ops.PermanentS3Error as exc:
        if exc.code in s3ops.CHANGED_CODES:
            raise  # the pinned bytes were replaced: the caller decides (their own event scans them)
        outcome.message = exc.message
        outcome.gone = isinstance(exc, s3ops.ObjectGone)
        return outcome
    try:
        reply = clamd.scan_stream(_with_heartbeat(stream, heartbeat, heartbeat_every))
    except s3ops.PermanentS3Error as exc:
        outcome.message = exc.message
        return outcome
    finally:
        stream.close()
    outcome.verdict = verdict_of(reply)
    outcome.signatures = list(reply.signatures)
    outcome.sha256 = stream.sha256
    outcome.bytes_read = stream.bytes_read
    if reply.status == engine.UNSCANNABLE:
        outcome.message = f"the engine could not inspect it fully: {reply.reason}"
    if reply.status == engine.CLEAN:
        # Fail closed: OK covers only what was sent. Fewer bytes than the pin says is a retry.
        stream.check_size(ref)
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    return outcome

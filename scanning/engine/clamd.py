"""A clamd client that s3av owns.

Plain Python, no Django: it can be read and tested on its own against a real clamd.

Why not pyclamd or python-clamd: pyclamd writes with ``socket.send`` (a partial send desynchronises the
INSTREAM framing) and neither sets a socket timeout (a silent clamd blocks a worker forever); python-clamd
surfaces clamd's StreamMaxLength close as a broken pipe.

The client fails closed: the only way to get ``"clean"`` is clamd answering exactly ``stream: OK`` after
the terminating zero-length frame went out. Anything unexpected raises ``EngineUnavailable``, which the
caller treats as transient and retries.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "CLEAN",
    "INFECTED",
    "UNSCANNABLE",
    "SIZE_LIMIT_REASON",
    "ClamdClient",
    "EngineError",
    "EngineReply",
    "EngineUnavailable",
    "EngineVersion",
    "parse_scan_reply",
    "parse_version",
]

CLEAN: Literal["clean"] = "clean"
INFECTED: Literal["infected"] = "infected"
UNSCANNABLE: Literal["unscannable"] = "unscannable"
Status = Literal["clean", "infected", "unscannable"]

SIZE_LIMIT_REASON = "object exceeds the engine's StreamMaxLength"

# Names clamd uses to say it could not look at (all of) the object, as opposed to having found something:
# - Heuristics.Limits.Exceeded.*  a MaxScanSize/MaxFileSize/MaxRecursion/MaxFiles/MaxScanTime limit
#   (needs AlertExceedsMax; otherwise clamd answers OK for the part it did scan);
# - Heuristics.Encrypted.*        an encrypted archive or document (AlertEncrypted*);
# - Heuristics.Broken.*           a PE/ELF or media parser gave up on a malformed file (AlertBroken*,
#   off in our clamd.conf); the parser stopped, so the rest of the file went unexamined.
# Every other name, Heuristics.* included (phishing, OLE2 macros, structured data), is a detection.
UNSCANNABLE_PREFIXES = ("Heuristics.Limits.Exceeded", "Heuristics.Encrypted", "Heuristics.Broken")

MAX_FRAME = 1024 * 1024
# A larger INSTREAM send buffer than Linux's ~200 KiB, for ClamdClient(send_buffer=...). Measured with
# bench/large.py (docs/performance.md, "Large objects"): on one machine it helped in one run and not in
# the next, so the default stays the system's. Best effort: the kernel caps it at net.core.wmem_max.
SEND_BUFFER = 4 * 1024 * 1024
# clamd's own replies are a few hundred bytes (STATS a few KiB); anything much larger is not clamd.
MAX_REPLY = 1024 * 1024
UNIX_PATH_MAX = 107

_LENGTH = struct.Struct(">I")
_FOUND = re.compile(r"^stream: (?P<name>\S.*?) FOUND$")


class EngineError(Exception):
    """Base class of errors raised by the engine client."""


class EngineUnavailable(EngineError):
    """clamd could not give a verdict this time (down, busy, timed out, odd reply): retry later."""


class _ConnectionReset(EngineUnavailable):
    """clamd closed the connection while our data was still unread on its side."""


@dataclass(frozen=True)
class EngineReply:
    status: Status
    signatures: list[str] = field(default_factory=list)
    raw: str = ""
    # Why an object is unscannable: the heuristic names, or SIZE_LIMIT_REASON. Empty otherwise.
    reason: str = ""

    @property
    def is_clean(self) -> bool:
        return self.status == CLEAN


@dataclass(frozen=True)
class EngineVersion:
    engine: str
    # None when clamd reports no database version, e.g. with only custom (non-CVD) databases loaded:
    # the caller then identifies the signature set itself (a digest of the database directory).
    signature_version: str | None
    signature_date: str | None
    raw: str


def _split_reply(raw: str) -> list[str]:
    # z-commands end each reply with NUL; ALLMATCHSCAN-style replies carry several, one per signature.
    return [line.strip() for line in re.split(r"[\0\n]", raw) if line.strip()]


def parse_scan_reply(raw: str, *, stream_complete: bool = True) -> EngineReply:
    """Classify clamd's answer to INSTREAM.

    ``stream_complete`` says whether the terminating zero-length frame was sent: without it, ``stream: OK``
    cannot be trusted to cover the whole object and is refused.
    """
    lines = _split_reply(raw)
    if not lines:
        raise EngineUnavailable("clamd closed the connection without a reply")
    signatures: list[str] = []
    ok = size_limit = False
    for line in lines:
        if line == "stream: OK":
            ok = True
        elif match := _FOUND.match(line):
            signatures.append(match["name"])
        elif line.startswith("INSTREAM size limit exceeded"):
            size_limit = True
        else:
            raise EngineUnavailable(f"unexpected clamd reply: {raw!r}")

    if signatures:
        limits = [name for name in signatures if name.startswith(UNSCANNABLE_PREFIXES)]
        if len(limits) == len(signatures):
            return EngineReply(UNSCANNABLE, signatures, raw, reason=", ".join(limits))
        return EngineReply(INFECTED, signatures, raw)
    if size_limit:
        return EngineReply(UNSCANNABLE, [], raw, reason=SIZE_LIMIT_REASON)
    if ok and lines == ["stream: OK"] and stream_complete:
        return EngineReply(CLEAN, [], raw)
    raise EngineUnavailable(f"unexpected clamd reply: {raw!r}")


def parse_version(raw: str) -> EngineVersion:
    """``ClamAV 1.4.6/27000/Mon Nov 24 09:00:00 2025``, or just ``ClamAV 1.4.6`` with custom databases."""
    text = raw.strip("\0").strip()
    if not text.startswith("ClamAV "):
        raise EngineUnavailable(f"unexpected clamd VERSION reply: {raw!r}")
    engine, _, rest = text.partition("/")
    signature_version, _, signature_date = rest.partition("/")
    return EngineVersion(
        engine=engine.strip(),
        signature_version=signature_version.strip() or None,
        signature_date=signature_date.strip() or None,
        raw=raw,
    )


class ClamdClient:
    """Talks to clamd over ``unix:///path/to/clamd.sock`` or ``tcp://host:port``.

    ``timeout`` bounds every socket operation (connect, each send, reading a short reply).
    ``scan_timeout`` bounds the wait for a scan verdict once the whole object has been sent; it is longer
    than clamd's MaxScanTime (120 s in our clamd.conf) so a slow scan ends as clamd's own
    Heuristics.Limits.Exceeded.MaxScanTime (unscannable) rather than as a timeout retried forever.
    ``stream_max_length`` is clamd's StreamMaxLength when known (s3av renders it from
    S3AV_MAX_OBJECT_SIZE): a stream clamd closes without a readable reply is that limit only when more
    bytes than it were sent. Any other dropped stream (a clamd restarted mid-scan, say) is transient, and
    so is every dropped stream when the limit is not known.
    ``send_buffer`` is the INSTREAM socket's SO_SNDBUF (``None`` keeps the system's default).
    """

    def __init__(
        self,
        address: str,
        timeout: float = 30.0,
        *,
        scan_timeout: float = 180.0,
        max_frame: int = MAX_FRAME,
        stream_max_length: int | None = None,
        send_buffer: int | None = None,
    ) -> None:
        if not 1 <= max_frame < 2**32:
            raise ValueError(f"max_frame must be between 1 and 2**32 - 1 bytes, not {max_frame!r}")
        self.address = address
        self.timeout = timeout
        self.scan_timeout = scan_timeout
        self.max_frame = max_frame
        self.stream_max_length = stream_max_length
        self.send_buffer = send_buffer
        self._target = _parse_address(address)

    def __repr__(self) -> str:
        return f"ClamdClient({self.address!r})"

    # -- commands --------------------------------------------------------------------------------------

    def ping(self) -> bool:
        reply = self._command(b"PING")
        if reply.strip("\0").strip() != "PONG":
            raise EngineUnavailable(f"unexpected clamd PING reply: {reply!r}")
        return True

    def version(self) -> EngineVersion:
        return parse_version(self._command(b"VERSION"))

    def reload(self) -> str:
        reply = self._command(b"RELOAD").strip("\0").strip()
        if reply != "RELOADING":
            raise EngineUnavailable(f"unexpected clamd RELOAD reply: {reply!r}")
        return reply

    def stats(self) -> str:
        reply = self._command(b"STATS").strip("\0").strip()
        if not reply.endswith("END"):
            raise EngineUnavailable(f"unexpected clamd STATS reply: {reply!r}")
        return reply

    def scan_stream(self, chunks: Iterable[bytes]) -> EngineReply:
        """Stream ``chunks`` to clamd with INSTREAM as they arrive and return its verdict.

        Memory stays bounded by the largest chunk: chunks are framed (at most ``max_frame`` bytes each)
        and sent one by one, never joined. An exception raised by ``chunks`` itself propagates unchanged
        (the connection is dropped and clamd discards the partial stream).
        """
        sock = self._connect()
        self._grow_send_buffer(sock)
        # Bytes announced in frame headers so far: clamd refuses a frame that would take the stream past
        # StreamMaxLength, so only a count above the limit can mean the limit.
        announced = 0
        with sock:
            try:
                sock.sendall(b"zINSTREAM\0")
                for chunk in chunks:
                    view = memoryview(chunk).cast("B")
                    # A zero-length frame would end the stream early: an empty chunk is just skipped.
                    for start in range(0, len(view), self.max_frame):
                        frame = view[start : start + self.max_frame]
                        announced += len(frame)
                        sock.sendall(_LENGTH.pack(len(frame)))
                        sock.sendall(frame)
                sock.sendall(_LENGTH.pack(0))
            except (BrokenPipeError, ConnectionResetError) as exc:
                return self._after_send_failure(sock, exc, announced)
            except OSError as exc:
                raise EngineUnavailable(f"sending to clamd at {self.address} failed: {exc!r}") from exc
            try:
                raw = self._read_reply(sock, self.scan_timeout)
            except _ConnectionReset as exc:
                # Everything fit in the socket buffers, but clamd stopped reading before the end.
                return self._stream_dropped(exc, announced)
        return parse_scan_reply(raw, stream_complete=True)

    # -- plumbing --------------------------------------------------------------------------------------

    def _grow_send_buffer(self, sock: socket.socket) -> None:
        if not self.send_buffer:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        except OSError:
            pass  # only a speed-up: the stream is the same with the default buffer

    def _after_send_failure(self, sock: socket.socket, exc: OSError, announced: int) -> EngineReply:
        # clamd answers `INSTREAM size limit exceeded. ERROR` and closes the socket once StreamMaxLength
        # is passed; a client still writing gets EPIPE/ECONNRESET first. Whether the reply can still be
        # read depends on the kernel: on Linux, closing a socket with unread data resets the connection
        # and the reply is lost (seen over unix sockets with clamd 1.4.6).
        try:
            raw = self._read_reply(sock, min(self.timeout, 5.0))
        except EngineUnavailable:
            raw = ""
        if raw.strip("\0").strip():
            # Never clean: the object was not sent in full.
            return parse_scan_reply(raw, stream_complete=False)
        return self._stream_dropped(exc, announced)

    def _stream_dropped(self, exc: Exception, announced: int) -> EngineReply:
        # clamd closed the stream with our data unread and no readable reply. It does that on purpose only
        # once the stream passes StreamMaxLength; a connection dropped before that (a restarted or killed
        # clamd, a proxy in between) says nothing about the object: retry later.
        try:
            self.ping()
        except EngineUnavailable as ping_exc:
            raise EngineUnavailable(
                f"clamd at {self.address} dropped the stream ({exc!r}) and no longer answers"
            ) from ping_exc
        limit = self.stream_max_length
        if limit is None or announced <= limit:
            within = "(limit unknown)" if limit is None else f"within its StreamMaxLength of {limit} bytes"
            raise EngineUnavailable(
                f"clamd at {self.address} dropped the stream after {announced} bytes, {within} ({exc!r}); "
                "if clamd's StreamMaxLength is below S3AV_MAX_OBJECT_SIZE, raise it to match"
            )
        return EngineReply(
            UNSCANNABLE, [], f"connection closed by clamd after {announced} bytes: {exc!r}", SIZE_LIMIT_REASON
        )

    def _connect(self) -> socket.socket:
        try:
            if isinstance(self._target, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                try:
                    sock.connect(self._target)
                except BaseException:
                    sock.close()
                    raise
            else:
                # Tries every address the name resolves to (IPv4 and IPv6 alike).
                sock = socket.create_connection(self._target, timeout=self.timeout)
        except OSError as exc:
            raise EngineUnavailable(f"cannot connect to clamd at {self.address}: {exc!r}") from exc
        sock.settimeout(self.timeout)
        return sock

    def _command(self, name: bytes) -> str:
        sock = self._connect()
        with sock:
            try:
                sock.sendall(b"z" + name + b"\0")
            except OSError as exc:
                raise EngineUnavailable(f"sending {name.decode()} to clamd failed: {exc!r}") from exc
            return self._read_reply(sock, self.timeout)

    def _read_reply(self, sock: socket.socket, timeout: float) -> str:
        # Read to EOF (clamd closes after each non-session command) under one overall deadline, so a
        # peer trickling bytes cannot hold the caller past `timeout`.
        deadline = time.monotonic() + timeout
        parts: list[bytes] = []
        received = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EngineUnavailable(f"clamd at {self.address} did not answer within {timeout:g}s")
            sock.settimeout(remaining)
            try:
                data = sock.recv(65536)
            except ConnectionResetError as exc:
                raise _ConnectionReset(f"clamd at {self.address} reset the connection: {exc!r}") from exc
            except TimeoutError as exc:
                raise EngineUnavailable(
                    f"clamd at {self.address} did not answer within {timeout:g}s"
                ) from exc
            except OSError as exc:
                raise EngineUnavailable(f"reading from clamd at {self.address} failed: {exc!r}") from exc
            if not data:
                break
            parts.append(data)
            received += len(data)
            if received > MAX_REPLY:
                raise EngineUnavailable(f"reply from {self.address} exceeds {MAX_REPLY} bytes")
        return b"".join(parts).decode("utf-8", errors="replace")


def _parse_address(address: str) -> str | tuple[str, int]:
    """The unix socket path, or the (host, port) pair."""
    expected = "expected unix:///path/to/clamd.sock or tcp://host:port"
    if not isinstance(address, str) or not address:
        raise ValueError(f"invalid clamd address {address!r}: {expected}")
    parts = urlsplit(address)
    if parts.scheme == "unix":
        path = parts.path
        if parts.netloc or not path.startswith("/") or parts.query or parts.fragment:
            raise ValueError(f"invalid clamd address {address!r}: {expected} (an absolute path)")
        if len(path.encode()) > UNIX_PATH_MAX:
            raise ValueError(
                f"invalid clamd address {address!r}: the socket path is longer than {UNIX_PATH_MAX} bytes"
            )
        return path
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError:
            port = None
        host = parts.hostname
        if not host or port is None or port == 0 or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"invalid clamd address {address!r}: {expected}")
        return host, port
    raise ValueError(f"invalid clamd address {address!r}: {expected}")

"""ClamdClient against a real clamd started by scripts/clamav.sh (and against tiny fake servers for the
failures a real clamd will not produce on demand).

The fixtures live in this module, not a conftest, so the engine's tests read on their own (the client
needs no Django; the test session still loads the project's settings through tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scanning.engine.clamd import (
    SIZE_LIMIT_REASON,
    ClamdClient,
    EngineReply,
    EngineUnavailable,
)

PROJECT_DIR = Path(__file__).resolve().parents[3]
SCRIPT = PROJECT_DIR / "scripts" / "clamav.sh"
TESTFILES = Path("/usr/share/clamav-testfiles")
MiB = 1024 * 1024

# The 68-byte EICAR test string, assembled here so no file in the repository is detected itself.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def _start_clamd(env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["bash", str(SCRIPT), "start"],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"clamav.sh start failed:\n{result.stdout}\n{result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.startswith("S3AV_CLAMD=")]
    assert lines, f"clamav.sh start printed no address:\n{result.stdout}\n{result.stderr}"
    return lines[-1].removeprefix("S3AV_CLAMD=")


@pytest.fixture(scope="session")
def clamd() -> ClamdClient:
    address = os.environ.get("S3AV_CLAMD") or _start_clamd()
    return ClamdClient(address, timeout=30)


@pytest.fixture(scope="module")
def small_clamd() -> Iterator[ClamdClient]:
    """A second clamd whose StreamMaxLength, MaxScanSize and MaxFileSize are all 1M."""
    # Under /tmp with a short name: the socket path must fit AF_UNIX's 107 bytes.
    state_dir = tempfile.mkdtemp(prefix="s3av-", dir="/tmp")
    env = {"S3AV_CLAMAV_DIR": state_dir, "S3AV_MAX_OBJECT_SIZE": "1M"}
    try:
        yield ClamdClient(_start_clamd(env), timeout=30, stream_max_length=MiB)
    finally:
        subprocess.run(
            ["bash", str(SCRIPT), "stop"],
            env={**os.environ, **env},
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(state_dir, ignore_errors=True)


class FakeClamd:
    """A unix socket server that runs `handle(conn)` for each connection, for misbehaving-clamd tests."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self._dir = tempfile.mkdtemp(prefix="s3av-fake-", dir="/tmp")
        self.path = os.path.join(self._dir, "s")
        self.address = f"unix://{self.path}"
        self._handle = handle
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(8)
        self._stop = threading.Event()
        self._connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._connections.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()
        for conn in self._connections:
            conn.close()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture
def fake_clamd() -> Iterator[Callable[[Callable[[socket.socket], None]], FakeClamd]]:
    servers: list[FakeClamd] = []

    def start(handle: Callable[[socket.socket], None]) -> FakeClamd:
        server = FakeClamd(handle)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _zip_bytes(path: Path, members: dict[str, bytes]) -> bytes:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path.read_bytes()


def _assert_unscannable(reply: EngineReply) -> None:
    assert reply.status == "unscannable", reply
    assert reply.reason, reply


# --- commands ----------------------------------------------------------------------------------------


def test_it_answers_ping(clamd: ClamdClient) -> None:
    assert clamd.ping() is True


def test_it_reports_the_engine_version(clamd: ClamdClient) -> None:
    version = clamd.version()

    assert version.engine.startswith("ClamAV ")
    assert version.raw.startswith(version.engine)


def test_it_returns_stats(clamd: ClamdClient) -> None:
    stats = clamd.stats()

    assert "POOLS" in stats
    assert stats.endswith("END")


def test_it_reloads_the_database_and_keeps_answering(clamd: ClamdClient) -> None:
    assert clamd.reload() == "RELOADING"

    deadline = time.monotonic() + 30
    while True:
        try:
            assert clamd.scan_stream([EICAR]).status == "infected"
            break
        except EngineUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- verdicts ----------------------------------------------------------------------------------------


def test_it_reports_eicar_as_infected(clamd: ClamdClient) -> None:
    reply = clamd.scan_stream([EICAR])

    assert reply.status == "infected"
    assert len(reply.signatures) == 1
    assert reply.signatures[0]


def test_it_reports_eicar_split_over_chunks_and_empty_chunks_as_infected(clamd: ClamdClient) -> None:
    reply = clamd.scan_stream(iter([EICAR[:10], b"", bytearray(EICAR[10:40]), memoryview(EICAR)[40:]]))

    assert reply.status == "infected"


def test_it_reports_random_bytes_as_clean(clamd: ClamdClient) -> None:
    reply = clamd.scan_stream([os.urandom(256 * 1024) for _ in range(8)])

    assert reply == EngineReply("clean", [], "stream: OK\0")
    assert reply.is_clean


def test_it_reports_an_empty_object_as_clean(clamd: ClamdClient) -> None:
    assert clamd.scan_stream([]).status == "clean"


def test_it_treats_eicar_with_a_leading_newline_as_an_ordinary_file(clamd: ClamdClient) -> None:
    # EICAR is defined as the exact string; anything before it makes an ordinary file.
    assert clamd.scan_stream([b"\n" + EICAR]).status == "clean"


def test_it_splits_chunks_larger_than_a_frame(clamd: ClamdClient) -> None:
    tiny_frames = ClamdClient(clamd.address, max_frame=7)

    assert tiny_frames.scan_stream([EICAR]).status == "infected"
    assert clamd.scan_stream([os.urandom(3 * MiB + 17)]).status == "clean"


def test_it_gives_the_same_verdicts_with_any_send_buffer(clamd: ClamdClient) -> None:
    # The send buffer is only a speed-up (bench/large.py): the system's default, a tiny one and a
    # 4 MiB one all carry the whole stream, infected or clean.
    for send_buffer in (None, 4096, 4 * MiB):
        client = ClamdClient(clamd.address, send_buffer=send_buffer)
        assert client.scan_stream([os.urandom(MiB), EICAR]).status == "clean"
        assert client.scan_stream([EICAR]).status == "infected"
        assert client.scan_stream([os.urandom(2 * MiB + 5)]).status == "clean"


def test_it_asks_for_a_larger_send_buffer_on_the_stream_socket(
    clamd: ClamdClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[tuple[int, int]] = []
    grow = ClamdClient._grow_send_buffer

    def measure(self: ClamdClient, sock: socket.socket) -> None:
        before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        grow(self, sock)
        sizes.append((before, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)))

    monkeypatch.setattr(ClamdClient, "_grow_send_buffer", measure)
    assert ClamdClient(clamd.address, send_buffer=4 * MiB).scan_stream([b"x"]).status == "clean"
    assert ClamdClient(clamd.address).scan_stream([b"x"]).status == "clean"
    (default, grown), (untouched, kept) = sizes
    # Linux keeps twice what was asked (capped by net.core.wmem_max), so it grows past the default.
    assert grown > default
    assert kept == untouched


SAMPLES = [
    "clam.exe",
    "clam.zip",
    "clam.7z",
    "clam.tar.gz",
    "clam.exe.bz2",
    "clam.cab",
    "clam.pdf",
    "clam-upx.exe",
]


@pytest.mark.parametrize("name", SAMPLES)
def test_it_reports_clamav_test_samples_as_infected(clamd: ClamdClient, name: str) -> None:
    sample = TESTFILES / name
    if not sample.exists():
        pytest.skip(f"{sample} is not installed")

    with sample.open("rb") as f:
        reply = clamd.scan_stream(iter(lambda: f.read(64 * 1024), b""))

    assert reply.status == "infected", reply


def test_it_reports_an_encrypted_zip_as_unscannable(clamd: ClamdClient, tmp_path: Path) -> None:
    if shutil.which("zip") is None:
        pytest.skip("zip is not installed (scripts/clamav.sh install adds it)")
    (tmp_path / "notes.txt").write_bytes(b"quarterly numbers\n" * 100)
    subprocess.run(["zip", "-q", "-P", "secret", "enc.zip", "notes.txt"], cwd=tmp_path, check=True)

    reply = clamd.scan_stream([(tmp_path / "enc.zip").read_bytes()])

    _assert_unscannable(reply)
    assert reply.signatures[0].startswith("Heuristics.Encrypted")


def test_it_reports_archives_nested_deeper_than_max_recursion_as_unscannable(
    clamd: ClamdClient, tmp_path: Path
) -> None:
    data = b"innocent text\n"
    for depth in range(25):
        data = _zip_bytes(tmp_path / f"{depth}.zip", {f"{depth}.bin": data})

    reply = clamd.scan_stream([data])

    _assert_unscannable(reply)
    assert reply.signatures[0].startswith("Heuristics.Limits.Exceeded")


# --- size limits (second clamd with 1M limits) ---------------------------------------------------------


def test_it_reports_a_stream_at_stream_max_length_as_clean(small_clamd: ClamdClient) -> None:
    assert small_clamd.scan_stream([b"a" * MiB]).status == "clean"


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param(lambda: [b"a" * (MiB + 1)], id="one-byte-over-fits-in-socket-buffers"),
        pytest.param(lambda: [b"a" * (8 * MiB)], id="one-big-chunk"),
        pytest.param(lambda: (b"a" * 65536 for _ in range(400)), id="many-small-chunks"),
    ],
)
def test_it_reports_a_stream_over_stream_max_length_as_unscannable(
    small_clamd: ClamdClient, chunks: Callable[[], list[bytes]]
) -> None:
    reply = small_clamd.scan_stream(chunks())

    _assert_unscannable(reply)
    assert reply.reason == SIZE_LIMIT_REASON
    assert small_clamd.ping()


def test_it_reports_a_zip_bomb_as_unscannable(small_clamd: ClamdClient, tmp_path: Path) -> None:
    # 3 KiB on the wire, 3 MB unpacked: past MaxScanSize (and MaxFileSize, which alone would be silent).
    bomb = _zip_bytes(tmp_path / "bomb.zip", {"zeros.bin": bytes(3_000_000)})
    assert len(bomb) < 64 * 1024

    reply = small_clamd.scan_stream([bomb])

    _assert_unscannable(reply)
    assert reply.signatures[0].startswith("Heuristics.Limits.Exceeded")


def test_it_finds_eicar_in_an_archive_before_reporting_a_limit(
    small_clamd: ClamdClient, tmp_path: Path
) -> None:
    archive = _zip_bytes(tmp_path / "mixed.zip", {"eicar.com": EICAR, "zeros.bin": bytes(3_000_000)})

    assert small_clamd.scan_stream([archive]).status == "infected"


# --- memory ------------------------------------------------------------------------------------------


def test_it_streams_200_mib_without_holding_it_in_memory(clamd: ClamdClient) -> None:
    def chunks() -> Iterator[bytes]:
        for i in range(200):
            yield bytes([i % 251]) * MiB

    tracemalloc.start()
    try:
        reply = clamd.scan_stream(chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert reply.status == "clean"
    assert peak < 32 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


# --- failures --------------------------------------------------------------------------------------


def test_it_times_out_when_clamd_accepts_but_never_answers(fake_clamd) -> None:
    def read_forever(conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass

    server = fake_clamd(read_forever)
    client = ClamdClient(server.address, timeout=0.5, scan_timeout=0.5)

    started = time.monotonic()
    with pytest.raises(EngineUnavailable, match="did not answer"):
        client.ping()
    with pytest.raises(EngineUnavailable, match="did not answer"):
        client.scan_stream([EICAR])
    assert time.monotonic() - started < 5


def test_it_times_out_when_clamd_stops_reading(fake_clamd) -> None:
    server = fake_clamd(lambda conn: time.sleep(10))
    client = ClamdClient(server.address, timeout=0.5)

    started = time.monotonic()
    with pytest.raises(EngineUnavailable):
        client.scan_stream(b"a" * 65536 for _ in range(1000))
    assert time.monotonic() - started < 5


def test_it_never_reports_clean_for_an_ok_sent_before_the_stream_ended(fake_clamd) -> None:
    def answer_ok_at_once(conn: socket.socket) -> None:
        conn.sendall(b"stream: OK\0")
        conn.close()

    server = fake_clamd(answer_ok_at_once)
    client = ClamdClient(server.address, timeout=2)

    with pytest.raises(EngineUnavailable):
        client.scan_stream([b"a" * (16 * MiB)])


def test_it_reports_a_stream_dropped_by_a_vanishing_clamd_as_unavailable(fake_clamd) -> None:
    def vanish(conn: socket.socket) -> None:
        os.unlink(server.path)  # the follow-up PING finds no clamd
        conn.close()

    server = fake_clamd(vanish)
    client = ClamdClient(server.address, timeout=2)

    with pytest.raises(EngineUnavailable, match="no longer answers"):
        client.scan_stream([b"a" * (16 * MiB)])


def instream_dropped_after(limit: int) -> Callable[[socket.socket], None]:
    """A clamd that answers PING and VERSION but closes an INSTREAM after reading about ``limit`` bytes of
    it, as a clamd restarted mid-scan does."""

    def handle(conn: socket.socket) -> None:
        command = conn.recv(10)
        if command.startswith(b"zPING"):
            conn.sendall(b"PONG\0")
        elif command.startswith(b"zVERSION"):
            conn.sendall(b"ClamAV 1.4.6\0")
        else:
            received = 0
            while received < limit and (data := conn.recv(min(65536, limit - received))):
                received += len(data)
        conn.close()  # with our data unread: the client's next send fails (EPIPE/ECONNRESET)

    return handle


@pytest.mark.parametrize("limit", [None, 64 * MiB], ids=["limit-unknown", "far-below-the-limit"])
def test_a_stream_dropped_before_the_limit_is_transient_not_unscannable(fake_clamd, limit) -> None:
    server = fake_clamd(instream_dropped_after(256 * 1024))
    client = ClamdClient(server.address, timeout=2, stream_max_length=limit)

    with pytest.raises(EngineUnavailable, match="dropped the stream after"):
        client.scan_stream(b"a" * 65536 for _ in range(256))  # 16 MiB, far fewer than 64 MiB
    assert client.ping()


def test_a_stream_dropped_past_the_limit_is_the_limit(fake_clamd) -> None:
    server = fake_clamd(instream_dropped_after(MiB))
    client = ClamdClient(server.address, timeout=2, stream_max_length=MiB)

    reply = client.scan_stream(b"a" * 65536 for _ in range(256))

    _assert_unscannable(reply)
    assert reply.reason == SIZE_LIMIT_REASON


def test_it_raises_engine_unavailable_for_an_unexpected_reply(fake_clamd) -> None:
    def error(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"stream: Can't allocate memory ERROR\0")
        conn.close()

    server = fake_clamd(error)

    with pytest.raises(EngineUnavailable, match="unexpected"):
        ClamdClient(server.address, timeout=2).scan_stream([b"x"])


def test_it_raises_engine_unavailable_when_the_connection_is_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ClamdClient(f"tcp://127.0.0.1:{port}", timeout=2)

    with pytest.raises(EngineUnavailable, match="cannot connect"):
        client.ping()
    with pytest.raises(EngineUnavailable, match="cannot connect"):
        client.scan_stream([EICAR])


def test_it_raises_engine_unavailable_when_the_socket_file_is_missing(tmp_path: Path) -> None:
    client = ClamdClient(f"unix://{tmp_path}/missing.sock", timeout=2)

    with pytest.raises(EngineUnavailable):
        client.version()


def test_it_lets_errors_from_the_source_propagate(clamd: ClamdClient) -> None:
    def failing() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("S3 read failed")

    with pytest.raises(RuntimeError, match="S3 read failed"):
        clamd.scan_stream(failing())
    assert clamd.ping()


@pytest.mark.parametrize(
    "address",
    [
        "",
        "clamd.sock",
        "/var/run/clamd.sock",
        "unix://relative/clamd.sock",
        "unix:relative.sock",
        "unix:///" + "x" * 200,
        "tcp://localhost",
        "tcp://localhost:notaport",
        "tcp://localhost:70000",
        "tcp://:3310",
        "http://localhost:3310",
    ],
)
def test_it_rejects_a_bad_address(address: str) -> None:
    with pytest.raises(ValueError, match="invalid clamd address") as excinfo:
        ClamdClient(address)
    assert repr(address) in str(excinfo.value)


def test_it_accepts_unix_and_tcp_addresses() -> None:
    ClamdClient("unix:///run/clamav/clamd.sock")
    ClamdClient("tcp://127.0.0.1:3310")
    ClamdClient("tcp://[::1]:3310")
    ClamdClient("tcp://clamd.internal:3310")

"""The scripts behind `make test` and `make demo`: the private PostgreSQL cluster, the tests' environment."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_sh(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own script
        ["bash", str(ROOT / "scripts" / "postgres.sh"), command],  # noqa: S607
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.skipif(not any(Path("/usr/lib/postgresql").glob("*/bin/initdb")), reason="no PostgreSQL server")
def test_it_runs_a_private_cluster_on_its_own_port_with_trust_on_loopback(tmp_path):
    port = _free_port()
    env = {**os.environ, "S3AV_VAR_DIR": str(tmp_path / "var"), "S3AV_PG_PORT": str(port)}
    env.pop("S3AV_PG_DIR", None)
    try:
        started = _postgres_sh("start", env)
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert url == f"postgres://postgres@127.0.0.1:{port}"
        # No password: the cluster trusts loopback, and it is not the machine's own (another port).
        with psycopg.connect(f"{url}/postgres", connect_timeout=10) as connection:
            assert connection.execute("SHOW port").fetchone() == (str(port),)
            assert connection.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
            data_directory = connection.execute("SHOW data_directory").fetchone()[0]
        assert "/etc/postgresql" not in data_directory and "/var/lib/postgresql" not in data_directory
        assert _postgres_sh("status", env).returncode == 0
        # A second start finds it running and changes nothing.
        assert _postgres_sh("start", env).stdout.strip() == url

        assert _postgres_sh("stop", env).returncode == 0
        assert _postgres_sh("status", env).returncode != 0
    finally:
        _postgres_sh("destroy", env)
    assert not Path(data_directory).exists()


def test_the_tests_environment_sends_nothing_for_loopback_through_a_proxy():
    # A machine behind an HTTP proxy sets http_proxy; boto3 would send the local S3 endpoint's calls to it.
    probe = (
        "import urllib.request as u; "
        "print(all(u.proxy_bypass_environment(h) for h in ('127.0.0.1', 'localhost')), u.getproxies()['no'])"
    )
    env = {**os.environ, "http_proxy": "http://proxy.invalid:3128", "NO_PROXY": "example.org"}
    env.pop("no_proxy", None)
    script = f"source scripts/test-env.sh && python3 -c {probe!r}"
    out = subprocess.run(  # noqa: S603
        ["bash", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,  # noqa: S607
    ).stdout.split()
    assert out[0] == "True"
    assert out[1].startswith("example.org,")  # what the machine set is kept


def _checkout_with_stub_tools(tmp_path: Path) -> Path:
    # The real scripts in a throwaway checkout whose lint, type and test tools only succeed.
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    for name in ("test.sh", "test-env.sh", "postgres.sh"):
        (checkout / "scripts" / name).write_text((ROOT / "scripts" / name).read_text())
    tools = checkout / ".venv" / "bin"
    tools.mkdir(parents=True)
    for tool in ("ruff", "mypy", "lint-imports", "python", "pytest"):
        (tools / tool).write_text("#!/bin/sh\nexit 0\n")
        (tools / tool).chmod(0o755)
    return checkout


@pytest.mark.skipif(not any(Path("/usr/lib/postgresql").glob("*/bin/initdb")), reason="no PostgreSQL server")
def test_make_tests_run_stops_the_cluster_it_started_and_leaves_a_running_one(tmp_path):
    # Left running, the cluster of one checkout holds the port and every other checkout's `make test` on
    # the machine fails ("taken by another server"). A cluster someone had running stays up.
    checkout = _checkout_with_stub_tools(tmp_path)
    env = {**os.environ, "S3AV_VAR_DIR": str(tmp_path / "var"), "S3AV_PG_PORT": str(_free_port())}
    for name in ("DATABASE_URL", "S3AV_PG_DIR"):
        env.pop(name, None)
    test_sh = ["bash", str(checkout / "scripts" / "test.sh")]
    try:
        ran = subprocess.run(  # noqa: S603
            test_sh, env={**env, "S3AV_TEST_STOP_POSTGRES": "1"}, capture_output=True, text=True, timeout=180
        )
        assert ran.returncode == 0, ran.stderr
        assert _postgres_sh("status", env).returncode != 0

        assert _postgres_sh("start", env).returncode == 0
        ran = subprocess.run(  # noqa: S603
            test_sh, env={**env, "S3AV_TEST_STOP_POSTGRES": "1"}, capture_output=True, text=True, timeout=180
        )
        assert ran.returncode == 0, ran.stderr
        assert _postgres_sh("status", env).returncode == 0
    finally:
        _postgres_sh("destroy", env)


def test_make_test_leaves_postgresql_to_the_test_script():
    # The test script starts the private cluster only without DATABASE_URL (and stops it again for CI).
    recipe = subprocess.run(
        ["make", "-n", "test"],  # noqa: S607
        cwd=ROOT, capture_output=True, text=True, check=True, env={**os.environ, "DATABASE_URL": "x"},
    ).stdout  # fmt: skip
    assert "postgres" not in recipe.replace("S3AV_TEST_STOP_POSTGRES", "")
    assert "S3AV_TEST_STOP_POSTGRES=1 bash scripts/test.sh" in recipe

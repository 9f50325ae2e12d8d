"""A malformed setting stops the process with a message naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from s3av import env

ROOT = Path(__file__).resolve().parents[3]


def _check(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Start the project (``manage.py check``) with this environment."""
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "name, value",
    [
        ("S3AV_CLAMD", "clamd.sock"),
        ("S3AV_BROKER_URL", "kafka://x"),
        ("S3AV_DEBUG", "perhaps"),
        ("S3AV_MAX_OBJECT_SIZE", "a lot"),
        ("S3AV_TRUSTED_PROXY_COUNT", "-1"),
        ("DATABASE_URL", "mysql://x/y"),
        ("S3AV_DEFAULT_ALLOWED_CIDRS", "10.0.0.0/8,nope"),
        ("S3AV_API_RATE", "lots"),
        ("S3AV_CLAMD", "tcp://clamd.internal"),
        ("S3AV_AWS_SERVICE_PRINCIPAL", "s3av"),
        ("S3AV_SIGNATURES_SOURCE", "https://mirror.example.com/clamav"),
        ("S3AV_SIGNATURES_SOURCE", "s3://"),
        ("S3AV_SIGNATURES_INTERVAL", "every two hours"),
        ("S3AV_SIGNATURES_INTERVAL", "10s"),
        ("S3AV_SIGNATURES_CLAMDS", "unix:///ok.sock,clamd.internal"),
        ("S3AV_AGENT_LOST_AFTER", "-5m"),
    ],
)
def test_the_process_refuses_to_start_with_a_bad_setting(name, value):
    environ = {**os.environ, name: value}
    result = _check(environ)
    assert result.returncode != 0
    assert name in result.stderr


def test_it_needs_a_secret_key_when_debug_is_off():
    environ = {**os.environ, "S3AV_DEBUG": "false", "S3AV_SECRET_KEY": "short"}
    result = _check(environ)
    assert result.returncode != 0
    assert "S3AV_SECRET_KEY" in result.stderr


def test_it_needs_the_service_principal_when_debug_is_off():
    environ = {k: v for k, v in os.environ.items() if k != "S3AV_AWS_SERVICE_PRINCIPAL"}
    environ["S3AV_DEBUG"] = "false"
    result = _check(environ)
    assert result.returncode != 0
    assert "S3AV_AWS_SERVICE_PRINCIPAL" in result.stderr


def test_it_reads_a_secret_from_a_file(tmp_path, monkeypatch):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    monkeypatch.delenv("S3AV_SECRET_KEY", raising=False)
    monkeypatch.setenv("S3AV_SECRET_KEY_FILE", str(secret))
    assert env.env_str("S3AV_SECRET_KEY") == "from-a-file"


@pytest.mark.parametrize(
    "text, size", [("512", 512), ("1K", 1024), ("100M", 100 * 1024**2), ("2G", 2 * 1024**3)]
)
def test_it_parses_sizes(text, size):
    assert env.parse_size(text) == size


def test_a_bad_boolean_names_the_variable(monkeypatch):
    monkeypatch.setenv("S3AV_X", "sometimes")
    with pytest.raises(ImproperlyConfigured, match="S3AV_X"):
        env.env_bool("S3AV_X", False)


def _python(environ: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the project's settings loaded, as a process started with this environment."""
    setup = "import os, django\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 's3av.settings')\n"
    setup += "django.setup()\n"
    return subprocess.run(
        [sys.executable, "-c", setup + code],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_app_and_clamav_sh_agree_on_where_clamd_lives(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k != "S3AV_CLAMD"}
    environ["S3AV_CLAMAV_DIR"] = str(tmp_path / "clamav")
    script = subprocess.run(
        ["bash", "scripts/clamav.sh", "status"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    app = _python(environ, "from django.conf import settings; print(settings.CLAMD_ADDRESS)")
    assert app.returncode == 0, app.stderr
    assert script.stdout.split()[-1] == app.stdout.strip() == f"unix://{tmp_path}/clamav/clamd.sock"


def test_a_changed_database_under_s3av_clamav_dir_changes_the_signature_version(tmp_path):
    # The real clamd (custom databases only: it reports no version of its own), with the database
    # directory the application reads moved by S3AV_CLAMAV_DIR as scripts/clamav.sh would move it.
    db = tmp_path / "clamav" / "db"
    db.mkdir(parents=True)
    signatures = db / "s3av-test.hsb"
    signatures.write_text("0" * 64 + ":68:S3av.Test.One\n")
    environ = {**os.environ, "S3AV_CLAMAV_DIR": str(tmp_path / "clamav")}
    code = "from scanning.pipeline import services; print(services.engine_identity().get()[1])"

    before = _python(environ, code)
    signatures.write_text("0" * 64 + ":68:S3av.Test.One\n" + "1" * 64 + ":68:S3av.Test.Two\n")
    after = _python(environ, code)

    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert before.stdout.strip() != after.stdout.strip()


def _clean_environ(**extra: str) -> dict[str, str]:
    """What a shell right after `make install` has: no s3av settings at all, debug off."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **extra}


def _start(command: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Start a process as the Procfile or an operator's shell would, from the project directory."""
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120
    )


def _procfile(name: str) -> str:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return next(line.split(":", 1)[1].strip() for line in lines if line.startswith(f"{name}:"))


MANAGE = ".venv/bin/python manage.py"


@pytest.mark.parametrize(
    "command",
    [
        f"{MANAGE} scan s3://bucket",
        f"{MANAGE} check",
        f"{MANAGE} migrate",
        f"{MANAGE} rundramatiq",
        f"{MANAGE} ingest_events",
        f"{MANAGE} run_scheduler",
        "web",
        "worker",
    ],
)
def test_a_configuration_error_is_one_line_and_exit_status_2(command):
    command = _procfile(command) if command in {"web", "worker"} else command
    result = _start(command, _clean_environ(S3AV_DEBUG="perhaps", S3AV_BIND="127.0.0.1:0"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "s3av: configuration error: S3AV_DEBUG='perhaps' is not a boolean (use true/false, yes/no, 1/0)."
    ]


@pytest.mark.parametrize("command", [f"{MANAGE} check", f"{MANAGE} run_scheduler", "web", "worker"])
def test_the_service_refuses_to_start_without_its_secret_key_and_principal(command):
    command = _procfile(command) if command in {"web", "worker"} else command
    result = _start(command, _clean_environ(S3AV_BIND="127.0.0.1:0"))
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert "S3AV_SECRET_KEY" in line and "S3AV_AWS_SERVICE_PRINCIPAL" in line

"""`manage.py scan`, run as operators and CI pipelines run it: a process, its output and exit status."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from scanning.management.commands.scan import Progress
from tests.fixtures.scanning import EICAR, TESTFILES

ROOT = Path(__file__).resolve().parents[3]


def _run(*args, endpoint, clamd):
    env = {
        **os.environ,
        "S3AV_CLAMD": clamd,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "scan", *args, "--endpoint-url", endpoint],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def fill(s3_client, make_bucket):
    def fill(objects, versioned=False):
        bucket = make_bucket(versioned=versioned)
        for key, body in objects.items():
            s3_client.put_object(Bucket=bucket, Key=key, Body=body)
        return bucket

    return fill


def test_it_exits_0_when_everything_is_clean(fill, s3_endpoint, clamd_address):
    bucket = fill({"a.txt": b"alpha", "dir/b.txt": b"beta", "dir/sub/c d+e.txt": b"gamma"})
    result = _run(f"s3://{bucket}", endpoint=s3_endpoint, clamd=clamd_address)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    assert lines[-1] == "scanned 3: clean 3, infected 0, unscannable 0, error 0"
    assert f"s3://{bucket}/dir/sub/c d+e.txt: Clean" in lines


def test_it_exits_1_and_names_what_is_infected(fill, s3_endpoint, clamd_address):
    bucket = fill(
        {"ok.txt": b"fine", "bad/eicar.com": EICAR, "bad/clam.zip": (TESTFILES / "clam.zip").read_bytes()}
    )
    result = _run(f"s3://{bucket}", "--json", endpoint=s3_endpoint, clamd=clamd_address)
    assert result.returncode == 1, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    verdicts = {row["key"]: row["verdict"] for row in rows}
    assert verdicts == {"ok.txt": "Clean", "bad/eicar.com": "Infected", "bad/clam.zip": "Infected"}
    assert all(
        set(row) == {"bucket", "key", "version_id", "verdict", "signatures", "message"} for row in rows
    )
    assert all(row["signatures"] for row in rows if row["verdict"] == "Infected")
    summary = json.loads(result.stderr.strip().splitlines()[-1])["summary"]
    assert summary["infected"] == 2 and summary["clean"] == 1


def test_it_scans_only_the_prefix(fill, s3_endpoint, clamd_address):
    bucket = fill({"in/a.txt": b"a", "out/eicar.com": EICAR})
    result = _run(f"s3://{bucket}/in/", "--json", endpoint=s3_endpoint, clamd=clamd_address)
    assert result.returncode == 0
    assert [json.loads(line)["key"] for line in result.stdout.splitlines()] == ["in/a.txt"]


def test_it_exits_2_for_unscannable(fill, s3_endpoint, clamd_address):
    bucket = fill({"big.bin": b"x" * 5000, "small.txt": b"ok"})
    result = _run(f"s3://{bucket}", "--max-size", "1K", endpoint=s3_endpoint, clamd=clamd_address)
    assert result.returncode == 2
    assert f"s3://{bucket}/big.bin: Unscannable" in result.stdout


def test_it_scans_every_version_when_asked(fill, s3_client, s3_endpoint, clamd_address):
    bucket = fill({"doc.txt": EICAR}, versioned=True)
    s3_client.put_object(Bucket=bucket, Key="doc.txt", Body=b"cleaned up")
    latest = _run(f"s3://{bucket}", "--json", endpoint=s3_endpoint, clamd=clamd_address)
    every = _run(f"s3://{bucket}", "--json", "--all-versions", endpoint=s3_endpoint, clamd=clamd_address)
    assert latest.returncode == 0
    assert every.returncode == 1
    assert len(every.stdout.splitlines()) == 2


@pytest.mark.parametrize("url", ["bucket-without-scheme", "s3://", "http://x/y"])
def test_it_refuses_a_bad_url_with_status_2(url, s3_endpoint, clamd_address):
    result = _run(url, endpoint=s3_endpoint, clamd=clamd_address)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_it_exits_2_when_clamd_is_down(fill, s3_endpoint):
    bucket = fill({"a.txt": b"a"})
    result = _run(f"s3://{bucket}", endpoint=s3_endpoint, clamd="tcp://127.0.0.1:9")
    assert result.returncode == 2
    assert "clamd is not answering" in result.stderr


def test_the_progress_bar_draws_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    terminal, pipe = Tty(), io.StringIO()
    for stream in (terminal, pipe):
        Progress(stream).show(3, 10, True, Counter({"Clean": 3}))
    assert "3/10+" in terminal.getvalue() and "clean 3" in terminal.getvalue()
    assert pipe.getvalue() == ""


def test_it_runs_right_after_make_install_with_only_clamd_and_aws_credentials(
    fill, s3_endpoint, clamd_address
):
    # No S3AV_SECRET_KEY, no S3AV_AWS_SERVICE_PRINCIPAL, debug off: the one-shot scan uses neither.
    bucket = fill({"ok.txt": b"fine", "eicar.com": EICAR})
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "S3AV_CLAMD": clamd_address,
    }
    result = subprocess.run(
        [".venv/bin/python", "manage.py", "scan", f"s3://{bucket}", "--endpoint-url", s3_endpoint],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert f"s3://{bucket}/eicar.com: Infected" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "scanned 2: clean 1, infected 1, unscannable 0, error 0"

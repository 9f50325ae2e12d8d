"""The signature version results are pinned to: clamd's database version and the database's own digest."""

from __future__ import annotations

import os
from pathlib import Path

from scanning.engine.clamd import EngineVersion
from scanning.pipeline.scanner import EngineIdentity


class _Clamd:
    def __init__(self, signature_version: str | None) -> None:
        self.signature_version = signature_version

    def version(self) -> EngineVersion:
        return EngineVersion("ClamAV 1.4.6", self.signature_version, None, "")


def _identity(db: Path | None, signature_version: str | None) -> str:
    return EngineIdentity(_Clamd(signature_version), db_dir=str(db) if db else None, ttl=0).get()[1]  # type: ignore[arg-type]


def test_a_custom_signature_added_beside_the_official_databases_changes_the_version(tmp_path: Path) -> None:
    (tmp_path / "daily.cld").write_bytes(b"official")
    before = _identity(tmp_path, "27000")
    (tmp_path / "local.hsb").write_text("0" * 64 + ":68:Local.Finding\n")
    after = _identity(tmp_path, "27000")

    assert before.startswith("27000+") and after.startswith("27000+")
    assert before != after


def test_custom_databases_alone_are_named_by_their_digest(tmp_path: Path) -> None:
    signatures = tmp_path / "s3av-test.hsb"
    signatures.write_text("a\n")
    before = _identity(tmp_path, None)
    signatures.write_text("a\nb\n")
    os.utime(signatures, (1, 1))

    assert before.startswith("custom-")
    assert _identity(tmp_path, None) != before


def test_a_database_that_is_not_here_leaves_clamds_own_version(tmp_path: Path) -> None:
    assert _identity(tmp_path / "missing", "27000") == "27000"
    assert _identity(None, None) == "custom"

"""The INSTREAM and VERSION reply parsers on their own, without clamd."""

from __future__ import annotations

import pytest

from scanning.engine.clamd import (
    SIZE_LIMIT_REASON,
    EngineReply,
    EngineUnavailable,
    parse_scan_reply,
    parse_version,
)


def test_it_reports_ok_as_clean() -> None:
    assert parse_scan_reply("stream: OK\0") == EngineReply("clean", [], "stream: OK\0")


def test_it_refuses_ok_when_the_stream_did_not_end() -> None:
    with pytest.raises(EngineUnavailable):
        parse_scan_reply("stream: OK\0", stream_complete=False)


@pytest.mark.parametrize(
    "raw",
    [
        "stream: OK\0stream: OK\0",
        "stream: OK extra\0",
        "stream:OK\0",
        "STREAM: OK\0",
        "OK\0",
        "stream: \0",
    ],
)
def test_it_never_reports_anything_but_the_exact_ok_as_clean(raw: str) -> None:
    try:
        reply = parse_scan_reply(raw)
    except EngineUnavailable:
        return
    assert reply.status != "clean", reply


def test_it_reports_a_signature_as_infected() -> None:
    reply = parse_scan_reply("stream: Win.Test.EICAR_HDB-1 FOUND\0")

    assert reply.status == "infected"
    assert reply.signatures == ["Win.Test.EICAR_HDB-1"]
    assert reply.reason == ""


def test_it_keeps_every_signature_of_a_multi_line_reply() -> None:
    reply = parse_scan_reply("stream: Sig.One FOUND\0stream: Sig.Two FOUND\0")

    assert reply.status == "infected"
    assert reply.signatures == ["Sig.One", "Sig.Two"]


def test_it_accepts_newline_separated_replies() -> None:
    assert parse_scan_reply("stream: Sig.One FOUND\nstream: Sig.Two FOUND\n").signatures == [
        "Sig.One",
        "Sig.Two",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "Heuristics.Limits.Exceeded.MaxScanSize",
        "Heuristics.Limits.Exceeded.MaxFileSize",
        "Heuristics.Limits.Exceeded.MaxRecursion",
        "Heuristics.Limits.Exceeded.MaxFiles",
        "Heuristics.Limits.Exceeded.MaxScanTime",
        "Heuristics.Encrypted.Zip",
        "Heuristics.Encrypted.RAR",
        "Heuristics.Encrypted.PDF",
        "Heuristics.Broken.Executable",
        "Heuristics.Broken.Media.PNG.EOFReadingChunk",
    ],
)
def test_it_reports_limits_encryption_and_broken_files_as_unscannable(name: str) -> None:
    reply = parse_scan_reply(f"stream: {name} FOUND\0")

    assert reply.status == "unscannable"
    assert reply.signatures == [name]
    assert reply.reason == name


@pytest.mark.parametrize(
    "name",
    [
        "Heuristics.Phishing.Email.SpoofedDomain",
        "Heuristics.OLE2.ContainsMacros",
        "Heuristics.Structured.CreditCardNumber",
        "Heuristics.PDF.ObfuscatedNameObject",
        "Clamav.Test.File-6",
        "Heuristics.LimitsExceeded",
    ],
)
def test_it_reports_other_heuristics_as_infected(name: str) -> None:
    assert parse_scan_reply(f"stream: {name} FOUND\0").status == "infected"


def test_it_lets_a_real_signature_win_over_a_limit() -> None:
    reply = parse_scan_reply(
        "stream: Heuristics.Limits.Exceeded.MaxFiles FOUND\0stream: Win.Trojan.X FOUND\0"
    )

    assert reply.status == "infected"
    assert reply.signatures == ["Heuristics.Limits.Exceeded.MaxFiles", "Win.Trojan.X"]


def test_it_reports_the_stream_size_limit_as_unscannable() -> None:
    reply = parse_scan_reply("INSTREAM size limit exceeded. ERROR\0", stream_complete=False)

    assert reply.status == "unscannable"
    assert reply.signatures == []
    assert reply.reason == SIZE_LIMIT_REASON


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "\0",
        "stream: Can't allocate memory ERROR\0",
        "stream: lstat() failed: No such file or directory. ERROR\0",
        "UNKNOWN COMMAND\0",
        "COMMAND READ TIMED OUT\0",
        "stream: OK\0garbage\0",
        "stream: Sig FOUND\0Error processing command. ERROR\0",
    ],
)
def test_it_raises_engine_unavailable_for_errors_and_surprises(raw: str) -> None:
    with pytest.raises(EngineUnavailable):
        parse_scan_reply(raw)


def test_it_parses_a_version_with_database_details() -> None:
    version = parse_version("ClamAV 1.4.6/27000/Mon Nov 24 09:00:00 2025\0")

    assert version.engine == "ClamAV 1.4.6"
    assert version.signature_version == "27000"
    assert version.signature_date == "Mon Nov 24 09:00:00 2025"


def test_it_parses_a_version_without_a_database_version() -> None:
    version = parse_version("ClamAV 1.4.6\0")

    assert version.engine == "ClamAV 1.4.6"
    assert version.signature_version is None
    assert version.signature_date is None
    assert version.raw == "ClamAV 1.4.6\0"


def test_it_refuses_a_version_reply_that_is_not_clamav() -> None:
    with pytest.raises(EngineUnavailable):
        parse_version("UNKNOWN COMMAND\0")

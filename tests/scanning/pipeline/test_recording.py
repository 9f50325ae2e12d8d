"""How a scan records its verdict and actions, and what a worker dying (or S3 failing) between those
steps leaves behind: never a Clean verdict that was not scanned, never a finding lost, no scan twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scope

from scanning.models import ScanResult, UsageMonth, Verdict
from scanning.pipeline import scanner, services
from scanning.s3 import ops as s3ops
from tests import factories
from tests.fixtures.scanning import EICAR

pytestmark = pytest.mark.django_db


def _put(s3_client, bucket, key, body):
    response = s3_client.put_object(Bucket=bucket.name, Key=key, Body=body)
    return response.get("VersionId"), response["ETag"]


def _scan(tenant, bucket, key, etag, **kwargs):
    with scope(tenant=tenant):
        dedupe = services.dedupe_key_for(bucket, key, None, etag, False)
        return services.run_scan(
            tenant, bucket, key, version_id=None, etag=etag, trigger="event", dedupe_key=dedupe, **kwargs
        )


def _row(tenant, key):
    with scope(tenant=tenant):
        return ScanResult.objects.get(key=key)


def _tags(s3_client, bucket, key):
    return {t["Key"]: t["Value"] for t in s3_client.get_object_tagging(Bucket=bucket.name, Key=key)["TagSet"]}


def _usage(tenant):
    with scope(tenant=tenant):
        return list(UsageMonth.objects.values_list("objects_scanned", flat=True))


@pytest.fixture
def verdict_when_tagged(monkeypatch, tenant):
    """What the database said about the scan at the moment its tags were written."""
    seen = []
    real = s3ops.put_scan_tags

    def watching(s3, ref, *args, **kwargs):
        with scope(tenant=tenant):
            seen.append(ScanResult.objects.filter(key=ref.key).values_list("verdict", flat=True).get())
        return real(s3, ref, *args, **kwargs)

    monkeypatch.setattr(s3ops, "put_scan_tags", watching)
    return seen


def test_a_clean_verdict_is_recorded_with_its_tags_after_they_are_written(
    tenant, make_linked_bucket, s3_client, verdict_when_tagged
):
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "fine.txt", b"fine " * 100)
    result = _scan(tenant, bucket, "fine.txt", etag)
    assert verdict_when_tagged == [""]  # still only claimed while the tags went on
    assert (result.verdict, result.action) == (Verdict.CLEAN, "tagged")
    row = _row(tenant, "fine.txt")
    assert (row.verdict, row.action_status, row.tagged, row.claimed_until) == ("Clean", "done", True, None)
    assert _tags(s3_client, bucket, "fine.txt")["scan-result"] == "Clean"


def test_a_clean_verdict_tagged_first_goes_on_the_version_scanned_not_a_newer_one(
    tenant, make_linked_bucket, s3_client, verdict_when_tagged
):
    # Tag first, record after (the Clean way): the tags go on the version the engine read, even when
    # a newer version of the key arrived before the scan ran.
    bucket = make_linked_bucket(tenant, versioned=True)
    first, etag = _put(s3_client, bucket, "doc.txt", b"version one " * 50)
    newer, _ = _put(s3_client, bucket, "doc.txt", b"version two " * 50)
    with scope(tenant=tenant):
        dedupe = services.dedupe_key_for(bucket, "doc.txt", first, etag, False)
        result = services.run_scan(
            tenant, bucket, "doc.txt", version_id=first, etag=etag, trigger="event", dedupe_key=dedupe
        )
    assert verdict_when_tagged == [""]
    assert (result.verdict, result.version_id, result.tagged) == (Verdict.CLEAN, first, True)

    def tags(version):
        answer = s3_client.get_object_tagging(Bucket=bucket.name, Key="doc.txt", VersionId=version)
        return {t["Key"]: t["Value"] for t in answer["TagSet"]}

    assert tags(first)["scan-result"] == "Clean"
    assert "scan-result" not in tags(newer)  # not scanned yet: nothing says it is Clean


def test_a_finding_is_recorded_before_anything_is_done_with_it(
    tenant, make_linked_bucket, s3_client, verdict_when_tagged
):
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "bad.com", EICAR)
    assert _scan(tenant, bucket, "bad.com", etag).verdict == Verdict.INFECTED
    assert verdict_when_tagged == ["Infected"]


def test_a_clean_verdict_whose_lease_is_running_out_is_recorded_before_tagging(
    tenant, make_linked_bucket, s3_client, verdict_when_tagged, monkeypatch
):
    # Another worker may take a claim over once its lease runs out: with less than half of it left,
    # the verdict is recorded first, so a takeover finds it final instead of scanning and tagging too.
    short = staticmethod(lambda seconds: timezone.now() + timedelta(seconds=20))  # of the usual 300
    monkeypatch.setattr(ScanResult, "lease", short)
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "slow.txt", b"slow " * 100)
    assert _scan(tenant, bucket, "slow.txt", etag).action == "tagged"
    assert verdict_when_tagged == ["Clean"]


def _die_when_recording_actions(monkeypatch):
    real = services._save

    def dies(result, fields):
        if "tagged" in fields:
            raise SystemExit("worker killed between tagging and recording")
        return real(result, fields)

    monkeypatch.setattr(services, "_save", dies)
    return real


def test_a_worker_killed_between_tagging_and_recording_a_clean_verdict_scans_again_when_redelivered(
    tenant, make_linked_bucket, s3_client, s3_calls, monkeypatch
):
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "cut.txt", b"cut " * 100)
    real = _die_when_recording_actions(monkeypatch)
    with pytest.raises(SystemExit):
        _scan(tenant, bucket, "cut.txt", etag)
    # Tagged Clean: the engine read all of it. Nothing recorded Clean, nothing counted.
    assert _tags(s3_client, bucket, "cut.txt")["scan-result"] == "Clean"
    row = _row(tenant, "cut.txt")
    assert (row.verdict, row.attempts) == ("", 1)
    assert row.claimed_until is not None
    assert _usage(tenant) == []
    monkeypatch.setattr(services, "_save", real)
    # The redelivered message waits for the dead worker's lease, then scans again.
    with pytest.raises(services.ScanInProgress):
        _scan(tenant, bucket, "cut.txt", etag)
    with scope(tenant=tenant):
        ScanResult.objects.filter(pk=row.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    result = _scan(tenant, bucket, "cut.txt", etag)
    assert (result.pk, result.verdict, result.action, result.attempts) == (row.pk, "Clean", "tagged", 2)
    assert s3_calls["GetObject"] == 2
    assert _usage(tenant) == [1]


def test_a_worker_killed_while_acting_on_a_finding_keeps_it_and_the_redelivery_finishes_the_move(
    tenant, make_linked_bucket, make_bucket, s3_client, monkeypatch
):
    quarantine = make_bucket()
    bucket = make_linked_bucket(tenant, on_infected="quarantine", quarantine_bucket=quarantine)
    _, etag = _put(s3_client, bucket, "cut.com", EICAR)
    real = s3ops.put_scan_tags

    def dies(*args, **kwargs):
        raise SystemExit("worker killed while tagging")

    monkeypatch.setattr(s3ops, "put_scan_tags", dies)
    with pytest.raises(SystemExit):
        _scan(tenant, bucket, "cut.com", etag)
    row = _row(tenant, "cut.com")
    assert (row.verdict, row.action_status) == ("Infected", "pending")
    assert row.triage_state == "open"  # a finding from the moment it was found
    monkeypatch.setattr(s3ops, "put_scan_tags", real)
    result = _scan(tenant, bucket, "cut.com", etag)  # redelivered: the verdict is final, actions resume
    assert (result.pk, result.action) == (row.pk, "tagged+quarantined")
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket.name)
    assert _usage(tenant) == [1]


def test_a_transient_tagging_failure_records_the_clean_verdict_and_the_retry_only_tags(
    tenant, make_linked_bucket, s3_client, s3_calls, monkeypatch
):
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "flaky.txt", b"flaky " * 100)
    real = s3ops.put_scan_tags

    def throttled(*args, **kwargs):
        raise s3ops.TransientS3Error("SlowDown", code="SlowDown")

    monkeypatch.setattr(s3ops, "put_scan_tags", throttled)
    with pytest.raises(s3ops.TransientS3Error):
        _scan(tenant, bucket, "flaky.txt", etag)
    row = _row(tenant, "flaky.txt")
    assert (row.verdict, row.action_status, row.tagged) == ("Clean", "pending", False)
    assert "scan-result" not in _tags(s3_client, bucket, "flaky.txt")
    monkeypatch.setattr(s3ops, "put_scan_tags", real)
    result = _scan(tenant, bucket, "flaky.txt", etag)  # the retry
    assert (result.pk, result.action) == (row.pk, "tagged")
    assert s3_calls["GetObject"] == 1  # not read (or scanned) again
    assert _tags(s3_client, bucket, "flaky.txt")["scan-result"] == "Clean"
    assert _usage(tenant) == [1]


@pytest.mark.parametrize("found", ["clean", "infected"])
def test_a_verdict_recorded_while_an_older_scan_ran_is_not_overwritten(
    tenant, make_linked_bucket, make_bucket, s3_client, monkeypatch, found
):
    quarantine = make_bucket()
    bucket = make_linked_bucket(tenant, on_infected="quarantine", quarantine_bucket=quarantine)
    body = EICAR if found == "infected" else b"plain " * 100
    version, etag = _put(s3_client, bucket, "both.bin", body)
    real = scanner.scan_ref

    def a_newer_scan_finishes_meanwhile(*args, **kwargs):
        outcome = real(*args, **kwargs)
        with scope(tenant=tenant):
            factories.make_result(
                tenant,
                bucket,
                "both.bin",
                Verdict.CLEAN,
                version_id=version or "",
                etag=etag.strip('"'),
                action_status="done",
                scanned_at=timezone.now(),
            )
        return outcome

    monkeypatch.setattr(scanner, "scan_ref", a_newer_scan_finishes_meanwhile)
    result = _scan(tenant, bucket, "both.bin", etag)
    assert result.verdict == (Verdict.INFECTED if found == "infected" else Verdict.CLEAN)
    assert result.action == "superseded"
    assert "scan-result" not in _tags(s3_client, bucket, "both.bin")
    assert s3_client.list_objects_v2(Bucket=bucket.name)["KeyCount"] == 1  # not quarantined


def test_a_worker_whose_claim_was_taken_over_never_tags_over_the_verdict_the_other_recorded(
    tenant, make_linked_bucket, s3_client, monkeypatch
):
    # Worker A stalls past its lease; B takes the claim over (a duplicate message), scans under newer
    # signatures and records Infected. A's renewal must not make the claim A's again: then A, its Clean
    # verdict in hand and "half its lease left", would tag Clean over B's recorded Infected.
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "taken.txt", b"taken " * 100)
    real_lease, real_scan = ScanResult.lease, scanner.scan_ref
    monkeypatch.setattr(ScanResult, "lease", staticmethod(lambda s: timezone.now() - timedelta(seconds=1)))

    def stalled_then_taken_over(*args, **kwargs):
        outcome = real_scan(*args, **kwargs)
        monkeypatch.setattr(ScanResult, "lease", real_lease)
        with scope(tenant=tenant):
            row = ScanResult.objects.get(key="taken.txt")
            ScanResult.objects.filter(pk=row.pk).update(claimed_until=real_lease(300), attempts=2)  # B's
        kwargs["heartbeat"]()  # A goes on streaming and renews
        with scope(tenant=tenant):  # B's scan ends: Infected, recorded, tagged
            ScanResult.objects.filter(pk=row.pk).update(
                verdict=Verdict.INFECTED, signatures=["Newer.Sig"], action_status="done", tagged=True,
                claimed_until=None, scanned_at=timezone.now(),
            )  # fmt: skip
        s3_client.put_object_tagging(
            Bucket=bucket.name,
            Key="taken.txt",
            Tagging={"TagSet": [{"Key": "scan-result", "Value": "Infected"}]},
        )
        return outcome

    monkeypatch.setattr(scanner, "scan_ref", stalled_then_taken_over)
    result = _scan(tenant, bucket, "taken.txt", etag)
    assert result.verdict == Verdict.INFECTED  # B's verdict stands
    assert _tags(s3_client, bucket, "taken.txt")["scan-result"] == "Infected"


def test_a_verdict_recorded_while_a_finding_was_being_recorded_is_not_overwritten(
    tenant, make_linked_bucket, make_bucket, s3_client, monkeypatch
):
    # A newer scan of the same version records its verdict after this (older) scan's outcome but
    # before its tags and actions: the older finding must not tag or quarantine over it.
    quarantine = make_bucket()
    bucket = make_linked_bucket(tenant, on_infected="quarantine", quarantine_bucket=quarantine)
    version, etag = _put(s3_client, bucket, "late.com", EICAR)
    real = services._save

    def a_newer_verdict_lands_right_after(result, fields):
        saved = real(result, fields)
        with scope(tenant=tenant):
            factories.make_result(
                tenant, bucket, "late.com", Verdict.CLEAN, version_id=version or "", etag=etag.strip('"'),
                action_status="done", scanned_at=timezone.now(),
            )  # fmt: skip
        return saved

    monkeypatch.setattr(services, "_save", a_newer_verdict_lands_right_after)
    result = _scan(tenant, bucket, "late.com", etag)
    assert (result.verdict, result.action) == (Verdict.INFECTED, "superseded")
    assert s3_client.list_objects_v2(Bucket=bucket.name)["KeyCount"] == 1  # not quarantined


def test_a_scan_that_still_holds_its_claim_renews_its_lease_as_the_object_streams(
    tenant, make_linked_bucket, s3_client, monkeypatch
):
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "long.txt", b"long " * 100)
    real_scan, leases = scanner.scan_ref, []

    def streaming(*args, **kwargs):
        with scope(tenant=tenant):
            leases.append(ScanResult.objects.values_list("claimed_until", flat=True).get(key="long.txt"))
            kwargs["heartbeat"]()
            leases.append(ScanResult.objects.values_list("claimed_until", flat=True).get(key="long.txt"))
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(scanner, "scan_ref", streaming)
    assert _scan(tenant, bucket, "long.txt", etag).action == "tagged"
    assert leases[1] > leases[0]


def test_a_clean_tag_that_outlasted_its_lease_gives_way_to_the_verdict_recorded_meanwhile(
    tenant, make_linked_bucket, s3_client, monkeypatch
):
    # The tags went on with half the lease left, but S3 was slow (retries): the lease ran out, another
    # worker took the claim over, recorded Infected (newer signatures) and tagged. This worker's Clean
    # tags landed last; its record loses, and the object must end up saying what was recorded.
    bucket = make_linked_bucket(tenant)
    version, etag = _put(s3_client, bucket, "slow.txt", b"slow tags " * 100)
    real = s3ops.put_scan_tags

    def slow_while_taken_over(s3, ref, ours, *args, **kwargs):
        if dict(ours).get("scan-result") == "Clean":
            with scope(tenant=tenant):  # the other worker's whole scan, while this PUT is retried
                ScanResult.objects.filter(key="slow.txt").update(
                    verdict=Verdict.INFECTED, signatures=["Newer.Sig"], action_status="done", tagged=True,
                    claimed_until=None, scanned_at=timezone.now(), attempts=2, version_id=version or "",
                    etag=etag.strip('"'),
                )  # fmt: skip
            s3_client.put_object_tagging(
                Bucket=bucket.name,
                Key="slow.txt",
                Tagging={"TagSet": [{"Key": "scan-result", "Value": "Infected"}]},
            )
        return real(s3, ref, ours, *args, **kwargs)

    monkeypatch.setattr(s3ops, "put_scan_tags", slow_while_taken_over)
    result = _scan(tenant, bucket, "slow.txt", etag)
    assert result.verdict == Verdict.INFECTED
    assert _tags(s3_client, bucket, "slow.txt")["scan-result"] == "Infected"

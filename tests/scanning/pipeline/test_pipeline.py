"""The scan pipeline on real parts: clamd and moto's S3 HTTP server."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django_scopes import scope

from scanning.models import ScanResult, Verdict
from scanning.pipeline import services
from tests import factories
from tests.fixtures.scanning import EICAR, TESTFILES, assert_gone_for_good, next_second
from tests.scanning.engine.test_clamd_client import FakeClamd, instream_dropped_after

pytestmark = pytest.mark.django_db


def _put(s3_client, bucket, key, body, tags=None):
    extra = {}
    if tags:
        extra["Tagging"] = "&".join(f"{k}={v}" for k, v in tags.items())
    response = s3_client.put_object(Bucket=bucket.name, Key=key, Body=body, **extra)
    return response.get("VersionId"), response["ETag"]


def _scan(tenant, bucket, key, version_id=None, etag=None, **kwargs):
    with scope(tenant=tenant):
        dedupe = services.dedupe_key_for(bucket, key, version_id, etag, force=etag is None)
        return services.run_scan(
            tenant,
            bucket,
            key,
            version_id=version_id,
            etag=etag,
            trigger="event",
            dedupe_key=dedupe,
            **kwargs,
        )


def _tags(s3_client, bucket, key, version_id=None):
    args = {"Bucket": bucket.name, "Key": key}
    if version_id:
        args["VersionId"] = version_id
    return {t["Key"]: t["Value"] for t in s3_client.get_object_tagging(**args)["TagSet"]}


def test_it_tags_a_clean_object_clean(tenant, make_linked_bucket, s3_client):
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "docs/report.txt", b"quarterly numbers\n" * 100)
    result = _scan(tenant, bucket, "docs/report.txt", etag=etag)
    assert result.verdict == Verdict.CLEAN
    assert result.size == 1800
    assert len(result.sha256) == 64
    assert result.engine.startswith("ClamAV")
    assert result.signature_version
    tags = _tags(s3_client, bucket, "docs/report.txt")
    assert tags["scan-result"] == "Clean"
    assert tags["date-scanned"].endswith("Z")


def test_it_finds_eicar_and_tags_the_signature(tenant, make_linked_bucket, s3_client):
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "eicar.com", EICAR)
    result = _scan(tenant, bucket, "eicar.com", etag=etag)
    assert result.verdict == Verdict.INFECTED
    assert result.signatures
    tags = _tags(s3_client, bucket, "eicar.com")
    assert tags["scan-result"] == "Infected"
    assert tags["virus-name"]


@pytest.mark.parametrize(
    "sample", ["clam.exe", "clam.zip", "clam.7z", "clam.tar.gz", "clam.pdf", "clam.ole.doc"]
)
def test_it_finds_the_clamav_test_files(tenant, make_linked_bucket, s3_client, sample):
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, f"samples/{sample}", (TESTFILES / sample).read_bytes())
    assert _scan(tenant, bucket, f"samples/{sample}", etag=etag).verdict == Verdict.INFECTED


def test_it_reports_an_encrypted_archive_unscannable(tenant, make_linked_bucket, s3_client, tmp_path):
    import subprocess

    (tmp_path / "inner.txt").write_text("secret payload " * 50)
    subprocess.run(["zip", "-q", "-P", "hunter2", "enc.zip", "inner.txt"], cwd=tmp_path, check=True)
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "enc.zip", (tmp_path / "enc.zip").read_bytes())
    result = _scan(tenant, bucket, "enc.zip", etag=etag)
    assert result.verdict == Verdict.UNSCANNABLE
    assert "Encrypted" in result.message
    assert _tags(s3_client, bucket, "enc.zip")["scan-result"] == "Unscannable"


def test_an_object_over_the_policy_limit_is_unscannable_and_not_downloaded(
    tenant, make_linked_bucket, s3_client
):
    bucket = make_linked_bucket(tenant, max_object_size=1024)
    _, etag = _put(s3_client, bucket, "big.bin", b"\0" * 4096)
    result = _scan(tenant, bucket, "big.bin", etag=etag)
    assert result.verdict == Verdict.UNSCANNABLE
    assert "larger than" in result.message
    assert result.sha256 == ""
    tags = _tags(s3_client, bucket, "big.bin")
    assert tags["scan-result"] == "Unscannable"
    assert "larger" in tags["message"]


def test_a_zip_bomb_is_unscannable_not_clean(tenant, make_linked_bucket, s3_client):
    # Ten thousand and one small members pass clamd's MaxFiles (10000): reported, never passed.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for n in range(10_001):
            archive.writestr(f"f{n}.txt", f"{n}")
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "bomb.zip", buffer.getvalue())
    result = _scan(tenant, bucket, "bomb.zip", etag=etag)
    assert result.verdict == Verdict.UNSCANNABLE


@pytest.mark.parametrize("key", ["with space/a b.txt", "plus+sign.txt", "100%.txt", "ünïcödé/файл.txt"])
def test_it_handles_awkward_keys(tenant, make_linked_bucket, s3_client, key):
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, key, EICAR)
    result = _scan(tenant, bucket, key, etag=etag)
    assert result.verdict == Verdict.INFECTED
    assert result.key == key
    assert _tags(s3_client, bucket, key)["scan-result"] == "Infected"


def test_it_keeps_ten_customer_tags_and_records_the_shortfall(tenant, make_linked_bucket, s3_client):
    bucket = make_linked_bucket(tenant)
    customer = {f"team{n}": f"value{n}" for n in range(10)}
    _, etag = _put(s3_client, bucket, "tagged.txt", EICAR, tags=customer)
    result = _scan(tenant, bucket, "tagged.txt", etag=etag)
    assert result.verdict == Verdict.INFECTED
    assert _tags(s3_client, bucket, "tagged.txt") == customer
    assert "scan-result" in result.tags_dropped


def test_it_writes_scan_result_first_when_room_is_short(tenant, make_linked_bucket, s3_client):
    bucket = make_linked_bucket(tenant)
    customer = {f"team{n}": "x" for n in range(9)}
    _, etag = _put(s3_client, bucket, "nine.txt", EICAR, tags=customer)
    result = _scan(tenant, bucket, "nine.txt", etag=etag)
    tags = _tags(s3_client, bucket, "nine.txt")
    assert tags["scan-result"] == "Infected"
    assert len(tags) == 10
    assert "virus-name" in result.tags_dropped


def test_it_quarantines_infected_objects_and_keeps_clean_ones(
    tenant, make_linked_bucket, make_bucket, s3_client
):
    quarantine = make_bucket()
    bucket = make_linked_bucket(tenant, on_infected="quarantine", quarantine_bucket=quarantine)
    _, bad = _put(s3_client, bucket, "in/evil.exe", (TESTFILES / "clam.exe").read_bytes())
    _, good = _put(s3_client, bucket, "in/good.txt", b"hello")
    infected = _scan(tenant, bucket, "in/evil.exe", etag=bad)
    clean = _scan(tenant, bucket, "in/good.txt", etag=good)
    assert infected.action == "tagged+quarantined"
    assert clean.action == "tagged"
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket.name).get("Contents", [])]
    assert keys == ["in/good.txt"]
    moved = s3_client.get_object(Bucket=quarantine, Key=infected.quarantine_key)
    assert moved["Body"].read() == (TESTFILES / "clam.exe").read_bytes()
    assert (
        _tags(s3_client, type(bucket)(name=quarantine), infected.quarantine_key)["scan-result"] == "Infected"
    )


def test_delete_removes_the_infected_version_itself(tenant, make_linked_bucket, s3_client):
    bucket = make_linked_bucket(tenant, versioned=True, on_infected="delete")
    clean_version, _ = _put(s3_client, bucket, "doc.txt", b"first, clean")
    bad_version, bad_etag = _put(s3_client, bucket, "doc.txt", EICAR)
    result = _scan(tenant, bucket, "doc.txt", version_id=bad_version, etag=bad_etag)
    assert result.verdict == Verdict.INFECTED
    assert result.action == "tagged+deleted"
    versions = s3_client.list_object_versions(Bucket=bucket.name, Prefix="doc.txt")
    assert [v["VersionId"] for v in versions.get("Versions", [])] == [clean_version]
    assert not versions.get("DeleteMarkers")


def test_it_scans_the_pinned_version_not_the_latest(tenant, make_linked_bucket, s3_client):
    bucket = make_linked_bucket(tenant, versioned=True)
    bad_version, bad_etag = _put(s3_client, bucket, "v.txt", EICAR)
    _put(s3_client, bucket, "v.txt", b"now clean")
    result = _scan(tenant, bucket, "v.txt", version_id=bad_version, etag=bad_etag)
    assert result.verdict == Verdict.INFECTED
    assert result.version_id == bad_version
    assert _tags(s3_client, bucket, "v.txt", bad_version)["scan-result"] == "Infected"
    assert "scan-result" not in _tags(s3_client, bucket, "v.txt")


def test_a_duplicate_request_does_not_scan_or_act_twice(tenant, make_linked_bucket, make_bucket, s3_client):
    quarantine = make_bucket()
    bucket = make_linked_bucket(tenant, on_infected="quarantine", quarantine_bucket=quarantine)
    _, etag = _put(s3_client, bucket, "dup.exe", EICAR)
    first = _scan(tenant, bucket, "dup.exe", etag=etag)
    second = _scan(tenant, bucket, "dup.exe", etag=etag)
    assert first.pk == second.pk
    with scope(tenant=tenant):
        assert ScanResult.objects.filter(tenant=tenant, key="dup.exe").count() == 1


def test_a_gone_object_is_an_error_and_is_not_retried(tenant, make_linked_bucket, s3_client):
    bucket = make_linked_bucket(tenant)
    result = _scan(tenant, bucket, "never-uploaded.txt", etag='"0123"', version_id=None)
    assert result.verdict == Verdict.ERROR
    assert result.message


def test_engine_down_retries_then_ends_as_error_never_clean(
    tenant, make_linked_bucket, s3_client, aws_settings
):
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "x.txt", b"fine")
    aws_settings.CLAMD_ADDRESS = "tcp://127.0.0.1:9"
    services._identity = None
    try:
        with pytest.raises(Exception) as raised:
            _scan(tenant, bucket, "x.txt", etag=etag)
        assert "clamd" in str(raised.value)
        result = _scan(tenant, bucket, "x.txt", etag=etag, final_attempt=True)
    finally:
        services._identity = None
    assert result.verdict == Verdict.ERROR
    assert "gave up" in result.message
    assert _tags(s3_client, bucket, "x.txt")["scan-result"] == "Error"


def test_a_live_claim_is_not_taken_twice(tenant, make_linked_bucket, s3_client):
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "busy.txt", b"x")
    with scope(tenant=tenant):
        dedupe = services.dedupe_key_for(bucket, "busy.txt", None, etag, False)
        services._claim(tenant, bucket, "busy.txt", dedupe, "event", None)
        with pytest.raises(services.ScanInProgress):
            services._claim(tenant, bucket, "busy.txt", dedupe, "event", None)
        # A claim whose lease ran out (its worker died) is taken over.
        ScanResult.objects.filter(dedupe_key=dedupe).update(claimed_until=ScanResult.lease(-60))
        taken = services._claim(tenant, bucket, "busy.txt", dedupe, "event", None)
    assert taken.attempts == 2


def test_an_excluded_key_is_not_scanned(tenant, make_linked_bucket, s3_client):
    bucket = make_linked_bucket(tenant, exclude_patterns=["logs/*"])
    _, etag = _put(s3_client, bucket, "logs/app.log", EICAR)
    assert _scan(tenant, bucket, "logs/app.log", etag=etag) is None


def test_a_stale_event_for_a_replaced_object_is_dropped(tenant, make_linked_bucket, s3_client):
    bucket = make_linked_bucket(tenant)
    _, old_etag = _put(s3_client, bucket, "r.txt", EICAR)
    _put(s3_client, bucket, "r.txt", b"replaced")
    assert _scan(tenant, bucket, "r.txt", etag=old_etag) is None
    assert "scan-result" not in _tags(s3_client, bucket, "r.txt")


def test_request_scan_enqueues_only_after_commit(
    tenant, make_linked_bucket, s3_client, django_capture_on_commit_callbacks
):
    from scanning.pipeline.services import scan_object

    broker = scan_object.broker
    broker.flush_all()
    bucket = make_linked_bucket(tenant)
    with scope(tenant=tenant), django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = services.request_scan(tenant, None, bucket, "k", etag="abc")
        again = services.request_scan(tenant, None, bucket, "k", etag='"abc"')
    assert first == again  # the same object version: one dedupe key
    assert broker.queues["scans"].qsize() == 0
    for callback in callbacks:
        callback()
    assert broker.queues["scans"].qsize() == 2
    message = json.loads(broker.queues["scans"].get())
    assert message["args"] == [str(tenant.pk), str(bucket.pk), "k"]
    assert message["kwargs"]["dedupe_key"] == first
    broker.flush_all()


def test_a_verdict_is_not_tagged_onto_bytes_that_replaced_the_scanned_ones(
    tenant, make_linked_bucket, s3_client
):
    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "swap.txt", b"harmless")
    with scope(tenant=tenant):
        result = factories.make_result(
            tenant,
            bucket,
            "swap.txt",
            Verdict.CLEAN,
            etag=etag.strip('"'),
            size=8,
            action_status="pending",
        )
        _put(s3_client, bucket, "swap.txt", EICAR)  # replaced between the scan and the tagging
        services._act(tenant, bucket, bucket.effective_policy(), result)
    assert result.action == "superseded"
    assert "scan-result" not in _tags(s3_client, bucket, "swap.txt")


def test_an_unexpected_failure_on_the_last_attempt_is_recorded_as_error(
    tenant, make_linked_bucket, s3_client, monkeypatch
):
    from linked_accounts import aws

    bucket = make_linked_bucket(tenant)
    _, etag = _put(s3_client, bucket, "role-gone.txt", b"x")

    def refuse(*args, **kwargs):
        raise aws.AssumeRoleFailed("s3av may not assume the role", "AccessDenied")

    monkeypatch.setattr(services, "client_for", refuse)
    with pytest.raises(aws.AssumeRoleFailed):
        _scan(tenant, bucket, "role-gone.txt", etag=etag)
    result = _scan(tenant, bucket, "role-gone.txt", etag=etag, final_attempt=True)
    assert result.verdict == Verdict.ERROR
    assert "may not assume" in result.message
    assert result.action_status == "failed"


def test_a_tenant_policy_named_default_does_not_break_scanning(tenant, make_linked_bucket, s3_client):
    bucket = make_linked_bucket(tenant)
    with scope(tenant=tenant):
        factories.make_policy(tenant, "Default")
        bucket.policy = None
        bucket.save(update_fields=["policy"])
    _, etag = _put(s3_client, bucket, "d.txt", b"fine")
    assert _scan(tenant, bucket, "d.txt", etag=etag).verdict == Verdict.CLEAN


def test_a_late_request_for_a_version_already_quarantined_is_not_an_error(
    tenant, make_linked_bucket, make_bucket, s3_client
):
    quarantine = make_bucket()
    bucket = make_linked_bucket(
        tenant, versioned=True, on_infected="quarantine", quarantine_bucket=quarantine
    )
    version, etag = _put(s3_client, bucket, "late.exe", EICAR)
    first = _scan(tenant, bucket, "late.exe", version_id=version, etag=etag)
    assert first.action == "tagged+quarantined"
    with scope(tenant=tenant):
        # A bucket scan listed the object before it was moved; its own request arrives now.
        late = services.run_scan(
            tenant,
            bucket,
            "late.exe",
            version_id=version,
            etag=etag,
            trigger="schedule",
            dedupe_key="job-late",
        )
        assert late.pk == first.pk
        assert ScanResult.objects.filter(tenant=tenant, key="late.exe").count() == 1


def test_the_same_malware_uploaded_again_is_caught_again(tenant, make_linked_bucket, make_bucket, s3_client):
    quarantine = make_bucket()
    bucket = make_linked_bucket(tenant, on_infected="quarantine", quarantine_bucket=quarantine)
    _, etag = _put(s3_client, bucket, "again.com", EICAR)
    first = _scan(tenant, bucket, "again.com", etag=etag)
    assert first.action == "tagged+quarantined"
    _put(s3_client, bucket, "again.com", EICAR)  # same bytes, same ETag, unversioned bucket
    second = _scan(tenant, bucket, "again.com", etag=etag)
    assert second.pk != first.pk
    assert second.action == "tagged+quarantined"
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket.name)


def test_an_event_with_etag_and_size_is_scanned_without_a_head_request(
    tenant, make_linked_bucket, s3_client, s3_calls
):
    bucket = make_linked_bucket(tenant, versioned=True)
    version, etag = _put(s3_client, bucket, "quick.com", EICAR)
    result = _scan(tenant, bucket, "quick.com", version_id=version, etag=etag, size=len(EICAR))
    assert result.verdict == Verdict.INFECTED
    assert result.size == len(EICAR)
    assert s3_calls["HeadObject"] == 0
    assert s3_calls["GetObject"] == 1


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_an_event_scan_of_an_untagged_object_is_one_read_and_one_tagging(
    tenant, make_linked_bucket, s3_client, s3_calls, versioned
):
    bucket = make_linked_bucket(tenant, versioned=versioned)
    version, etag = _put(s3_client, bucket, "plain.txt", b"nothing to see\n" * 100)
    result = _scan(tenant, bucket, "plain.txt", version_id=version, etag=etag, size=1500)
    assert result.verdict == Verdict.CLEAN
    assert result.action == "tagged"
    assert dict(s3_calls) == {"GetObject": 1, "PutObjectTagging": 1}
    assert _tags(s3_client, bucket, "plain.txt")["scan-result"] == "Clean"


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_an_event_scan_of_a_tagged_object_reads_its_tags_to_keep_them(
    tenant, make_linked_bucket, s3_client, s3_calls, versioned
):
    bucket = make_linked_bucket(tenant, versioned=versioned)
    version, etag = _put(s3_client, bucket, "owned.txt", b"nothing to see\n" * 100, tags={"owner": "me"})
    result = _scan(tenant, bucket, "owned.txt", version_id=version, etag=etag, size=1500)
    assert result.verdict == Verdict.CLEAN
    assert dict(s3_calls) == {"GetObject": 1, "GetObjectTagging": 1, "PutObjectTagging": 1}
    tags = _tags(s3_client, bucket, "owned.txt")
    assert tags["owner"] == "me"
    assert tags["scan-result"] == "Clean"


# As the worker runs it: autocommit, no test transaction around it (a savepoint would add two), usage
# added up in the process.
@pytest.mark.django_db(transaction=True)
def test_an_event_scan_costs_a_fixed_number_of_statements(
    tenant, make_linked_bucket, s3_client, django_assert_num_queries, worker_usage
):
    from scanning.pipeline.services import scan_object

    bucket = make_linked_bucket(tenant)

    def scan(key):
        _, etag = _put(s3_client, bucket, key, key.encode() * 100)
        with scope(tenant=tenant):
            dedupe = services.dedupe_key_for(bucket, key, None, etag, False)
        scan_object.fn(str(tenant.pk), str(bucket.pk), key, etag=etag, size=len(key) * 100, dedupe_key=dedupe)

    scan("warm-up.txt")  # the engine identity, the S3 client: once per process
    # The bucket with its tenant, account and policy; the claim; one look at the key's other verdicts
    # (released as allowed, or newer); verdict and action in one UPDATE, after the tagging. (The
    # notification channels' verdicts and a default policy are kept per process for a few seconds;
    # usage is written every few seconds.)
    with django_assert_num_queries(4):
        scan("counted.txt")
    with scope(tenant=tenant):
        assert ScanResult.objects.get(key="counted.txt").action == "tagged"


def _on_the_default_policy(tenant, bucket):
    from scanning.models import Bucket

    with scope(tenant=tenant):
        Bucket.objects.filter(pk=bucket.pk).update(policy=None)
        bucket.refresh_from_db()
    return bucket


@pytest.mark.django_db(transaction=True)
def test_a_bucket_on_the_default_policy_costs_no_more_statements(
    tenant, make_linked_bucket, s3_client, django_assert_num_queries, worker_usage
):
    from scanning.pipeline.services import scan_object

    bucket = _on_the_default_policy(tenant, make_linked_bucket(tenant))

    def scan(key):
        _, etag = _put(s3_client, bucket, key, key.encode() * 100)
        with scope(tenant=tenant):
            dedupe = services.dedupe_key_for(bucket, key, None, etag, False)
        scan_object.fn(str(tenant.pk), str(bucket.pk), key, etag=etag, size=len(key) * 100, dedupe_key=dedupe)

    scan("warm-up.txt")
    with django_assert_num_queries(4):  # the default policy is kept per process for a few seconds
        scan("counted.txt")


def test_a_change_to_the_default_policy_applies_to_the_next_scan(tenant, make_linked_bucket, s3_client):
    from accounts.services import Actor
    from scanning.models import ScanPolicy
    from scanning.policies import services as policies

    bucket = _on_the_default_policy(tenant, make_linked_bucket(tenant))
    _, etag = _put(s3_client, bucket, "before.txt", b"before " * 50)
    assert _scan(tenant, bucket, "before.txt", etag=etag).action == "tagged"
    with scope(tenant=tenant):
        default = ScanPolicy.default_for(tenant)
        policies.update_policy(tenant, Actor.system("test"), default, tag_objects=False)
    _, etag = _put(s3_client, bucket, "after.txt", b"after " * 50)
    assert _scan(tenant, bucket, "after.txt", etag=etag).action == "none"
    assert "scan-result" not in _tags(s3_client, bucket, "after.txt")


def test_an_event_for_bytes_replaced_before_the_read_is_dropped_not_an_error(
    tenant, make_linked_bucket, s3_client
):
    bucket = make_linked_bucket(tenant)
    _, old_etag = _put(s3_client, bucket, "swapped.com", EICAR)
    _put(s3_client, bucket, "swapped.com", b"the newer, clean bytes")
    assert _scan(tenant, bucket, "swapped.com", etag=old_etag, size=len(EICAR)) is None
    with scope(tenant=tenant):
        assert not ScanResult.objects.filter(tenant=tenant, key="swapped.com").exists()
    assert "scan-result" not in _tags(s3_client, bucket, "swapped.com")


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_a_stream_clamd_drops_early_is_retried_then_error_never_unscannable(
    tenant, make_linked_bucket, make_bucket, s3_client, aws_settings, versioned
):
    # A clamd restarted mid-scan: the connection drops after 256 KiB of a 4 MiB object, far below
    # StreamMaxLength, while PING still answers. Not the size limit: quarantine-on-unscannable must not
    # move a clean object for it.
    quarantine = make_bucket()
    bucket = make_linked_bucket(
        tenant, versioned=versioned, on_unscannable="quarantine", quarantine_bucket=quarantine
    )
    version_id, etag = _put(s3_client, bucket, "big.bin", b"clean bytes " * (4 * 1024 * 1024 // 12))
    fake = FakeClamd(instream_dropped_after(256 * 1024))
    aws_settings.CLAMD_ADDRESS = fake.address
    services._identity = None
    try:
        with pytest.raises(Exception, match="dropped the stream after"):
            _scan(tenant, bucket, "big.bin", version_id=version_id, etag=etag)
        result = _scan(tenant, bucket, "big.bin", version_id=version_id, etag=etag, final_attempt=True)
    finally:
        services._identity = None
        fake.close()
    assert result.verdict == Verdict.ERROR
    assert "gave up" in result.message
    assert s3_client.head_object(Bucket=bucket.name, Key="big.bin")["ETag"] == etag
    assert not s3_client.list_objects_v2(Bucket=quarantine).get("Contents")


# --- the exact version, on versioned and unversioned buckets (issue 8) ------------------------------

BUCKET_KINDS = pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])


def _event_scan(tenant, bucket, key, etag, size, **kwargs):
    """What an S3 event from moto (or a store that sends no version ids) asks for: ETag and size only."""
    return _scan(tenant, bucket, key, version_id=None, etag=etag, size=size, **kwargs)


@BUCKET_KINDS
def test_an_event_without_a_version_id_quarantines_the_version_it_scanned(
    tenant, make_linked_bucket, make_bucket, s3_client, versioned
):
    quarantine = make_bucket()
    bucket = make_linked_bucket(
        tenant, versioned=versioned, on_infected="quarantine", quarantine_bucket=quarantine
    )
    version, etag = _put(s3_client, bucket, "up/evil.com", EICAR)
    result = _event_scan(tenant, bucket, "up/evil.com", etag, len(EICAR))
    assert result.action == "tagged+quarantined"
    assert_gone_for_good(s3_client, bucket.name, "up/evil.com", version)
    assert result.version_id == (version or "")  # pinned by GetObject's answer
    assert result.last_modified is not None
    moved = s3_client.get_object(Bucket=quarantine, Key=result.quarantine_key)
    assert moved["Body"].read() == EICAR


@BUCKET_KINDS
def test_an_event_without_a_version_id_deletes_the_version_it_scanned(
    tenant, make_linked_bucket, s3_client, versioned
):
    bucket = make_linked_bucket(tenant, versioned=versioned, on_infected="delete")
    version, etag = _put(s3_client, bucket, "up/evil.com", EICAR)
    result = _event_scan(tenant, bucket, "up/evil.com", etag, len(EICAR))
    assert result.action == "tagged+deleted"
    assert_gone_for_good(s3_client, bucket.name, "up/evil.com", version)
    assert result.version_id == (version or "")


@BUCKET_KINDS
def test_an_object_too_large_to_read_is_pinned_before_it_is_quarantined(
    tenant, make_linked_bucket, make_bucket, s3_client, versioned
):
    quarantine = make_bucket()
    bucket = make_linked_bucket(
        tenant,
        versioned=versioned,
        max_object_size=16,
        on_unscannable="quarantine",
        quarantine_bucket=quarantine,
    )
    version, etag = _put(s3_client, bucket, "big.bin", b"x" * 64)
    result = _event_scan(tenant, bucket, "big.bin", etag, 64)
    assert result.verdict == Verdict.UNSCANNABLE
    assert result.action == "tagged+quarantined"
    assert_gone_for_good(s3_client, bucket.name, "big.bin", version)
    assert result.version_id == (version or "")


@BUCKET_KINDS
def test_the_same_clean_bytes_uploaded_again_are_tagged_and_reported_again(
    tenant, make_linked_bucket, s3_client, monkeypatch, versioned
):
    reported = []
    monkeypatch.setattr(services.notifications, "result_recorded", lambda t, r: reported.append(r.pk))
    bucket = make_linked_bucket(tenant, versioned=versioned)
    _, etag = _put(s3_client, bucket, "same.txt", b"the very same bytes")
    first = _event_scan(tenant, bucket, "same.txt", etag, 19)
    assert _tags(s3_client, bucket, "same.txt")["scan-result"] == "Clean"
    next_second()
    version, again = _put(s3_client, bucket, "same.txt", b"the very same bytes")  # tags gone with it
    assert again == etag
    second = _event_scan(tenant, bucket, "same.txt", etag, 19)
    assert second.pk != first.pk
    assert second.version_id == (version or "")
    assert _tags(s3_client, bucket, "same.txt")["scan-result"] == "Clean"
    assert reported == [first.pk, second.pk]
    # Either event delivered again is a duplicate: nothing more is scanned, tagged or reported.
    assert _event_scan(tenant, bucket, "same.txt", etag, 19).pk == second.pk
    assert reported == [first.pk, second.pk]
    with scope(tenant=tenant):
        assert ScanResult.objects.filter(tenant=tenant, key="same.txt").count() == 2


@BUCKET_KINDS
def test_the_same_malware_uploaded_again_is_tagged_and_reported_again(
    tenant, make_linked_bucket, s3_client, monkeypatch, versioned
):
    reported = []
    monkeypatch.setattr(services.notifications, "result_recorded", lambda t, r: reported.append(r.verdict))
    bucket = make_linked_bucket(tenant, versioned=versioned)  # on_infected: keep (tag only)
    _, etag = _put(s3_client, bucket, "again.com", EICAR)
    _event_scan(tenant, bucket, "again.com", etag, len(EICAR))
    next_second()
    _put(s3_client, bucket, "again.com", EICAR)
    assert _event_scan(tenant, bucket, "again.com", etag, len(EICAR)).verdict == Verdict.INFECTED
    assert _tags(s3_client, bucket, "again.com")["scan-result"] == "Infected"
    assert reported == [Verdict.INFECTED, Verdict.INFECTED]


@BUCKET_KINDS
def test_the_event_sequencer_tells_a_new_upload_from_a_redelivery(
    tenant, make_linked_bucket, s3_client, monkeypatch, versioned
):
    # S3 gives each write of a key a later sequencer, even within one second; a redelivered event keeps
    # its own, and an older one that arrives late is about bytes already replaced.
    reported = []
    monkeypatch.setattr(services.notifications, "result_recorded", lambda t, r: reported.append(r.pk))
    bucket = make_linked_bucket(tenant, versioned=versioned)
    _, etag = _put(s3_client, bucket, "seq.txt", b"same")
    first = _event_scan(tenant, bucket, "seq.txt", etag, 4, sequencer="0055AED6DCD90281E5")
    assert first.sequencer == "0055AED6DCD90281E5"
    _put(s3_client, bucket, "seq.txt", b"same")  # no waiting: the same second, most likely
    second = _event_scan(tenant, bucket, "seq.txt", etag, 4, sequencer="0055AED6DCD90281E6")
    assert second.pk != first.pk
    assert _tags(s3_client, bucket, "seq.txt")["scan-result"] == "Clean"
    assert _event_scan(tenant, bucket, "seq.txt", etag, 4, sequencer="0055AED6DCD90281E6").pk == second.pk
    assert _event_scan(tenant, bucket, "seq.txt", etag, 4, sequencer="0055AED6DCD90281E5").pk == first.pk
    assert reported == [first.pk, second.pk]
    with scope(tenant=tenant):
        assert ScanResult.objects.filter(tenant=tenant, key="seq.txt").count() == 2


def test_sequencers_of_different_lengths_compare_as_s3_says():
    assert services._later_event("0055AED6DCD90281E6", "0055AED6DCD90281E5") is True
    assert services._later_event("0055AED6DCD90281E5", "0055AED6DCD90281E5") is False
    assert services._later_event("0056", "0055AED6DCD90281E5") is True  # right-padded with zeros
    assert services._later_event("0055A", "0055AED6DCD90281E5") is False
    assert services._later_event(None, "0055") is None
    assert services._later_event("0055", "") is None


@BUCKET_KINDS
def test_deleting_a_finding_of_an_event_without_a_version_id_removes_that_version_for_good(
    tenant, make_linked_bucket, s3_client, versioned
):
    # The portal's "Delete" on a finding (the demo's versioned bucket showed the version still readable).
    from accounts.services import Actor

    bucket = make_linked_bucket(tenant, versioned=versioned)  # on_infected: keep (tag only)
    version, etag = _put(s3_client, bucket, "found.com", EICAR)
    result = _event_scan(tenant, bucket, "found.com", etag, len(EICAR))
    with scope(tenant=tenant):
        services.delete_scanned_object(tenant, Actor.system("test"), result)
    assert_gone_for_good(s3_client, bucket.name, "found.com", version)


def test_a_finding_without_a_version_id_in_a_versioned_bucket_is_not_hidden_behind_a_delete_marker(
    tenant, make_linked_bucket, s3_client
):
    # A verdict recorded before s3av pinned versions: refused with the reason, the version untouched.
    from accounts.services import Actor, ServiceError

    bucket = make_linked_bucket(tenant, versioned=True)
    version, etag = _put(s3_client, bucket, "old.com", EICAR)
    with scope(tenant=tenant):
        result = factories.make_result(
            tenant,
            bucket,
            "old.com",
            Verdict.INFECTED,
            etag=etag.strip('"'),
            size=len(EICAR),
            action="tagged",
            action_status="done",
        )
        with pytest.raises(ServiceError, match="without its version id"):
            services.delete_scanned_object(tenant, Actor.system("test"), result)
    listing = s3_client.list_object_versions(Bucket=bucket.name, Prefix="old.com")
    assert [v["VersionId"] for v in listing["Versions"]] == [version]
    assert not listing.get("DeleteMarkers")


@BUCKET_KINDS
def test_the_same_bytes_uploaded_after_an_object_was_gone_are_scanned(
    tenant, make_linked_bucket, s3_client, versioned
):
    # The first upload was deleted before its scan (an Error: gone); the retried upload has the same ETag.
    bucket = make_linked_bucket(tenant, versioned=versioned)
    _, etag = _put(s3_client, bucket, "retry.txt", b"uploaded twice")
    s3_client.delete_object(Bucket=bucket.name, Key="retry.txt")
    gone = _event_scan(tenant, bucket, "retry.txt", etag, 14)
    assert gone.verdict == Verdict.ERROR
    _put(s3_client, bucket, "retry.txt", b"uploaded twice")
    again = _event_scan(tenant, bucket, "retry.txt", etag, 14)
    assert again.pk != gone.pk
    assert again.verdict == Verdict.CLEAN
    assert _tags(s3_client, bucket, "retry.txt")["scan-result"] == "Clean"
    assert _event_scan(tenant, bucket, "retry.txt", etag, 14).pk == again.pk  # a duplicate, once

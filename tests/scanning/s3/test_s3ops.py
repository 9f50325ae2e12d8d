"""scanning.s3.ops against moto's S3 server over real HTTP, plus error classification without a server."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
)

from linked_accounts.aws import make_client
from scanning.s3 import ops as s3ops
from scanning.s3.ops import (
    CopyVerificationError,
    DigestingStream,
    ObjectRef,
    PermanentS3Error,
    SizeMismatchError,
    TransientS3Error,
)

ODD_KEY = "dir/ünïcödé file+name%41.txt"


def put(client: Any, bucket: str, key: str, body: bytes, **extra: Any) -> str | None:
    return client.put_object(Bucket=bucket, Key=key, Body=body, **extra).get("VersionId")


def read_all(client: Any, ref: ObjectRef, chunk_size: int = s3ops.MiB) -> bytes:
    return b"".join(s3ops.stream_object(client, ref, chunk_size=chunk_size))


def tags_of(client: Any, bucket: str, key: str, version_id: str | None = None) -> dict[str, str]:
    args = {"VersionId": version_id} if version_id else {}
    tagset = client.get_object_tagging(Bucket=bucket, Key=key, **args)["TagSet"]
    return {t["Key"]: t["Value"] for t in tagset}


# --- reading -----------------------------------------------------------------------------------------


def test_it_streams_exact_bytes_in_bounded_chunks(s3_client, make_bucket):
    bucket = make_bucket()
    body = os.urandom(300_000)
    put(s3_client, bucket, "a.bin", body)
    ref = s3ops.head_object(s3_client, bucket, "a.bin")

    stream = DigestingStream(s3ops.stream_object(s3_client, ref, chunk_size=64 * 1024))
    chunks = list(stream)

    assert b"".join(chunks) == body
    assert max(len(c) for c in chunks) <= 64 * 1024
    assert len(chunks) >= 5
    assert stream.bytes_read == len(body) == ref.size
    assert stream.sha256 == hashlib.sha256(body).hexdigest()
    stream.check_size(ref)


def test_it_refuses_a_short_read(s3_client, make_bucket):
    bucket = make_bucket()
    put(s3_client, bucket, "a.bin", b"x" * 1000)
    ref = s3ops.head_object(s3_client, bucket, "a.bin")
    stream = DigestingStream(s3ops.stream_object(s3_client, ref, chunk_size=100))
    next(stream)
    stream.close()

    with pytest.raises(SizeMismatchError):
        stream.check_size(ref)


def test_it_pins_head_to_the_current_version(s3_client, make_bucket):
    bucket = make_bucket(versioned=True)
    version = put(s3_client, bucket, "a.txt", b"hello", ContentType="text/plain")

    ref = s3ops.head_object(s3_client, bucket, "a.txt")

    assert ref.version_id == version
    assert ref.size == 5
    assert ref.etag == hashlib.md5(b"hello").hexdigest()  # noqa: S324 - S3's ETag is an MD5
    assert ref.content_type == "text/plain"
    assert ref.last_modified is not None


def test_it_streams_the_pinned_version_after_an_overwrite(s3_client, make_bucket):
    bucket = make_bucket(versioned=True)
    put(s3_client, bucket, "a.txt", b"old bytes")
    ref = s3ops.head_object(s3_client, bucket, "a.txt")
    put(s3_client, bucket, "a.txt", b"new bytes, longer")

    assert read_all(s3_client, ref) == b"old bytes"


def test_it_refuses_to_stream_a_replaced_unversioned_object(s3_client, make_bucket):
    bucket = make_bucket()
    put(s3_client, bucket, "a.txt", b"old bytes")
    ref = s3ops.head_object(s3_client, bucket, "a.txt")
    assert ref.version_id is None
    put(s3_client, bucket, "a.txt", b"new bytes")

    with pytest.raises(PermanentS3Error, match="changed") as caught:
        s3ops.stream_object(s3_client, ref)
    assert caught.value.kind == "permanent"


def test_it_reports_a_missing_object_as_permanent(s3_client, make_bucket):
    bucket = make_bucket()
    with pytest.raises(PermanentS3Error, match="no longer exists"):
        s3ops.head_object(s3_client, bucket, "nope")
    ref = ObjectRef(bucket, "nope", None, "abc", 3)
    with pytest.raises(PermanentS3Error, match="no longer exists"):
        s3ops.stream_object(s3_client, ref)


def test_it_reports_a_missing_version_as_permanent(s3_client, make_bucket):
    bucket = make_bucket(versioned=True)
    put(s3_client, bucket, "a.txt", b"x")
    ref = s3ops.head_object(s3_client, bucket, "a.txt")
    s3_client.delete_object(Bucket=bucket, Key="a.txt", VersionId=ref.version_id)

    with pytest.raises(PermanentS3Error):
        s3ops.stream_object(s3_client, ref)


def test_it_reports_an_unreachable_endpoint_as_transient():
    client = make_client("s3", endpoint_url="http://127.0.0.1:9", region="us-east-1")
    with pytest.raises(TransientS3Error, match="connection problem"):
        s3ops.head_object(client, "bucket", "key")


# --- odd keys ----------------------------------------------------------------------------------------


def test_odd_keys_round_trip_through_every_operation(s3_client, make_bucket):
    source, dest = make_bucket(versioned=True), make_bucket(versioned=True)
    put(s3_client, source, ODD_KEY, b"odd", ContentType="text/plain", Tagging="owner=me")

    ref = s3ops.head_object(s3_client, source, ODD_KEY)
    assert ref.key == ODD_KEY
    assert read_all(s3_client, ref) == b"odd"
    assert s3ops.put_scan_tags(s3_client, ref, [("scan-result", "Clean")]) == []
    assert tags_of(s3_client, source, ODD_KEY) == {"owner": "me", "scan-result": "Clean"}

    copied = s3ops.copy_object_verified(s3_client, ref, dest, ODD_KEY)
    assert copied.key == ODD_KEY
    assert read_all(s3_client, copied) == b"odd"
    assert tags_of(s3_client, dest, ODD_KEY) == {"owner": "me", "scan-result": "Clean"}

    s3ops.delete_version(s3_client, ref)
    versions = s3_client.list_object_versions(Bucket=source).get("Versions", [])
    assert versions == []

    [page] = list(s3ops.iter_keys(s3_client, dest, prefix="dir/"))
    assert [r.key for r in page.refs] == [ODD_KEY]


# --- tags --------------------------------------------------------------------------------------------

OURS = [("scan-result", "Infected"), ("date-scanned", "2024-05-01T10:00:00Z"), ("virus-name", "Eicar")]


def customer_tags(n: int) -> list[dict[str, str]]:
    return [{"Key": f"c{i}", "Value": f"v{i}"} for i in range(n)]


def test_merge_keeps_ten_customer_tags_and_drops_all_of_ours():
    tagset, dropped = s3ops.merge_tags(customer_tags(10), OURS)

    assert tagset == customer_tags(10)
    assert dropped == ["scan-result", "date-scanned", "virus-name"]


def test_merge_writes_ours_in_priority_order_when_room_is_short():
    tagset, dropped = s3ops.merge_tags(customer_tags(8), OURS)

    assert tagset == customer_tags(8) + [
        {"Key": "scan-result", "Value": "Infected"},
        {"Key": "date-scanned", "Value": "2024-05-01T10:00:00Z"},
    ]
    assert dropped == ["virus-name"]


def test_merge_fits_seven_customer_tags_and_three_of_ours():
    tagset, dropped = s3ops.merge_tags(customer_tags(7), OURS)

    assert len(tagset) == 10
    assert tagset[:7] == customer_tags(7)
    assert dropped == []


def test_merge_replaces_our_previous_values_and_removes_stale_ones():
    existing = customer_tags(2) + [
        {"Key": "scan-result", "Value": "Infected"},
        {"Key": "virus-name", "Value": "Eicar"},
    ]

    tagset, dropped = s3ops.merge_tags(
        existing, [("scan-result", "InfectedAllowed")], managed_keys=["scan-result", "virus-name"]
    )

    assert tagset == customer_tags(2) + [{"Key": "scan-result", "Value": "InfectedAllowed"}]
    assert dropped == []


def test_merge_sanitizes_and_truncates_our_values():
    tagset, _ = s3ops.merge_tags(
        [{"Key": "odd", "Value": "keep (as, is)!"}],
        [("virus-name", "Win.Trojan.Agent[x],y*z\n"), ("message", "é" * 300), ("k" * 200, "v")],
    )
    tags = {t["Key"]: t["Value"] for t in tagset}

    assert tags["odd"] == "keep (as, is)!"  # the customer's are never touched
    assert tags["virus-name"] == "Win.Trojan.Agent_x__y_z_"
    assert tags["message"] == "é" * 256
    assert "k" * 128 in tags


def test_sanitize_keeps_what_s3_allows():
    allowed = "Heuristics.Limits.Exceeded.MaxFileSize +-=._:/@ 2024 ünï"
    assert s3ops.sanitize_tag_text(allowed, 256) == allowed


def test_put_scan_tags_keeps_customer_tags_on_the_pinned_version(s3_client, make_bucket):
    bucket = make_bucket(versioned=True)
    put(s3_client, bucket, "a.txt", b"old", Tagging="owner=me&team=x")
    ref = s3ops.head_object(s3_client, bucket, "a.txt")
    new_version = put(s3_client, bucket, "a.txt", b"new")

    dropped = s3ops.put_scan_tags(s3_client, ref, OURS)

    assert dropped == []
    assert tags_of(s3_client, bucket, "a.txt", ref.version_id) == {
        "owner": "me",
        "team": "x",
        "scan-result": "Infected",
        "date-scanned": "2024-05-01T10:00:00Z",
        "virus-name": "Eicar",
    }
    assert tags_of(s3_client, bucket, "a.txt", new_version) == {}


def test_put_scan_tags_reports_what_did_not_fit(s3_client, make_bucket):
    bucket = make_bucket()
    tagging = "&".join(f"c{i}=v{i}" for i in range(9))
    put(s3_client, bucket, "a.txt", b"x", Tagging=tagging)
    ref = s3ops.head_object(s3_client, bucket, "a.txt")

    dropped = s3ops.put_scan_tags(s3_client, ref, OURS)

    assert dropped == ["date-scanned", "virus-name"]
    tags = tags_of(s3_client, bucket, "a.txt")
    assert len(tags) == 10
    assert tags["scan-result"] == "Infected"


# --- copy and move -----------------------------------------------------------------------------------


def put_rich(client: Any, bucket: str, key: str, body: bytes) -> ObjectRef:
    put(
        client,
        bucket,
        key,
        body,
        ContentType="application/x-test",
        ContentDisposition="attachment",
        Metadata={"origin": "upload", "customer-id": "42"},
        Tagging="owner=me&scan-result=Pending",
    )
    return s3ops.head_object(client, bucket, key)


def assert_faithful_copy(client: Any, copied: ObjectRef, body: bytes) -> None:
    head = client.head_object(Bucket=copied.bucket, Key=copied.key)
    assert head["ContentType"] == "application/x-test"
    assert head["ContentDisposition"] == "attachment"
    assert head["Metadata"] == {"origin": "upload", "customer-id": "42"}
    assert read_all(client, copied) == body
    assert tags_of(client, copied.bucket, copied.key) == {"owner": "me", "scan-result": "Infected"}


def test_it_copies_with_metadata_content_type_and_tags(s3_client, make_bucket):
    source, dest = make_bucket(versioned=True), make_bucket(versioned=True)
    body = os.urandom(10_000)
    ref = put_rich(s3_client, source, "in/a.bin", body)

    copied = s3ops.copy_object_verified(
        s3_client, ref, dest, "quarantine/a.bin", extra_tags=[("scan-result", "Infected")]
    )

    assert copied.size == ref.size
    assert copied.etag == ref.etag
    assert copied.version_id
    assert_faithful_copy(s3_client, copied, body)


def test_it_copies_large_objects_in_parts_keeping_metadata_and_tags(s3_client, make_bucket):
    source, dest = make_bucket(), make_bucket()
    body = os.urandom(11 * s3ops.MiB)  # three parts of 5, 5 and 1 MiB
    ref = put_rich(s3_client, source, "big.bin", body)

    copied = s3ops.copy_object_verified(
        s3_client,
        ref,
        dest,
        "big.bin",
        extra_tags=[("scan-result", "Infected")],
        multipart_threshold=5 * s3ops.MiB,
        part_size=5 * s3ops.MiB,
    )

    assert copied.etag.endswith("-3")
    assert copied.size == len(body)
    assert_faithful_copy(s3_client, copied, body)


def test_it_copies_with_a_separate_destination_client(s3_client, s3_endpoint, make_bucket):
    source, dest = make_bucket(), make_bucket()
    ref = put_rich(s3_client, source, "a.bin", b"abc")
    dest_client = make_client("s3", endpoint_url=s3_endpoint, region="us-east-1")

    copied = s3ops.copy_object_verified(
        s3_client, ref, dest, "a.bin", dest_client=dest_client, extra_tags=[("scan-result", "Infected")]
    )

    assert_faithful_copy(s3_client, copied, b"abc")


def test_copy_refuses_a_source_replaced_since_the_pin(s3_client, make_bucket):
    source, dest = make_bucket(), make_bucket()
    put(s3_client, source, "a.bin", b"scanned")
    ref = s3ops.head_object(s3_client, source, "a.bin")
    put(s3_client, source, "a.bin", b"replaced")

    with pytest.raises(PermanentS3Error, match="changed"):
        s3ops.copy_object_verified(s3_client, ref, dest, "a.bin")
    assert s3_client.list_objects_v2(Bucket=dest).get("KeyCount") == 0


def test_move_deletes_the_source_version_after_a_verified_copy(s3_client, make_bucket):
    source, dest = make_bucket(versioned=True), make_bucket(versioned=True)
    ref = put_rich(s3_client, source, "a.bin", b"infected")

    copied = s3ops.move_object_verified(
        s3_client, ref, dest, "q/a.bin", extra_tags=[("scan-result", "Infected")]
    )

    assert_faithful_copy(s3_client, copied, b"infected")
    listing = s3_client.list_object_versions(Bucket=source)
    assert listing.get("Versions", []) == []
    assert listing.get("DeleteMarkers", []) == []


def test_move_keeps_the_source_when_verification_fails(s3_client, make_bucket, monkeypatch):
    source, dest = make_bucket(versioned=True), make_bucket(versioned=True)
    ref = put_rich(s3_client, source, "a.bin", b"infected")
    dest_client = make_client("s3", endpoint_url=s3_client.meta.endpoint_url, region="us-east-1")
    real_head = dest_client.head_object

    def lying_head(**kwargs: Any) -> dict[str, Any]:
        response = real_head(**kwargs)
        if kwargs["Bucket"] == dest:
            response["ContentLength"] += 1
        return response

    monkeypatch.setattr(dest_client, "head_object", lying_head)

    with pytest.raises(CopyVerificationError, match="size"):
        s3ops.move_object_verified(s3_client, ref, dest, "a.bin", dest_client=dest_client)

    assert read_all(s3_client, ref) == b"infected"


# --- delete ------------------------------------------------------------------------------------------


def test_delete_removes_the_version_itself_not_just_hides_it(s3_client, make_bucket):
    bucket = make_bucket(versioned=True)
    put(s3_client, bucket, "a.bin", b"older")
    ref = s3ops.head_object(s3_client, bucket, "a.bin")

    s3ops.delete_version(s3_client, ref)
    s3ops.delete_version(s3_client, ref)  # a retried actor must not fail

    listing = s3_client.list_object_versions(Bucket=bucket)
    assert listing.get("Versions", []) == []
    assert listing.get("DeleteMarkers", []) == []


def test_delete_leaves_other_versions_alone(s3_client, make_bucket):
    bucket = make_bucket(versioned=True)
    put(s3_client, bucket, "a.bin", b"infected")
    ref = s3ops.head_object(s3_client, bucket, "a.bin")
    newer = put(s3_client, bucket, "a.bin", b"fixed")

    s3ops.delete_version(s3_client, ref)

    versions = s3_client.list_object_versions(Bucket=bucket)["Versions"]
    assert [v["VersionId"] for v in versions] == [newer]
    assert s3_client.get_object(Bucket=bucket, Key="a.bin")["Body"].read() == b"fixed"


def test_delete_on_unversioned_bucket_needs_the_same_etag(s3_client, make_bucket):
    bucket = make_bucket()
    put(s3_client, bucket, "a.bin", b"infected")
    ref = s3ops.head_object(s3_client, bucket, "a.bin")
    put(s3_client, bucket, "a.bin", b"replaced by the customer")

    with pytest.raises(PermanentS3Error, match="changed"):
        s3ops.delete_version(s3_client, ref)
    assert s3_client.get_object(Bucket=bucket, Key="a.bin")["Body"].read() == b"replaced by the customer"

    current = s3ops.head_object(s3_client, bucket, "a.bin")
    s3ops.delete_version(s3_client, current)
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_delete_on_unversioned_bucket_is_conditional_itself(s3_client, make_bucket, monkeypatch):
    # The object is replaced between our HEAD and our DELETE: the DELETE's If-Match must refuse.
    bucket = make_bucket()
    put(s3_client, bucket, "a.bin", b"infected")
    ref = s3ops.head_object(s3_client, bucket, "a.bin")
    real_head = s3_client.head_object

    def head_then_replace(**kwargs: Any) -> dict[str, Any]:
        response = real_head(**kwargs)
        put(s3_client, bucket, "a.bin", b"replaced just now")
        return response

    monkeypatch.setattr(s3_client, "head_object", head_then_replace)

    with pytest.raises(PermanentS3Error, match="changed"):
        s3ops.delete_version(s3_client, ref)
    monkeypatch.undo()
    assert s3_client.get_object(Bucket=bucket, Key="a.bin")["Body"].read() == b"replaced just now"


# --- listing -----------------------------------------------------------------------------------------


def test_it_lists_in_pages_that_can_resume_from_a_token(s3_client, make_bucket):
    bucket = make_bucket()
    keys = [f"p/{i:02}" for i in range(7)]
    for key in keys:
        put(s3_client, bucket, key, key.encode())
    put(s3_client, bucket, "other/x", b"x")

    pages = list(s3ops.iter_keys(s3_client, bucket, prefix="p/", page_size=3))

    assert [len(p.refs) for p in pages] == [3, 3, 1]
    assert [r.key for p in pages for r in p.refs] == keys
    assert pages[-1].next_token is None
    assert all(r.size == 4 and r.etag and r.version_id is None for p in pages for r in p.refs)

    resumed = list(s3ops.iter_keys(s3_client, bucket, prefix="p/", token=pages[0].next_token, page_size=3))
    assert [r.key for p in resumed for r in p.refs] == keys[3:]

    after = list(s3ops.iter_keys(s3_client, bucket, prefix="p/", start_after="p/04"))
    assert [r.key for p in after for r in p.refs] == keys[5:]


def test_it_lists_versions_without_delete_markers(s3_client, make_bucket):
    bucket = make_bucket(versioned=True)
    expected = set()
    for key in ("a", "b", "c"):
        for body in (b"1", b"22"):
            expected.add((key, put(s3_client, bucket, key, body)))
    s3_client.delete_object(Bucket=bucket, Key="b")  # adds a delete marker

    pages = list(s3ops.iter_keys(s3_client, bucket, versions=True, page_size=4))
    seen = {(r.key, r.version_id) for p in pages for r in p.refs}

    assert len(pages) >= 2
    assert seen == expected
    assert pages[-1].next_token is None

    resumed = list(s3ops.iter_keys(s3_client, bucket, versions=True, token=pages[0].next_token, page_size=4))
    assert {(r.key, r.version_id) for p in resumed for r in p.refs} == seen - {
        (r.key, r.version_id) for r in pages[0].refs
    }


# --- errors (no server) ------------------------------------------------------------------------------


def client_error(code: str, status: int, message: str = "", operation: str = "GetObject") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (client_error("SlowDown", 503), "transient", "throttling"),
        (client_error("InternalError", 500), "transient", "unavailable"),
        (client_error("503", 503, operation="HeadObject"), "transient", "unavailable"),
        (client_error("ServiceUnavailable", 503), "transient", "unavailable"),
        (client_error("RequestTimeout", 400), "transient", ""),
        (client_error("ThrottlingException", 400), "transient", ""),
        (client_error("ExpiredToken", 400), "transient", ""),
        (client_error("AccessDenied", 403), "permanent", "access denied reading s3://b/k"),
        (client_error("403", 403, operation="HeadObject"), "permanent", "access denied"),
        (client_error("AccessDenied", 403, "not authorized to perform kms:Decrypt"), "permanent", "KMS"),
        (client_error("KMS.DisabledException", 400, "key disabled"), "permanent", "KMS"),
        (client_error("KMS.ThrottlingException", 400), "transient", "KMS"),
        (client_error("NoSuchKey", 404), "permanent", "no longer exists"),
        (client_error("NoSuchVersion", 404), "permanent", "no longer exists"),
        (client_error("404", 404, operation="HeadObject"), "permanent", "no longer exists"),
        (client_error("NoSuchBucket", 404), "permanent", "bucket does not exist"),
        (client_error("PreconditionFailed", 412), "permanent", "changed"),
        (client_error("InvalidObjectState", 403), "permanent", "Glacier"),
        (client_error("InvalidArgument", 400), "permanent", "InvalidArgument"),
        (EndpointConnectionError(endpoint_url="http://x"), "transient", "connection"),
        (ReadTimeoutError(endpoint_url="http://x"), "transient", "connection"),
        (ConnectionClosedError(endpoint_url="http://x"), "transient", "connection"),
        (IncompleteReadError(actual_bytes=1, expected_bytes=2), "transient", "connection"),
    ],
)
def test_it_classifies_errors(exc, kind, words):
    got_kind, message = s3ops.classify_client_error(exc, "s3://b/k")

    assert got_kind == kind
    assert words in message
    converted = s3ops.to_s3_error(exc, "s3://b/k")
    assert isinstance(converted, TransientS3Error if kind == "transient" else PermanentS3Error)


def test_converted_errors_keep_the_s3_code():
    converted = s3ops.to_s3_error(client_error("NoSuchKey", 404))
    assert converted.code == "NoSuchKey"
    assert converted.kind == "permanent"


# --- URLs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
        ("s3://my.bucket-1/some/prefix/", ("my.bucket-1", "some/prefix/")),
        ("s3://bucket/ünï code+%20", ("bucket", "ünï code+%20")),
    ],
)
def test_it_parses_s3_urls(url, expected):
    assert s3ops.parse_s3_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "bucket/key",
        "https://bucket/key",
        "s3://",
        "s3:///key",
        "s3://Bucket/k",
        "s3://a/k",
        "s3://a..b/k",
    ],
)
def test_it_rejects_bad_s3_urls(url):
    with pytest.raises(ValueError):
        s3ops.parse_s3_url(url)


@pytest.mark.parametrize("status", ["Enabled", "Suspended"])
def test_delete_without_a_version_id_is_refused_where_versions_are_kept(s3_client, make_bucket, status):
    # Without a VersionId, DeleteObject there only adds a delete marker: the version stays readable.
    bucket = make_bucket(versioned=True)
    version = put(s3_client, bucket, "a.bin", b"infected")
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})
    unpinned = s3ops.ObjectRef(bucket, "a.bin", None, s3ops.head_object(s3_client, bucket, "a.bin").etag, 8)

    with pytest.raises(PermanentS3Error, match="without its version id") as refused:
        s3ops.delete_version(s3_client, unpinned)
    assert refused.value.code == "VersionRequired"
    with pytest.raises(PermanentS3Error, match="without its version id"):
        s3ops.move_object_verified(s3_client, unpinned, bucket, "moved/a.bin")

    listing = s3_client.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in listing["Versions"]] == [version]
    assert listing.get("DeleteMarkers", []) == []


def test_delete_without_a_version_id_deletes_in_an_unversioned_bucket(s3_client, make_bucket):
    bucket = make_bucket()
    put(s3_client, bucket, "a.bin", b"infected")
    unpinned = s3ops.ObjectRef(bucket, "a.bin", None, s3ops.head_object(s3_client, bucket, "a.bin").etag, 8)
    s3ops.delete_version(s3_client, unpinned)
    assert s3_client.list_object_versions(Bucket=bucket).get("Versions", []) == []


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_open_object_tells_the_version_it_read(s3_client, make_bucket, versioned):
    bucket = make_bucket(versioned=versioned)
    version = put(s3_client, bucket, "a.bin", b"bytes")
    listed = next(s3ops.iter_keys(s3_client, bucket)).refs[0]
    assert listed.version_id is None  # ListObjectsV2 never names a version
    read, chunks = s3ops.open_object(s3_client, listed)
    assert b"".join(chunks) == b"bytes"
    assert read.version_id == version
    assert read.last_modified is not None


# --- calls per object --------------------------------------------------------------------------------


@pytest.fixture
def calls_to(s3_client: Any) -> Any:
    """The S3 operations ``s3_client`` sends from now on, in order."""
    sent: list[str] = []

    def count(model: Any, **kwargs: Any) -> None:
        sent.append(model.name)

    s3_client.meta.events.register("before-call.s3.*", count, unique_id="s3ops-test-calls")
    yield sent
    s3_client.meta.events.unregister("before-call.s3.*", unique_id="s3ops-test-calls")


def _read(client: Any, bucket: str, key: str) -> ObjectRef:
    listed = s3ops.head_object(client, bucket, key)
    read, chunks = s3ops.open_object(client, listed)
    b"".join(chunks)
    return read


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_tagging_right_after_the_read_of_an_untagged_object_is_one_call(
    s3_client, make_bucket, calls_to, versioned
):
    bucket = make_bucket(versioned=versioned)
    put(s3_client, bucket, "a.bin", b"bytes")
    read = _read(s3_client, bucket, "a.bin")
    assert read.tag_count == 0
    calls_to.clear()

    assert s3ops.put_scan_tags(s3_client, read, [("scan-result", "Clean")]) == []

    assert calls_to == ["PutObjectTagging"]
    assert tags_of(s3_client, bucket, "a.bin", read.version_id) == {"scan-result": "Clean"}


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_tagging_right_after_the_read_keeps_the_tags_the_object_had(
    s3_client, make_bucket, calls_to, versioned
):
    bucket = make_bucket(versioned=versioned)
    put(s3_client, bucket, "a.bin", b"bytes", Tagging="owner=me")
    read = _read(s3_client, bucket, "a.bin")
    assert read.tag_count == 1
    calls_to.clear()

    s3ops.put_scan_tags(s3_client, read, [("scan-result", "Clean")])

    assert calls_to == ["GetObjectTagging", "PutObjectTagging"]
    assert tags_of(s3_client, bucket, "a.bin") == {"owner": "me", "scan-result": "Clean"}


def test_a_read_that_is_not_fresh_is_checked_again_before_tagging(s3_client, make_bucket, calls_to):
    # A long scan: by the time of tagging the key holds other bytes; they must not get our verdict.
    import dataclasses
    import time

    bucket = make_bucket()
    put(s3_client, bucket, "a.bin", b"scanned bytes")
    read = _read(s3_client, bucket, "a.bin")
    put(s3_client, bucket, "a.bin", b"other bytes, uploaded during the scan", Tagging="owner=me")
    stale = dataclasses.replace(read, read_at=time.monotonic() - s3ops.READ_FRESH_SECONDS - 1)
    calls_to.clear()

    with pytest.raises(PermanentS3Error) as refused:
        s3ops.put_scan_tags(s3_client, stale, [("scan-result", "Clean")])

    assert refused.value.code in s3ops.CHANGED_CODES
    assert calls_to == ["GetObjectTagging", "HeadObject"]
    assert tags_of(s3_client, bucket, "a.bin") == {"owner": "me"}


def test_versioning_is_asked_once_per_bucket_for_many_deletes(s3_client, make_bucket, calls_to):
    bucket = make_bucket()
    refs = []
    for key in ("a.bin", "b.bin", "c.bin"):
        put(s3_client, bucket, key, b"infected")
        refs.append(s3ops.head_object(s3_client, bucket, key))
    calls_to.clear()

    for ref in refs:
        s3ops.delete_version(s3_client, ref)

    assert calls_to.count("GetBucketVersioning") == 1
    assert calls_to.count("DeleteObject") == 3
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_a_bucket_versioned_since_it_was_asked_loses_no_version_behind_a_marker(s3_client, make_bucket):
    # The cached answer says "unversioned", but versioning was enabled since: the delete's own answer
    # (a delete marker) says so; the marker is taken away again and the delete refused.
    bucket = make_bucket()
    assert s3ops.keeps_versions(s3_client, bucket) is False
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    version = put(s3_client, bucket, "a.bin", b"infected")
    unpinned = s3ops.ObjectRef(bucket, "a.bin", None, s3ops.head_object(s3_client, bucket, "a.bin").etag, 8)

    with pytest.raises(PermanentS3Error, match="without its version id") as refused:
        s3ops.delete_version(s3_client, unpinned)
    assert refused.value.code == "VersionRequired"
    with pytest.raises(PermanentS3Error, match="without its version id"):
        s3ops.move_object_verified(s3_client, unpinned, bucket, "moved/a.bin")

    listing = s3_client.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in listing["Versions"]] == [version]
    assert listing.get("DeleteMarkers", []) == []
    assert s3_client.get_object(Bucket=bucket, Key="a.bin")["Body"].read() == b"infected"


# --- connections -------------------------------------------------------------------------------------


def test_a_scans_calls_hand_their_connection_back_for_the_next_one(s3_endpoint, make_bucket, caplog):
    # moto's server (werkzeug) answers every request with `Connection: close`, so the client reconnects
    # anyway ("Resetting dropped connection"); what this checks is ours: every response is read to its
    # end and its connection returned to the pool, so a keep-alive endpoint (S3) is asked over one
    # connection. A connection kept by an unread body would make urllib3 start a new one instead.
    client = make_client("s3", endpoint_url=s3_endpoint, region="us-east-1")
    bucket = make_bucket()
    refs = []
    for i in range(3):
        put(client, bucket, f"k{i}", os.urandom(300 * 1024))
        refs.append(s3ops.head_object(client, bucket, f"k{i}"))
    stale = ObjectRef(bucket=bucket, key="k0", version_id=None, etag="0" * 32, size=300 * 1024)

    with caplog.at_level("DEBUG", logger="urllib3.connectionpool"):
        for ref in refs:
            read, body = s3ops.open_object(client, ref, chunk_size=64 * 1024)
            assert len(b"".join(body)) == ref.size
            s3ops.put_scan_tags(client, read, OURS)
        with pytest.raises(PermanentS3Error):
            s3ops.open_object(client, stale)  # PreconditionFailed: an error body, read by botocore
        s3ops.put_scan_tags(client, refs[1], OURS)  # not fresh: GetObjectTagging, HeadObject, Put

    started = [r for r in caplog.records if r.getMessage().startswith("Starting new HTTP")]
    assert len(started) <= 1, [r.getMessage() for r in caplog.records]

"""The S3 operations the scanning pipeline needs, with no Django in sight.

Every function takes a boto3 S3 client first; the caller builds it (``linked_accounts.aws.make_client``)
with the endpoint and the assumed-role credentials of the linked account.  Every botocore failure leaves
this module as ``TransientS3Error`` (retry later) or ``PermanentS3Error`` (record an ``Error`` verdict now),
so the caller never has to read botocore error codes.

An ``ObjectRef`` is the pin of a verdict: (bucket, key, version id, ETag, size).  Reads, tags, copies and
deletes all go through the pin, so a verdict is never applied to bytes other than those scanned.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import math
import re
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    CredentialRetrievalError,
    EndpointConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import HTTPError as Urllib3HTTPError

Client = Any  # a botocore S3 client; typed loosely so this module needs no stubs at runtime

MiB = 1024 * 1024
GiB = 1024 * MiB
COPY_OBJECT_LIMIT = 5 * GiB  # the largest object one CopyObject call may copy
MIN_PART_SIZE = 5 * MiB  # S3's smallest part (except the last one)
MAX_PARTS = 10_000

TAG_LIMIT = 10
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256

# Headers that belong to the object and must survive a multipart copy, which (unlike CopyObject with
# MetadataDirective=COPY) starts from nothing.  Head-response name -> CreateMultipartUpload parameter.
_COPIED_HEADERS = (
    "ContentType",
    "ContentEncoding",
    "ContentDisposition",
    "ContentLanguage",
    "CacheControl",
    "Expires",
    "WebsiteRedirectLocation",
)


# --- errors ------------------------------------------------------------------------------------------


class S3Error(Exception):
    """An S3 operation failed; ``kind`` says whether trying again may help."""

    kind: Literal["transient", "permanent"] = "transient"

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code  # the S3 error code when there was one ("AccessDenied", "412", ...)


class TransientS3Error(S3Error):
    """Throttling, 5xx, timeouts, dropped connections: retry with backoff."""

    kind = "transient"


class PermanentS3Error(S3Error):
    """Access denied, KMS, gone, changed, archived: retrying will not help."""

    kind = "permanent"


class ObjectGone(PermanentS3Error):
    """The object (or the version named) is not there: deleted, never written, or a delete marker's key.

    Told by S3's error code (NoSuchKey, NoSuchVersion, a HEAD's 404), never by the message's words."""


class SizeMismatchError(TransientS3Error):
    """Fewer or more bytes arrived than the pinned size; nothing read may be called Clean."""


class CopyVerificationError(PermanentS3Error):
    """The destination of a copy does not match its source; the source must be kept."""


_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestTimeout",
    "RequestTimeoutException",
    "RequestTimeTooSkewed",
    "PriorRequestNotComplete",
    "OperationAborted",
    # An assumed-role session ran out mid-job; the next attempt assumes the role again.
    "ExpiredToken",
    "ExpiredTokenException",
    "TokenRefreshRequired",
}

NOT_FOUND_CODES = {"NoSuchKey", "NoSuchVersion", "404", "NotFound"}
# The pin (IfMatch) no longer matches: the key holds other bytes now.
CHANGED_CODES = {"PreconditionFailed", "412"}
_ACCESS_CODES = {
    "AccessDenied",
    "403",
    "Forbidden",
    "AllAccessDisabled",
    "AccountProblem",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
}

# Raised by botocore/urllib3 when the connection fails or breaks while a body is being read.
_TRANSIENT_EXCEPTIONS: tuple[type[Exception], ...] = (
    HTTPClientError,  # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ...
    EndpointConnectionError,
    ConnectionClosedError,
    ReadTimeoutError,
    ResponseStreamingError,
    IncompleteReadError,
    FlexibleChecksumError,  # the body did not match the checksum S3 sent: a corrupted transfer
    CredentialRetrievalError,
    Urllib3HTTPError,
    http.client.IncompleteRead,
    ConnectionError,
    TimeoutError,
)


def classify_client_error(
    exc: BaseException, target: str = "the object", doing: str = "reading"
) -> tuple[Literal["transient", "permanent"], str]:
    """Say whether a botocore failure is worth retrying, and describe it for a person.

    ``target`` names what was being worked on (``s3://bucket/key``), ``doing`` the verb for the
    message ("reading", "tagging", "copying", "deleting").
    """
    if isinstance(exc, S3Error):
        return exc.kind, exc.message
    if isinstance(exc, ClientError):
        kind, message, _ = _classify_response_error(exc, target, doing)
        return kind, message
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return "permanent", f"no usable AWS credentials for {doing} {target}"
    if isinstance(exc, _TRANSIENT_EXCEPTIONS):
        return "transient", f"connection problem {doing} {target}: {exc}"
    if isinstance(exc, BotoCoreError):
        return "permanent", f"error {doing} {target}: {exc}"
    return "transient", f"unexpected error {doing} {target}: {exc!r}"


def _classify_response_error(
    exc: ClientError, target: str, doing: str
) -> tuple[Literal["transient", "permanent"], str, bool]:
    """The kind, the words, and whether the code says the object is gone."""
    kind, message = _classify_response(exc, target, doing)
    if kind == "gone":
        return "permanent", message, True
    return kind, message, False


def _classify_response(
    exc: ClientError, target: str, doing: str
) -> tuple[Literal["transient", "permanent", "gone"], str]:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    detail = str(error.get("Message", "") or "")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if not status and code.isdigit():
        status = int(code)  # HEAD errors carry no body, only the status as the code

    if code.startswith("KMS.") or (code in _ACCESS_CODES and "kms" in detail.lower()):
        if "Throttl" in code:
            return "transient", f"KMS throttled {doing} {target}"
        return "permanent", f"KMS key unusable {doing} {target} ({code}: {detail})"
    if code in _TRANSIENT_CODES or status in (408, 429) or status >= 500:
        return "transient", f"S3 is unavailable or throttling {doing} {target} ({code or status})"
    if code == "InvalidObjectState":
        return "permanent", f"object is archived (Glacier) and must be restored before {doing} {target}"
    if code in _ACCESS_CODES or status == 403:
        return "permanent", f"access denied {doing} {target}"
    if code == "NoSuchBucket":
        return "permanent", f"bucket does not exist {doing} {target}"
    if code in NOT_FOUND_CODES or status == 404:
        return "gone", f"object no longer exists ({target})"
    if code in ("PreconditionFailed", "412") or status == 412:
        return "permanent", f"object changed since it was pinned ({target})"
    if code == "EntityTooLarge":
        return "permanent", f"object too large {doing} {target}"
    return "permanent", f"S3 error {doing} {target}: {code or status} {detail}".rstrip()


def to_s3_error(exc: BaseException, target: str = "the object", doing: str = "reading") -> S3Error:
    """Turn a botocore failure into ``TransientS3Error`` or ``PermanentS3Error``."""
    if isinstance(exc, S3Error):
        return exc
    kind, message = classify_client_error(exc, target, doing)
    code = ""
    cls: type[S3Error] = TransientS3Error if kind == "transient" else PermanentS3Error
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if _classify_response_error(exc, target, doing)[2]:
            cls = ObjectGone
    return cls(message, code=code)


_TRANSLATED: tuple[type[Exception], ...] = (ClientError, BotoCoreError, *_TRANSIENT_EXCEPTIONS)


@contextmanager
def _translated(target: str, doing: str) -> Iterator[None]:
    """Re-raise botocore failures inside the block as ``TransientS3Error`` / ``PermanentS3Error``."""
    try:
        yield
    except S3Error:
        raise
    except _TRANSLATED as exc:
        raise to_s3_error(exc, target, doing) from exc


# --- the pin -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectRef:
    """One exact object version: what a verdict is about."""

    bucket: str
    key: str
    version_id: str | None
    etag: str  # without the surrounding quotes
    size: int
    last_modified: datetime | None = None
    content_type: str | None = None
    # What an IfMatch GetObject of these bytes said, and when it was sent (time.monotonic()); None when
    # the pin did not come from such a read. Not part of the pin itself.
    tag_count: int | None = field(default=None, compare=False)
    read_at: float | None = field(default=None, compare=False)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def __str__(self) -> str:
        if self.version_id:
            return f"{self.url} (version {self.version_id})"
        return self.url

    @property
    def quoted_etag(self) -> str:
        return f'"{self.etag}"'

    def version_args(self) -> dict[str, str]:
        return {"VersionId": self.version_id} if self.version_id else {}


def _strip_etag(etag: str | None) -> str:
    return (etag or "").strip('"')


def _ref_from_head(bucket: str, key: str, head: dict[str, Any]) -> ObjectRef:
    return ObjectRef(
        bucket=bucket,
        key=key,
        version_id=head.get("VersionId"),
        etag=_strip_etag(head.get("ETag")),
        size=int(head["ContentLength"]),
        last_modified=head.get("LastModified"),
        content_type=head.get("ContentType"),
    )


def head_object(client: Client, bucket: str, key: str, version_id: str | None = None) -> ObjectRef:
    """Pin the current (or the given) version of an object."""
    args: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        args["VersionId"] = version_id
    with _translated(f"s3://{bucket}/{key}", "reading"):
        head = client.head_object(**args)
    return _ref_from_head(bucket, key, head)


def _pinned_args(ref: ObjectRef) -> dict[str, Any]:
    # IfMatch even with a version id: in a bucket whose versioning is suspended the "null" version is
    # overwritten in place, so a version id alone does not pin the bytes.
    return {"Bucket": ref.bucket, "Key": ref.key, "IfMatch": ref.quoted_etag, **ref.version_args()}


# --- reading -----------------------------------------------------------------------------------------


def stream_object(client: Client, ref: ObjectRef, chunk_size: int = MiB) -> Iterator[bytes]:
    """Yield the pinned object's bytes in chunks of at most ``chunk_size``.

    GetObject is sent at once (so access denied, gone and changed surface here, not at the first
    ``next()``); the body is read lazily and closed when the iterator is closed or exhausted.  Wrap the
    result in ``DigestingStream`` and call ``check_size`` before trusting what was read.
    """
    return open_object(client, ref, chunk_size)[1]


def open_object(client: Client, ref: ObjectRef, chunk_size: int = MiB) -> tuple[ObjectRef, Iterator[bytes]]:
    """Like ``stream_object``, and also the pin of what GetObject answered with.

    An event or a listing may name no version (ListObjectsV2 never does; some stores and moto send none
    in events even for versioned buckets): the version id and LastModified of the response say which
    version these bytes are, so whatever is done with the verdict targets exactly that version.
    """
    sent = time.monotonic()
    with _translated(str(ref), "reading"):
        response = client.get_object(**_pinned_args(ref))
    read = ObjectRef(
        bucket=ref.bucket,
        key=ref.key,
        version_id=ref.version_id or response.get("VersionId") or None,
        etag=ref.etag,
        size=ref.size,
        last_modified=response.get("LastModified") or ref.last_modified,
        content_type=response.get("ContentType") or ref.content_type,
        # S3 sends x-amz-tagging-count only when the object has tags.
        tag_count=int(response.get("TagCount") or 0),
        read_at=sent,
    )
    return read, _iter_body(response["Body"], chunk_size, str(ref))


def _iter_body(body: Any, chunk_size: int, target: str) -> Iterator[bytes]:
    try:
        with _translated(target, "reading"):
            yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


class ByteTally:
    """Counts bytes and computes their SHA-256 as they pass (the one counter of scanned bytes)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.bytes_read = 0

    def update(self, chunk: bytes) -> bytes:
        self._hash.update(chunk)
        self.bytes_read += len(chunk)
        return chunk

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class DigestingStream(ByteTally):
    """Pass chunks through while counting bytes and computing their SHA-256."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return self.update(next(self._chunks))

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def check_size(self, ref: ObjectRef) -> None:
        """Raise ``SizeMismatchError`` unless exactly ``ref.size`` bytes went through."""
        if self.bytes_read != ref.size:
            raise SizeMismatchError(
                f"read {self.bytes_read} of {ref.size} bytes of {ref}", code="SizeMismatch"
            )


# --- tags --------------------------------------------------------------------------------------------

_TAG_PUNCTUATION = set("+-=._:/@ ")


def sanitize_tag_text(text: str, limit: int) -> str:
    """Make text acceptable to S3 as a tag key or value and cut it to ``limit`` characters.

    S3 accepts Unicode letters, numbers and spaces and ``+ - = . _ : / @``; anything else (a virus name
    with brackets, a message with a comma or a newline) is replaced with ``_``.
    """
    cleaned = "".join(
        ch if ch in _TAG_PUNCTUATION or unicodedata.category(ch)[0] in "LNZ" else "_" for ch in text
    )
    return cleaned[:limit]


def merge_tags(
    existing: list[dict[str, str]],
    ours: Iterable[tuple[str, str]],
    limit: int = TAG_LIMIT,
    managed_keys: Iterable[str] = (),
) -> tuple[list[dict[str, str]], list[str]]:
    """Combine the object's tags with ours without ever dropping the customer's.

    ``ours`` is in priority order (``scan-result`` first).  ``managed_keys`` lists every key we may
    have written before (all of the policy's tag names), so that a stale ``virus-name`` from an earlier
    scan is removed rather than kept as if it were the customer's.  Returns the tag set to write and
    the keys of ours that did not fit.
    """
    ours_clean: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key, value in ours:
        clean_key = sanitize_tag_text(key, TAG_KEY_MAX)
        if clean_key in seen:
            continue
        seen.add(clean_key)
        ours_clean.append((clean_key, sanitize_tag_text(value, TAG_VALUE_MAX)))

    owned = seen | {sanitize_tag_text(k, TAG_KEY_MAX) for k in managed_keys}
    customer = [tag for tag in existing if tag["Key"] not in owned]
    room = max(limit - len(customer), 0)
    written = [{"Key": k, "Value": v} for k, v in ours_clean[:room]]
    dropped = [k for k, _ in ours_clean[room:]]
    return customer + written, dropped


def get_tags(client: Client, ref: ObjectRef) -> list[dict[str, str]]:
    with _translated(str(ref), "reading tags of"):
        response = client.get_object_tagging(Bucket=ref.bucket, Key=ref.key, **ref.version_args())
    return [{"Key": t["Key"], "Value": t["Value"]} for t in response.get("TagSet", [])]


# How long what an IfMatch GetObject said (the ETag matched, how many tags the object had) stands in
# for asking again right before tagging. S3 has no conditional tagging, so either way a write between
# the last look and PutObjectTagging is not seen; this bounds that window for a small object's scan
# (tens of milliseconds) and asks again after a long one.
READ_FRESH_SECONDS = 1.0


def _fresh_read(ref: ObjectRef) -> bool:
    return ref.read_at is not None and time.monotonic() - ref.read_at <= READ_FRESH_SECONDS


def put_scan_tags(
    client: Client,
    ref: ObjectRef,
    ours: Iterable[tuple[str, str]],
    managed_keys: Iterable[str] = (),
) -> list[str]:
    """Write our tags on the pinned version, keeping the customer's; return the keys that didn't fit.

    PutObjectTagging replaces the whole set and S3 has no conditional form of it: a customer tag
    written between our read and our write is lost.  The window is one round trip, or, right after
    the IfMatch GetObject that read the bytes (``ref.read_at`` within ``READ_FRESH_SECONDS``), the
    time since that read: then the object's tags are read only when GetObject counted some.

    Without a real version id (an unversioned or suspended bucket) the key may hold other bytes by now:
    a conditional HEAD right before the write refuses to tag them (``PermanentS3Error`` with code
    ``PreconditionFailed``), so a verdict never lands on bytes it was not about; a fresh IfMatch read
    stands in for that HEAD.  S3 has no conditional tagging, so the window since the last check remains.
    """
    fresh = _fresh_read(ref)
    existing = [] if fresh and ref.tag_count == 0 else get_tags(client, ref)
    tagset, dropped = merge_tags(existing, ours, managed_keys=managed_keys)
    if (not ref.version_id or ref.version_id == "null") and not fresh:
        with _translated(str(ref), "checking before tagging"):
            client.head_object(**_pinned_args(ref))
    with _translated(str(ref), "tagging"):
        client.put_object_tagging(
            Bucket=ref.bucket, Key=ref.key, Tagging={"TagSet": tagset}, **ref.version_args()
        )
    return dropped


# --- copy, move, delete ------------------------------------------------------------------------------


def copy_object_verified(
    client: Client,
    ref: ObjectRef,
    dest_bucket: str,
    dest_key: str,
    dest_client: Client | None = None,
    extra_tags: Iterable[tuple[str, str]] | None = None,
    multipart_threshold: int = COPY_OBJECT_LIMIT,
    part_size: int = 512 * MiB,
) -> ObjectRef:
    """Copy the pinned version with its metadata, content type and tags, then check the copy.

    Objects up to ``multipart_threshold`` (at most 5 GB) are copied with one CopyObject; larger ones
    with UploadPartCopy, sending the metadata, headers and tags the source had, since a multipart
    upload starts empty.  Every request names the source version and its ETag (CopySourceIfMatch), so a
    replaced source fails with "object changed" instead of copying other bytes.

    The copy is done by ``dest_client`` (the destination account's principal; it needs read access to
    the source); ``client`` reads the source's metadata and tags.  ``extra_tags`` replace tags of the
    same key (e.g. ``scan-result``) and are subject to the 10-tag limit like ``merge_tags``.

    Verified after the copy, by a HEAD of the destination version:
    - the size equals the source's;
    - for a single CopyObject of a source whose ETag is a plain MD5 (no ``-N`` multipart suffix, not
      SSE-KMS / SSE-C), the ETag equals the source's;
    - when both sides report a full-object checksum of the same algorithm (S3 adds CRC64NVME to new
      objects), the checksums are equal; multipart ETags are not compared, since our part boundaries
      differ from the source's;
    - the content type, user metadata and tag set equal what was sent.
    Anything else raises ``CopyVerificationError`` and the destination is left for inspection.
    """
    dest = dest_client or client
    target = f"{ref} to s3://{dest_bucket}/{dest_key}"
    with _translated(str(ref), "reading"):
        source = client.head_object(ChecksumMode="ENABLED", **_pinned_args(ref))
    tags = get_tags(client, ref)
    if extra_tags:
        tags, _ = merge_tags(tags, extra_tags)
    tagging = urlencode([(t["Key"], t["Value"]) for t in tags])
    copy_source: dict[str, str] = {"Bucket": ref.bucket, "Key": ref.key, **ref.version_args()}

    multipart = ref.size > min(multipart_threshold, COPY_OBJECT_LIMIT)
    with _translated(target, "copying"):
        if multipart:
            dest_version = _multipart_copy(
                dest, ref, copy_source, source, dest_bucket, dest_key, tagging, part_size
            )
        else:
            response = dest.copy_object(
                Bucket=dest_bucket,
                Key=dest_key,
                CopySource=copy_source,
                CopySourceIfMatch=ref.quoted_etag,
                MetadataDirective="COPY",
                TaggingDirective="REPLACE",
                Tagging=tagging,
            )
            dest_version = response.get("VersionId")

    copied = _verify_copy(dest, ref, source, tags, dest_bucket, dest_key, dest_version, multipart)
    return copied


def _multipart_copy(
    dest: Client,
    ref: ObjectRef,
    copy_source: dict[str, str],
    source: dict[str, Any],
    dest_bucket: str,
    dest_key: str,
    tagging: str,
    part_size: int,
) -> str | None:
    part_size = max(part_size, MIN_PART_SIZE, math.ceil(ref.size / MAX_PARTS))
    create_args: dict[str, Any] = {name: source[name] for name in _COPIED_HEADERS if source.get(name)}
    upload = dest.create_multipart_upload(
        Bucket=dest_bucket, Key=dest_key, Metadata=source.get("Metadata", {}), Tagging=tagging, **create_args
    )
    upload_id = upload["UploadId"]
    try:
        parts = []
        for number, start in enumerate(range(0, ref.size, part_size), start=1):
            end = min(start + part_size, ref.size) - 1
            response = dest.upload_part_copy(
                Bucket=dest_bucket,
                Key=dest_key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=copy_source,
                CopySourceIfMatch=ref.quoted_etag,
                CopySourceRange=f"bytes={start}-{end}",
            )
            parts.append({"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]})
        done = dest.complete_multipart_upload(
            Bucket=dest_bucket, Key=dest_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        # An abandoned upload keeps its parts (and their cost) until aborted.
        try:
            dest.abort_multipart_upload(Bucket=dest_bucket, Key=dest_key, UploadId=upload_id)
        except (ClientError, BotoCoreError):
            pass
        raise
    return done.get("VersionId")


def _full_object_checksum(head: dict[str, Any]) -> tuple[str, str] | None:
    if head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return None
    for name in ("ChecksumCRC64NVME", "ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256"):
        if head.get(name):
            return name, head[name]
    return None


def _plain_md5_etag(head: dict[str, Any]) -> bool:
    encrypted = head.get("ServerSideEncryption") in ("aws:kms", "aws:kms:dsse") or head.get(
        "SSECustomerAlgorithm"
    )
    return "-" not in _strip_etag(head.get("ETag")) and not encrypted


def _verify_copy(
    dest: Client,
    ref: ObjectRef,
    source: dict[str, Any],
    tags: list[dict[str, str]],
    dest_bucket: str,
    dest_key: str,
    dest_version: str | None,
    multipart: bool,
) -> ObjectRef:
    target = f"s3://{dest_bucket}/{dest_key}"
    args: dict[str, Any] = {"Bucket": dest_bucket, "Key": dest_key}
    # "null" (an unversioned or suspended destination) names whatever is current; moto also refuses
    # it on HEAD, so read the current object, which we have just written.
    if dest_version and dest_version != "null":
        args["VersionId"] = dest_version
    with _translated(target, "verifying the copy at"):
        head = dest.head_object(ChecksumMode="ENABLED", **args)
        dest_tags = dest.get_object_tagging(**args).get("TagSet", [])
    copied = _ref_from_head(dest_bucket, dest_key, head)

    problems = []
    if copied.size != ref.size:
        problems.append(f"size {copied.size} != {ref.size}")
    if not multipart and _plain_md5_etag(source) and _plain_md5_etag(head) and copied.etag != ref.etag:
        problems.append(f"ETag {copied.etag} != {ref.etag}")
    source_sum, dest_sum = _full_object_checksum(source), _full_object_checksum(head)
    if source_sum and dest_sum and source_sum[0] == dest_sum[0] and source_sum != dest_sum:
        problems.append(f"{source_sum[0]} {dest_sum[1]} != {source_sum[1]}")
    if head.get("ContentType") != source.get("ContentType"):
        problems.append(f"content type {head.get('ContentType')!r} != {source.get('ContentType')!r}")
    if head.get("Metadata", {}) != source.get("Metadata", {}):
        problems.append("user metadata differs")
    if _tag_dict(dest_tags) != _tag_dict(tags):
        problems.append("tags differ")
    if problems:
        raise CopyVerificationError(
            f"copy of {ref} to {target} does not match: {'; '.join(problems)}", code="CopyMismatch"
        )
    return copied


def _tag_dict(tags: Iterable[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags}


# GetBucketVersioning's answers, per endpoint and bucket, for VERSIONING_TTL seconds: asked once per
# bucket rather than per move or delete. A bucket versioned since it was asked is caught at the delete
# itself (``delete_version`` sees the delete marker, removes it and refuses), so a stale answer never
# leaves an unpinned version behind a marker.
VERSIONING_TTL = 60.0
_versioning: dict[tuple[str, str], tuple[float, bool]] = {}
_versioning_lock = threading.Lock()


def _versioning_key(client: Client, bucket: str) -> tuple[str, str]:
    return (str(getattr(client.meta, "endpoint_url", "")), bucket)


def forget_versioning(client: Client, bucket: str) -> None:
    with _versioning_lock:
        _versioning.pop(_versioning_key(client, bucket), None)


def keeps_versions(client: Client, bucket: str) -> bool:
    """Whether versioning is (or was, and is now suspended) on for ``bucket``, as S3 said at most
    ``VERSIONING_TTL`` seconds ago."""
    cache_key = _versioning_key(client, bucket)
    with _versioning_lock:
        cached = _versioning.get(cache_key)
    if cached is not None and time.monotonic() - cached[0] < VERSIONING_TTL:
        return cached[1]
    with _translated(f"s3://{bucket}", "reading the versioning of"):
        status = client.get_bucket_versioning(Bucket=bucket).get("Status", "")
    keeps = status in ("Enabled", "Suspended")
    with _versioning_lock:
        _versioning[cache_key] = (time.monotonic(), keeps)
    return keeps


def check_deletable(client: Client, ref: ObjectRef) -> None:
    """Refuse (``PermanentS3Error``, code ``VersionRequired``) a pin with no version id in a bucket that
    keeps versions: a DeleteObject without a VersionId there only adds a delete marker, and the version
    it was meant to remove stays readable by its id."""
    if ref.version_id or not keeps_versions(client, ref.bucket):
        return
    raise _version_required(ref)


def _version_required(ref: ObjectRef) -> PermanentS3Error:
    return PermanentS3Error(
        f"refusing to delete {ref} without its version id: the bucket keeps versions, so a delete would "
        "only hide the object behind a delete marker; scan the version again to pin it",
        code="VersionRequired",
    )


def delete_version(client: Client, ref: ObjectRef) -> None:
    """Delete the pinned version itself, never just hide it.

    With a version id the version is removed for good (no delete marker is added, and deleting it
    twice succeeds, so a retried actor is safe).  Without one the delete is refused unless the bucket is
    unversioned (``check_deletable``); there a delete cannot be undone: the key is deleted only if its
    ETag still matches the pin.  The HEAD leaves a one-round-trip window, so the DELETE carries If-Match
    as well, which S3 honours where it supports conditional deletes.  A delete that made a delete marker
    after all (the bucket was versioned after its versioning was last asked) takes the marker away again
    and is refused.
    """
    target = str(ref)
    with _translated(target, "deleting"):
        if ref.version_id and ref.version_id != "null":
            client.delete_object(Bucket=ref.bucket, Key=ref.key, VersionId=ref.version_id)
            return
        client.head_object(**_pinned_args(ref))
    check_deletable(client, ref)
    with _translated(target, "deleting"):
        response = client.delete_object(**_pinned_args(ref))
    if response.get("DeleteMarker"):
        forget_versioning(client, ref.bucket)
        marker = response.get("VersionId")
        if marker and marker != "null":
            with _translated(target, "removing the delete marker just added to"):
                client.delete_object(Bucket=ref.bucket, Key=ref.key, VersionId=marker)
        raise _version_required(ref)


def move_object_verified(
    client: Client,
    ref: ObjectRef,
    dest_bucket: str,
    dest_key: str,
    dest_client: Client | None = None,
    extra_tags: Iterable[tuple[str, str]] | None = None,
    multipart_threshold: int = COPY_OBJECT_LIMIT,
    part_size: int = 512 * MiB,
) -> ObjectRef:
    """Copy, verify, and only then delete the source version; return the copy's pin.

    A source that could not be deleted for good (no version id in a bucket that keeps versions) is
    refused before anything is copied."""
    check_deletable(client, ref)
    copied = copy_object_verified(
        client,
        ref,
        dest_bucket,
        dest_key,
        dest_client=dest_client,
        extra_tags=extra_tags,
        multipart_threshold=multipart_threshold,
        part_size=part_size,
    )
    delete_version(client, ref)
    return copied


def put_object(
    client: Client,
    bucket: str,
    key: str,
    body: Any,
    *,
    size: int,
    md5: bytes,
    tags: Iterable[tuple[str, str]] = (),
) -> ObjectRef:
    """Write ``size`` bytes of ``body`` (a file) that were scanned; return the pin of what was written.

    ``md5`` is the digest of the bytes scanned: S3 refuses the write (BadDigest) if the bytes arriving
    differ. ``tags`` are written with the object, in the same request.
    """
    with _translated(f"s3://{bucket}/{key}", "writing"):
        response = client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentLength=size,
            ContentMD5=base64.b64encode(md5).decode(),
            Tagging=urlencode(list(tags)),
        )
    return ObjectRef(bucket, key, response.get("VersionId") or None, _strip_etag(response.get("ETag")), size)


# --- listing -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListingPage:
    refs: list[ObjectRef]
    next_token: str | None  # pass back as ``token`` to continue after this page; None at the end


def iter_keys(
    client: Client,
    bucket: str,
    prefix: str = "",
    versions: bool = False,
    token: str | None = None,
    start_after: str | None = None,
    page_size: int = 1000,
) -> Iterator[ListingPage]:
    """Yield pages of objects under ``prefix`` so a caller can checkpoint ``next_token`` after each.

    With ``versions`` every version is listed (delete markers are skipped; a current "null" version
    comes without a version id, as ListObjectsV2 gives it); the token is then an
    opaque JSON pair of key and version-id markers.  ``start_after`` applies to the first page when
    there is no token.
    """
    target = f"s3://{bucket}/{prefix}"
    while True:
        with _translated(target, "listing"):
            if versions:
                page = _list_versions_page(client, bucket, prefix, token, start_after, page_size)
            else:
                page = _list_objects_page(client, bucket, prefix, token, start_after, page_size)
        yield page
        if page.next_token is None:
            return
        token = page.next_token


def _list_objects_page(
    client: Client, bucket: str, prefix: str, token: str | None, start_after: str | None, page_size: int
) -> ListingPage:
    args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
    if token:
        args["ContinuationToken"] = token
    elif start_after:
        args["StartAfter"] = start_after
    response = client.list_objects_v2(**args)
    refs = [
        ObjectRef(
            bucket=bucket,
            key=item["Key"],
            version_id=None,
            etag=_strip_etag(item.get("ETag")),
            size=int(item["Size"]),
            last_modified=item.get("LastModified"),
        )
        for item in response.get("Contents", [])
    ]
    next_token = response.get("NextContinuationToken") if response.get("IsTruncated") else None
    return ListingPage(refs, next_token)


def _listed_version(item: dict[str, Any]) -> str | None:
    # The current "null" version (every object of an unversioned bucket) is named by its ETag alone:
    # reads pinned with IfMatch reach it, and GetObject says which version it is. Some stores (moto)
    # refuse HeadObject with VersionId=null. A "null" version that is not the latest keeps its name.
    version = item.get("VersionId")
    if version == "null" and item.get("IsLatest"):
        return None
    return str(version) if version else None


def _list_versions_page(
    client: Client, bucket: str, prefix: str, token: str | None, start_after: str | None, page_size: int
) -> ListingPage:
    args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
    if token:
        key_marker, version_marker = json.loads(token)
        args["KeyMarker"] = key_marker
        if version_marker:
            args["VersionIdMarker"] = version_marker
    elif start_after:
        args["KeyMarker"] = start_after
    response = client.list_object_versions(**args)
    refs = [
        ObjectRef(
            bucket=bucket,
            key=item["Key"],
            version_id=_listed_version(item),
            etag=_strip_etag(item.get("ETag")),
            size=int(item["Size"]),
            last_modified=item.get("LastModified"),
        )
        for item in response.get("Versions", [])
    ]
    next_token = None
    if response.get("IsTruncated"):
        next_token = json.dumps([response.get("NextKeyMarker", ""), response.get("NextVersionIdMarker")])
    return ListingPage(refs, next_token)


# --- addresses ---------------------------------------------------------------------------

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``; ValueError otherwise."""
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise ValueError(f"not a valid bucket name in {url!r}")
    return bucket, prefix

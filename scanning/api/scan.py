"""The scan API: ``POST /api/v1/scan`` (a verdict for an upload) and ``POST /api/v1/scan/existing``.

An upload is streamed to clamd as it arrives and never held in memory: a raw body is read from the
request stream in 64 KiB chunks; a multipart body is read the same way through a streaming parser that
accepts exactly one part and passes its bytes on (``MultipartUpload``). Past the size limit the request is
answered 413 without reading the rest. Only when the caller asks to store a clean upload is it also
spooled to a temporary file on disk, to be written to the bucket after the verdict.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from collections.abc import Iterator
from typing import IO, Any

import multipart
from django.conf import settings
from django.http import HttpRequest
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.parsers import BaseParser, DataAndFiles
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role, Tenant, role_at_least
from accounts.services import Actor, record
from linked_accounts import aws
from s3av.api.viewsets import request_tenant
from scanning.engine import clamd as engine
from scanning.jobs import services as jobs
from scanning.models import Bucket, JobTrigger, ScanJob, ScanResult, Trigger, UsageMonth, Verdict
from scanning.pipeline import scanner, services, uploads
from scanning.s3 import ops as s3ops

CHUNK = 64 * 1024


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


class LengthRequired(APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = "Send the upload with a Content-Length (chunked bodies are not accepted)."
    default_code = "length_required"


class MonthlyLimitReached(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "This tenant's monthly scan volume (monthly_scan_bytes_limit) is used up."
    default_code = "monthly_limit"


class EngineBusy(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The scanning engine is unavailable; try again shortly."
    default_code = "engine_unavailable"


def upload_limit(tenant: Tenant) -> int:
    """The tenant's limit when set, never above the deployment's."""
    limit = int(settings.SCAN_API_MAX_BYTES)
    if tenant.max_scan_bytes:
        limit = min(limit, int(tenant.max_scan_bytes))
    return limit


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The upload is larger than this tenant's scan API limit of {limit} bytes. "
        "Store the object in a protected bucket and scan it there instead."
    )


class UploadScan:
    """Counts, hashes and optionally spools the bytes of one upload on their way to clamd."""

    def __init__(self, limit: int, spool: bool) -> None:
        self.limit = limit
        self.tally = s3ops.ByteTally()
        self.md5 = hashlib.md5(usedforsecurity=False)  # for S3's Content-MD5 integrity check only
        self.spool: IO[bytes] | None = tempfile.TemporaryFile() if spool else None  # noqa: SIM115
        self.reply: engine.EngineReply | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self.tally.bytes_read + len(chunk) > self.limit:
            raise _too_large(self.limit)
        self.tally.update(chunk)
        if self.spool is not None:
            self.md5.update(chunk)
            self.spool.write(chunk)
        return chunk

    @property
    def size(self) -> int:
        return self.tally.bytes_read

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()


class MultipartUpload:
    """The one part of a ``multipart/form-data`` body, read from the request and yielded for clamd.

    Fail closed: every byte of the body is either framing that was checked or the part's content, which
    goes to clamd. Django's own parser silently skips parts without a name and files whose name sanitises
    to nothing, so a verdict from it could leave a part unscanned; here a body with a second part, anything
    before the first boundary or after the closing one (beyond a CRLF), a transfer encoding, or framing
    that does not parse is refused with a 400 (``MultipartRefused``).
    """

    # Headers are a few hundred bytes; the parser stops at 8 lines of about 4 KiB each.
    MAX_HEAD = 64 * 1024
    IDENTITY_ENCODINGS = {"7bit", "8bit", "binary"}

    def __init__(self, boundary: str) -> None:
        self.boundary = boundary.encode("latin-1")
        self.parser = multipart.PushMultipartParser(self.boundary)
        self.head = b""  # the body up to the end of the part's headers, for the accounting at the end
        self.head_length: int | None = None
        self.tail = b""  # the body's last two bytes
        self.received = 0
        self.payload = 0
        self.parts = 0

    @classmethod
    def from_request(cls, request: HttpRequest) -> MultipartUpload:
        media_type, options = multipart.parse_options_header(request.META.get("CONTENT_TYPE", ""))
        boundary = options.get("boundary", "")
        if media_type != "multipart/form-data" or not boundary:
            raise MultipartRefused(
                "Send the file as the raw body, or as multipart/form-data with a boundary and one part."
            )
        try:
            return cls(boundary)
        except (multipart.MultipartError, UnicodeEncodeError) as exc:
            raise MultipartRefused(f"The multipart boundary is not valid ({exc}).") from exc

    def chunks(self, request: HttpRequest, scan: UploadScan) -> Iterator[bytes]:
        try:
            while chunk := _read(request):
                self._account(chunk)
                for event in self.parser.parse(chunk):
                    if isinstance(event, multipart.MultipartSegment):
                        self._check_part(event)
                    elif event:
                        self.payload += len(event)
                        yield scan.feed(bytes(event))
            self.parser.close()
        except multipart.MultipartError as exc:
            message = f"The multipart body does not parse ({exc}); nothing was scanned."
            raise MultipartRefused(message) from exc
        self._check_nothing_else()

    def _account(self, chunk: bytes) -> None:
        self.received += len(chunk)
        self.tail = (self.tail + chunk)[-2:]
        if self.head_length is not None:
            return
        self.head += chunk
        opening = b"--" + self.boundary
        if not self.head.startswith(opening[: len(self.head)]):
            raise MultipartRefused("The multipart body must start with its boundary (no preamble).")
        end = self.head.find(b"\r\n\r\n", len(opening))
        if end >= 0:
            self.head_length = end + 4
            self.head = b""
        elif len(self.head) > self.MAX_HEAD:
            raise MultipartRefused("The multipart part's headers are too long.")

    def _check_part(self, part: multipart.MultipartSegment) -> None:
        self.parts += 1
        if self.parts > 1:
            raise MultipartRefused(
                "Send the file as the body, or as exactly one multipart part: "
                "a verdict must cover everything that was sent."
            )
        for name, value in part.headerlist:
            if name == "Content-Transfer-Encoding" and value.strip().lower() not in self.IDENTITY_ENCODINGS:
                raise MultipartRefused(
                    f"Content-Transfer-Encoding {value!r} is not accepted: send raw bytes."
                )

    def _check_nothing_else(self) -> None:
        if self.parts != 1 or self.head_length is None:
            raise MultipartRefused("The multipart body holds no file: send exactly one part.")
        # The body is the opening boundary and headers, the content, the closing delimiter and at most a
        # CRLF. Anything more is an epilogue the parser skipped: refused, since nobody scanned it.
        framed = self.head_length + self.payload + len(b"\r\n--" + self.boundary + b"--")
        if not (self.received == framed or (self.received == framed + 2 and self.tail == b"\r\n")):
            raise MultipartRefused(
                "The multipart body has data after its closing boundary: send one part and nothing else."
            )


class MultipartRefused(ValidationError):
    def __init__(self, message: str) -> None:
        super().__init__({"file": [message]})


class UnparsedBody(BaseParser):
    """The upload view reads the body itself, streaming it to clamd: DRF must never parse (and consume)
    it, not even for a session's CSRF check, which reads ``request.POST``."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> DataAndFiles:
        return DataAndFiles({}, {})


def _read(request: HttpRequest) -> bytes:
    try:
        return request.read(CHUNK)
    except OSError as exc:
        # The client went away mid-body (Django's UnreadablePostError is an OSError). Raised as a 400,
        # not as an OSError, which the clamd client would take for its own and answer "engine unavailable".
        raise ValidationError(
            {"file": ["The upload ended before the body did; nothing was scanned."]}
        ) from exc


def _raw_chunks(request: HttpRequest, scan: UploadScan) -> Iterator[bytes]:
    while True:
        chunk = _read(request)
        if not chunk:
            return
        yield scan.feed(chunk)


def _is_multipart(request: HttpRequest) -> bool:
    return (request.content_type or "").startswith("multipart/")


ScanVerdictSerializer = inline_serializer(
    "ScanVerdict",
    {
        "verdict": serializers.ChoiceField(choices=[v.value for v in Verdict]),
        "signatures": serializers.ListField(child=serializers.CharField()),
        "message": serializers.CharField(),
        "sha256": serializers.CharField(),
        "size": serializers.IntegerField(),
        "engine": serializers.CharField(),
        "signature_version": serializers.CharField(),
        "stored": serializers.DictField(
            required=False, help_text="bucket, key, version_id of the stored copy"
        ),
        "result": serializers.UUIDField(
            required=False, help_text="the scan result (stored or existing object)"
        ),
    },
)


class ScanUploadView(APIView):
    """POST a file (raw body, or multipart with one part); get the verdict back."""

    write_role = Role.OPERATOR
    parser_classes = [UnparsedBody]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        django_request = request._request
        tenant = getattr(django_request, "tenant", None)
        if tenant is not None and role_at_least(getattr(django_request, "role", None), Role.OPERATOR):
            # Before authentication, so a refused upload is answered before anything reads its body.
            params = django_request.GET
            self.scan = UploadScan(upload_limit(tenant), spool=bool(params.get("bucket")))
            length = django_request.META.get("CONTENT_LENGTH") or ""
            if not (length.isascii() and length.isdigit()) or "HTTP_TRANSFER_ENCODING" in django_request.META:
                # Django reads no more than Content-Length: without one (chunked) it would read nothing
                # and the empty body would come back Clean for bytes never scanned. `Content-Length: 0`
                # is a real, empty object, and is scanned like any other.
                self.scan.close()
                raise LengthRequired()
            if int(length) > self.scan.limit + (64 * 1024 if _is_multipart(django_request) else 0):
                self.scan.close()
                raise _too_large(self.scan.limit)
            monthly = tenant.monthly_scan_bytes_limit
            if monthly is not None and UsageMonth.bytes_this_month(tenant) + int(length) > monthly:
                # The scan API is the one path a tenant's limit stops: uploads are optional work, while
                # event and bucket scans of the tenant's own objects go on (they fail closed otherwise).
                self.scan.close()
                raise MonthlyLimitReached()
        super().initial(request, *args, **kwargs)

    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY, "multipart/form-data": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter(
                "bucket", OpenApiTypes.UUID, description="store a clean upload in this protected bucket"
            ),
            OpenApiParameter("key", OpenApiTypes.STR, description="the key to store it under"),
        ],
        responses={200: ScanVerdictSerializer, 411: None, 413: None},
    )
    def post(self, request: Request) -> Response:
        tenant = request_tenant(request)
        django_request = request._request
        scan: UploadScan = self.scan
        try:
            target = _store_target(tenant, django_request.GET)
            engine_name, signature_version = services.engine_identity().get()
            upload = MultipartUpload.from_request(django_request) if _is_multipart(django_request) else None
            if upload is None:
                scan.reply = services.clamd_client().scan_stream(_raw_chunks(django_request, scan))
            else:
                scan.reply = services.clamd_client().scan_stream(upload.chunks(django_request, scan))
            received = scan.size if upload is None else upload.received
            declared = int(django_request.META.get("CONTENT_LENGTH") or 0)
            if received != declared:
                # The client sent fewer bytes than it announced: the verdict would be about a
                # different (truncated) object.
                raise ValidationError(
                    {"file": [f"The body ended after {received} of {declared} bytes; nothing was scanned."]}
                )
            reply = scan.reply
            if reply is None:
                raise EngineBusy()
            verdict = scanner.verdict_of(reply)
            UsageMonth.add(tenant, objects=1, size=scan.size)
            body: dict[str, Any] = {
                "verdict": verdict,
                "signatures": list(reply.signatures),
                "message": f"the engine could not inspect it fully: {reply.reason}"
                if verdict == Verdict.UNSCANNABLE
                else "",
                "sha256": scan.tally.sha256,
                "size": scan.size,
                "engine": engine_name,
                "signature_version": signature_version,
            }
            if target is not None and verdict == Verdict.CLEAN:
                result = _store(tenant, Actor.from_request(django_request), target, scan, body)
                body["stored"] = {
                    "bucket": str(target[0].pk),
                    "key": target[1],
                    "version_id": result.version_id,
                }
                body["result"] = str(result.pk)
            elif target is not None:
                body["message"] = (
                    body["message"] + "; " if body["message"] else ""
                ) + "not stored: not Clean"
        except engine.EngineUnavailable as exc:
            raise EngineBusy() from exc
        finally:
            scan.close()
        return Response(body)


def _store(
    tenant: Tenant, actor: Actor, target: tuple[Bucket, str], scan: UploadScan, verdict: dict[str, Any]
) -> ScanResult:
    assert scan.spool is not None
    bucket, key = target
    return uploads.store_clean_upload(
        tenant,
        actor,
        bucket,
        key,
        scan.spool,
        size=scan.size,
        md5=scan.md5.digest(),
        sha256=verdict["sha256"],
        engine=verdict["engine"],
        signature_version=verdict["signature_version"],
    )


def _store_target(tenant: Tenant, params: Any) -> tuple[Bucket, str] | None:
    bucket_id, key = params.get("bucket"), params.get("key")
    if not bucket_id:
        return None
    try:
        uuid.UUID(bucket_id)
    except ValueError:
        raise ValidationError({"bucket": ["Not a bucket id."]}) from None
    bucket = Bucket.objects.select_related("account").filter(tenant=tenant, pk=bucket_id).first()
    if bucket is None:
        raise ValidationError({"bucket": ["No such bucket."]})
    if not bucket.protected:
        raise ValidationError({"bucket": ["Clean uploads are stored only in a protected bucket."]})
    if not key or len(key.encode()) > 1024 or "\x00" in key:
        raise ValidationError({"key": ["Name the key to store the upload under (at most 1024 bytes)."]})
    return bucket, key


class ScanExistingSerializer(serializers.Serializer):
    bucket = serializers.UUIDField()
    key = serializers.CharField(max_length=1024, trim_whitespace=False)
    version_id = serializers.CharField(max_length=1024, required=False, allow_blank=True, default="")


# "async" is a Python keyword: declare it by name.
ScanExistingSerializer._declared_fields["async"] = serializers.BooleanField(
    required=False, default=False, help_text="Queue the scan and answer 202 with a job to poll."
)


def _result_body(result: ScanResult) -> dict[str, Any]:
    return {
        "verdict": result.verdict,
        "signatures": result.signatures,
        "message": result.message,
        "sha256": result.sha256,
        "size": result.size,
        "engine": result.engine,
        "signature_version": result.signature_version,
        "result": str(result.pk),
        "action": result.action,
    }


def _require_object(bucket: Bucket, key: str, version_id: str) -> None:
    """404 when there is no such object (or version): a scan of nothing is not an Error verdict."""
    s3 = services.bucket_client(bucket, field="bucket")
    try:
        s3ops.head_object(s3, bucket.name, key, version_id or None)
    except s3ops.PermanentS3Error as exc:
        # 405: the version named is a delete marker, not an object.
        if isinstance(exc, s3ops.ObjectGone) or exc.code in {"405", "MethodNotAllowed"}:
            where = f"s3://{bucket.name}/{key}" + (f" (version {version_id})" if version_id else "")
            raise NotFound(f"There is no object at {where}; nothing was scanned.") from exc
        # Anything else (access denied, KMS) is the scan's own Error verdict, recorded as such.


class ScanExistingView(APIView):
    """Scan an object already stored in one of the tenant's buckets, now (or queued, with ``async``)."""

    write_role = Role.OPERATOR

    @extend_schema(
        request=ScanExistingSerializer,
        responses={
            200: ScanVerdictSerializer,
            202: inline_serializer("ScanQueued", {"job": serializers.UUIDField()}),
        },
    )
    def post(self, request: Request) -> Response:
        tenant = request_tenant(request)
        incoming = ScanExistingSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        bucket = (
            Bucket.objects.select_related("account", "policy")
            .filter(tenant=tenant, pk=data["bucket"])
            .first()
        )
        if bucket is None:
            raise ValidationError({"bucket": ["No such bucket."]})
        actor = Actor.from_request(request._request)
        if data["async"]:
            running = (
                ScanJob.objects.running()
                .for_target(bucket, "", data["key"])
                .filter(version_id=data["version_id"])
                .first()
            )
            job = running or jobs.start_bucket_scan(
                tenant, actor, bucket, "", JobTrigger.API, key=data["key"], version_id=data["version_id"]
            )
            return Response(
                {"job": str(job.pk), "status": job.status, "poll": f"/api/v1/jobs/{job.pk}"},
                status=status.HTTP_202_ACCEPTED,
            )
        if not bucket.effective_policy().wants(data["key"]):
            raise ValidationError({"key": ["The bucket's policy excludes this key."]})
        try:
            _require_object(bucket, data["key"], data["version_id"])
            asked = {"key": data["key"], "version_id": data["version_id"]}
            record(tenant, actor, "scan.request", bucket, asked)
            result = services.run_scan(
                tenant,
                bucket,
                data["key"],
                version_id=data["version_id"] or None,
                etag=None,
                trigger=Trigger.API,
                dedupe_key=uuid.uuid4().hex,
            )
        except (s3ops.TransientS3Error, engine.EngineUnavailable, services.ScanInProgress) as exc:
            raise EngineBusy(f"The object could not be scanned now ({exc}); try again shortly.") from exc
        except aws.AssumeRoleFailed as exc:
            raise ValidationError({"bucket": [exc.message]}) from exc
        assert result is not None
        return Response(_result_body(result))

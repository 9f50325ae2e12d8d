"""POST /api/v1/scan and /api/v1/scan/existing against the real clamd and moto's S3 server."""

from __future__ import annotations

import base64
import hashlib
import tracemalloc

import pytest
from django_scopes import scope

from accounts.models import Role
from scanning.models import Bucket, JobStatus, ScanJob, ScanResult, UsageMonth
from scanning.pipeline import services
from tests.fixtures.broker import drain
from tests.fixtures.scanning import EICAR, next_second

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("aws_settings", "empty_broker")]

MiB = 1024 * 1024
BOUNDARY = "s3avboundary7MA4YWxkTrZu0gW"


class LazyBody:
    """A request body made up as it is read: prefix, ``size`` filler bytes, suffix. Never in memory."""

    def __init__(self, size: int, prefix: bytes = b"", suffix: bytes = b"") -> None:
        self.prefix, self.suffix, self.size = prefix, suffix, size
        self.total = len(prefix) + size + len(suffix)
        self.position = 0
        self.filler = hashlib.sha256(b"filler").hexdigest().encode() * 2048  # 128 KiB, no boundary inside

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.total - self.position
        size = min(size, self.total - self.position, 256 * 1024)
        out = bytearray()
        while len(out) < size:
            pos = self.position
            if pos < len(self.prefix):
                piece = self.prefix[pos : pos + size - len(out)]
            elif pos < len(self.prefix) + self.size:
                offset = (pos - len(self.prefix)) % len(self.filler)
                left = len(self.prefix) + self.size - pos
                piece = self.filler[offset : offset + min(size - len(out), left)]
            else:
                start = pos - len(self.prefix) - self.size
                piece = self.suffix[start : start + size - len(out)]
            out += piece
            self.position += len(piece)
        return bytes(out)

    def readline(self, size: int = -1) -> bytes:
        raise NotImplementedError


def _multipart(content: bytes, name: str = "file") -> tuple[bytes, bytes]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="upload.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + content, f"\r\n--{BOUNDARY}--\r\n".encode()


def _post_lazy(client, path, body: LazyBody, content_type: str):
    # APIClient.generic sets CONTENT_TYPE from its argument; the lazy body replaces the test payload.
    return client.generic(
        "POST",
        path,
        b"",
        content_type=content_type,
        **{"wsgi.input": body, "CONTENT_LENGTH": str(body.total)},
    )


def test_it_scans_a_raw_upload(tenant, key_client):
    client = key_client(tenant, Role.OPERATOR)
    body = b"an ordinary document\n" * 100
    response = client.post("/api/v1/scan", body, content_type="application/octet-stream")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["verdict"] == "Clean"
    assert data["signatures"] == []
    assert data["sha256"] == hashlib.sha256(body).hexdigest()
    assert data["size"] == len(body)
    assert data["engine"].startswith("ClamAV")
    assert data["signature_version"]


def test_it_finds_eicar_raw_and_multipart(tenant, key_client):
    client = key_client(tenant, Role.OPERATOR)
    raw = client.post("/api/v1/scan", EICAR, content_type="application/octet-stream").json()
    assert raw["verdict"] == "Infected" and raw["signatures"]
    head, tail = _multipart(EICAR)
    multipart = client.post(
        "/api/v1/scan", head + tail, content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert multipart.status_code == 200, multipart.content
    assert multipart.json()["verdict"] == "Infected"
    assert multipart.json()["sha256"] == hashlib.sha256(EICAR).hexdigest()


def test_a_clean_multipart_upload(tenant, key_client):
    client = key_client(tenant, Role.OPERATOR)
    head, tail = _multipart(b"hello world\n" * 1000)
    response = client.post(
        "/api/v1/scan", head + tail, content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert response.json()["verdict"] == "Clean"
    assert response.json()["size"] == 12000


def test_an_upload_over_the_tenants_limit_is_413(tenant, key_client):
    tenant.max_scan_bytes = 1000
    tenant.save()
    client = key_client(tenant, Role.OPERATOR)
    response = client.post("/api/v1/scan", b"x" * 5000, content_type="application/octet-stream")
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["detail"]
    # A multipart body within the declared-length slack is cut off while it streams.
    head, tail = _multipart(b"y" * 5000)
    response = client.post(
        "/api/v1/scan", head + tail, content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["detail"]


def test_the_deployment_limit_caps_the_tenants(tenant, key_client, settings):
    settings.SCAN_API_MAX_BYTES = 100
    tenant.max_scan_bytes = 10_000
    tenant.save()
    response = key_client(tenant, Role.OPERATOR).post(
        "/api/v1/scan", b"z" * 500, content_type="application/octet-stream"
    )
    assert response.status_code == 413


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_a_large_upload_streams_in_flat_memory(tenant, key_client, multipart):
    size = 48 * MiB
    client = key_client(tenant, Role.OPERATOR)
    if multipart:
        head, tail = _multipart(b"")
        body = LazyBody(size, head, tail)
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
    else:
        body = LazyBody(size)
        content_type = "application/octet-stream"
    # Warm up first: the first request imports and caches things that are not the body's cost.
    warm_head, warm_tail = _multipart(b"") if multipart else (b"", b"")
    _post_lazy(client, "/api/v1/scan", LazyBody(1024, warm_head, warm_tail), content_type)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        response = _post_lazy(client, "/api/v1/scan", body, content_type)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.content
    assert response.json()["size"] == size
    assert response.json()["verdict"] == "Clean"
    assert peak - baseline < 4 * MiB, (
        f"peak grew by {(peak - baseline) / MiB:.1f} MiB for a {size // MiB} MiB body"
    )


def test_a_clean_upload_is_stored_in_a_protected_bucket(
    tenant, make_linked_bucket, key_client, s3_client, s3_calls
):
    bucket = make_linked_bucket(tenant)
    with scope(tenant=tenant):
        Bucket.objects.filter(pk=bucket.pk).update(protected=True)
    client = key_client(tenant, Role.OPERATOR)
    body = b"a clean upload\n" * 64
    response = client.post(
        f"/api/v1/scan?bucket={bucket.pk}&key=uploads/clean.txt",
        body,
        content_type="application/octet-stream",
    )
    assert response.status_code == 200, response.content
    stored = response.json()["stored"]
    assert stored["key"] == "uploads/clean.txt"
    tags = {
        t["Key"]: t["Value"]
        for t in s3_client.get_object_tagging(Bucket=bucket.name, Key="uploads/clean.txt")["TagSet"]
    }
    assert tags["scan-result"] == "Clean"
    etag = s3_client.head_object(Bucket=bucket.name, Key="uploads/clean.txt")["ETag"]
    assert etag.strip('"') == hashlib.md5(body).hexdigest()  # noqa: S324
    # The bucket's own event scan of the stored object folds into the API's verdict: nothing is read.
    s3_calls.clear()
    with scope(tenant=tenant):
        dedupe = services.dedupe_key_for(bucket, "uploads/clean.txt", None, etag, False)
        result = services.run_scan(
            tenant,
            bucket,
            "uploads/clean.txt",
            version_id=None,
            etag=etag,
            trigger="event",
            dedupe_key=dedupe,
        )
    assert str(result.pk) == response.json()["result"]
    assert s3_calls["GetObject"] == 0

    infected = client.post(
        f"/api/v1/scan?bucket={bucket.pk}&key=uploads/bad.com", EICAR, content_type="application/octet-stream"
    )
    assert infected.json()["verdict"] == "Infected"
    assert "stored" not in infected.json()
    assert [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket.name)["Contents"]] == [
        "uploads/clean.txt"
    ]


def test_storing_needs_a_protected_bucket_of_the_tenant(
    tenant, outsider_tenant, make_linked_bucket, key_client
):
    bucket = make_linked_bucket(tenant)
    client = key_client(tenant, Role.OPERATOR)
    response = client.post(
        f"/api/v1/scan?bucket={bucket.pk}&key=k", b"data", content_type="application/octet-stream"
    )
    assert response.status_code == 400
    assert "protected" in response.json()["bucket"][0]
    outsider = key_client(outsider_tenant, Role.OPERATOR)
    response = outsider.post(
        f"/api/v1/scan?bucket={bucket.pk}&key=k", b"data", content_type="application/octet-stream"
    )
    assert response.status_code == 400
    assert response.json() == {"bucket": ["No such bucket."]}


def test_it_scans_an_existing_object_now(tenant, make_linked_bucket, key_client, s3_client):
    bucket = make_linked_bucket(tenant)
    s3_client.put_object(Bucket=bucket.name, Key="stored/eicar.com", Body=EICAR)
    client = key_client(tenant, Role.OPERATOR)
    response = client.post(
        "/api/v1/scan/existing", {"bucket": str(bucket.pk), "key": "stored/eicar.com"}, format="json"
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["verdict"] == "Infected"
    assert data["signatures"]
    assert data["sha256"] == hashlib.sha256(EICAR).hexdigest()
    with scope(tenant=tenant):
        assert ScanResult.objects.get(pk=data["result"]).trigger == "api"


def test_async_scan_of_an_existing_object_gives_a_job_to_poll(
    tenant, make_linked_bucket, key_client, s3_client, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    s3_client.put_object(Bucket=bucket.name, Key="doc.txt", Body=b"fine")
    client = key_client(tenant, Role.OPERATOR)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/v1/scan/existing",
            {"bucket": str(bucket.pk), "key": "doc.txt", "async": True},
            format="json",
        )
    assert response.status_code == 202, response.content
    job_id = response.json()["job"]
    with scope(tenant=tenant):
        drain()
        job = ScanJob.objects.get(pk=job_id)
    assert (job.status, job.scanned, job.clean_count) == (JobStatus.DONE, 1, 1)
    polled = client.get(response.json()["poll"]).json()
    assert polled["status"] == "done"
    assert polled["result"]


def test_scan_endpoints_refuse_viewers_and_other_tenants(
    tenant, outsider_tenant, make_linked_bucket, key_client
):
    bucket = make_linked_bucket(tenant)
    viewer = key_client(tenant, Role.VIEWER)
    assert viewer.post("/api/v1/scan", b"data", content_type="application/octet-stream").status_code == 403
    head, tail = _multipart(b"data")
    assert (
        viewer.post(
            "/api/v1/scan", head + tail, content_type=f"multipart/form-data; boundary={BOUNDARY}"
        ).status_code
        == 403
    )
    assert (
        viewer.post(
            "/api/v1/scan/existing", {"bucket": str(bucket.pk), "key": "k"}, format="json"
        ).status_code
        == 403
    )
    outsider = key_client(outsider_tenant, Role.ADMIN)
    response = outsider.post("/api/v1/scan/existing", {"bucket": str(bucket.pk), "key": "k"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"bucket": ["No such bucket."]}
    with scope(tenant=outsider_tenant):
        assert not UsageMonth.objects.exists()


def test_an_upload_without_a_length_is_refused_not_passed(tenant, key_client):
    response = key_client(tenant, Role.OPERATOR).generic(
        "POST", "/api/v1/scan", b"", content_type="application/octet-stream", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert response.status_code == 411


def _parts(*parts):
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize(
    "parts",
    [
        [("file", "a.txt", b"hello\n"), ("other", "b.com", EICAR)],
        [("note", None, EICAR), ("file", "a.txt", b"hello\n")],
    ],
    ids=["two files", "a field and a file"],
)
def test_a_multipart_body_with_more_than_one_part_is_refused_not_passed(tenant, key_client, parts):
    client = key_client(tenant, Role.OPERATOR)
    response = client.post(
        "/api/v1/scan", _parts(*parts), content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert response.status_code == 400
    assert "exactly one" in str(response.json())


def test_storing_the_same_bytes_twice_is_not_a_500(tenant, make_linked_bucket, key_client):
    bucket = make_linked_bucket(tenant)
    with scope(tenant=tenant):
        Bucket.objects.filter(pk=bucket.pk).update(protected=True)
    client = key_client(tenant, Role.OPERATOR)
    url = f"/api/v1/scan?bucket={bucket.pk}&key=same.txt"
    first = client.post(url, b"same bytes", content_type="application/octet-stream")
    second = client.post(url, b"same bytes", content_type="application/octet-stream")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["result"] == second.json()["result"]


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_a_stored_upload_put_again_with_the_same_bytes_is_tagged_again(
    tenant, make_linked_bucket, key_client, s3_client, versioned
):
    # The PUT replaces the stored object and its tags (unversioned), or adds an untagged version: its own
    # event must not fold into the stored upload's verdict, or the object stays untagged (unreadable
    # behind the read gate). In an unversioned bucket only the stored object's LastModified tells them apart.
    bucket = make_linked_bucket(tenant, versioned=versioned)
    with scope(tenant=tenant):
        Bucket.objects.filter(pk=bucket.pk).update(protected=True)
    body = b"stored, then uploaded again\n" * 32
    stored = key_client(tenant, Role.OPERATOR).post(
        f"/api/v1/scan?bucket={bucket.pk}&key=again.txt", body, content_type="application/octet-stream"
    )
    assert stored.status_code == 200, stored.content
    next_second()
    put = s3_client.put_object(Bucket=bucket.name, Key="again.txt", Body=body)
    assert s3_client.get_object_tagging(Bucket=bucket.name, Key="again.txt")["TagSet"] == []
    with scope(tenant=tenant):
        result = services.run_scan(
            tenant,
            bucket,
            "again.txt",
            version_id=None,
            etag=put["ETag"],
            trigger="event",
            dedupe_key=services.dedupe_key_for(bucket, "again.txt", None, put["ETag"], False),
            size=len(body),
        )
    assert result is not None and str(result.pk) != stored.json()["result"]
    tags = s3_client.get_object_tagging(Bucket=bucket.name, Key="again.txt")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags}["scan-result"] == "Clean"


def test_a_store_key_with_nul_is_a_field_error(tenant, make_linked_bucket, key_client):
    bucket = make_linked_bucket(tenant)
    with scope(tenant=tenant):
        Bucket.objects.filter(pk=bucket.pk).update(protected=True)
    response = key_client(tenant, Role.OPERATOR).post(
        f"/api/v1/scan?bucket={bucket.pk}&key=a%00b", b"x", content_type="application/octet-stream"
    )
    assert response.status_code == 400
    assert "key" in response.json()


def test_a_truncated_multipart_upload_leaves_no_scan_thread_behind(tenant, key_client):
    import threading

    client = key_client(tenant, Role.OPERATOR)
    head, _ = _multipart(b"partial " * 1000)
    for _ in range(3):
        response = client.post("/api/v1/scan", head, content_type=f"multipart/form-data; boundary={BOUNDARY}")
        assert response.status_code == 400
    alive = [t for t in threading.enumerate() if t.name == "scan-upload" and t.is_alive()]
    assert alive == []


def test_the_scan_api_stops_at_the_monthly_limit(tenant, key_client):
    tenant.monthly_scan_bytes_limit = 100
    tenant.save(update_fields=["monthly_scan_bytes_limit"])
    client = key_client(tenant, Role.OPERATOR)
    assert client.post("/api/v1/scan", b"x" * 60, content_type="application/octet-stream").status_code == 200
    refused = client.post("/api/v1/scan", b"x" * 60, content_type="application/octet-stream")
    assert refused.status_code == 429
    assert "monthly" in refused.json()["detail"]


# --- issue 8 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_scanning_an_object_that_does_not_exist_is_a_404_and_stores_nothing(
    tenant, make_linked_bucket, key_client, s3_client, versioned
):
    bucket = make_linked_bucket(tenant, versioned=versioned)
    client = key_client(tenant, Role.OPERATOR)
    asks = [{"key": "never/uploaded.txt"}]
    if versioned:
        put = s3_client.put_object(Bucket=bucket.name, Key="deleted.txt", Body=b"x")
        marker = s3_client.delete_object(Bucket=bucket.name, Key="deleted.txt")  # a delete marker on top
        asks += [
            {"key": "deleted.txt"},
            {"key": "deleted.txt", "version_id": marker["VersionId"]},
            {"key": "deleted.txt", "version_id": put["VersionId"] + "x"},
        ]
    for ask in asks:
        response = client.post("/api/v1/scan/existing", {"bucket": str(bucket.pk), **ask}, format="json")
        assert response.status_code == 404, (ask, response.content)
        assert "no object" in response.json()["detail"]
    with scope(tenant=tenant):
        assert not ScanResult.objects.exists()
        assert not UsageMonth.objects.exists()


def test_a_lost_role_is_a_400_when_storing_an_upload(
    tenant, make_linked_bucket, key_client, s3_client, lose_role
):
    bucket = make_linked_bucket(tenant)
    with scope(tenant=tenant):
        Bucket.objects.filter(pk=bucket.pk).update(protected=True)
    lose_role()
    response = key_client(tenant, Role.OPERATOR).post(
        f"/api/v1/scan?bucket={bucket.pk}&key=uploads/clean.txt",
        b"clean",
        content_type="application/octet-stream",
    )
    assert response.status_code == 400, response.content
    message = response.json()["bucket"][0]
    assert "arn:aws:iam::123456789012:role/s3av-scanner" in message and "can no longer be assumed" in message
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket.name)
    with scope(tenant=tenant):
        assert not ScanResult.objects.exists()


def test_a_lost_role_is_a_400_when_scanning_an_existing_object(
    tenant, make_linked_bucket, key_client, s3_client, lose_role
):
    bucket = make_linked_bucket(tenant)
    s3_client.put_object(Bucket=bucket.name, Key="doc.txt", Body=b"fine")
    lose_role()
    response = key_client(tenant, Role.OPERATOR).post(
        "/api/v1/scan/existing", {"bucket": str(bucket.pk), "key": "doc.txt"}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "can no longer be assumed" in response.json()["bucket"][0]


def _raw_parts(*parts: tuple[str, bytes]) -> bytes:
    """A multipart body from (Content-Disposition value, content) pairs, headers exactly as given."""
    body = b""
    for disposition, content in parts:
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
A_FILE = ('form-data; name="file"; filename="a.txt"', b"hello\n")


# Parts Django's parser drops without a word: no name, or a filename that sanitises to nothing.
@pytest.mark.parametrize(
    "hidden",
    [
        'form-data; filename="eicar.com"',
        "form-data",
        'form-data; name="file"; filename=".."',
        'form-data; name="file"; filename="/"',
        'form-data; name=""; filename="eicar.com"',
    ],
    ids=["no name", "no name nor filename", "filename ..", "filename /", "empty name"],
)
@pytest.mark.parametrize("first", [True, False], ids=["hidden first", "hidden last"])
def test_a_part_djangos_parser_would_skip_is_refused_not_passed(tenant, key_client, hidden, first):
    parts = [(hidden, EICAR), A_FILE] if first else [A_FILE, (hidden, EICAR)]
    response = key_client(tenant, Role.OPERATOR).post(
        "/api/v1/scan", _raw_parts(*parts), content_type=MULTIPART
    )
    assert response.status_code == 400, response.content
    assert "exactly one" in str(response.json())


@pytest.mark.parametrize(
    "disposition", ['form-data; name="file"; filename=".."', 'form-data; filename="/"', "form-data"]
)
def test_a_lone_part_is_scanned_whatever_its_name(tenant, key_client, disposition):
    response = key_client(tenant, Role.OPERATOR).post(
        "/api/v1/scan", _raw_parts((disposition, EICAR)), content_type=MULTIPART
    )
    assert response.status_code == 200, response.content
    assert response.json()["verdict"] == "Infected"
    assert response.json()["sha256"] == hashlib.sha256(EICAR).hexdigest()


@pytest.mark.parametrize(
    "body",
    [
        EICAR + b"\r\n" + _raw_parts(A_FILE),
        _raw_parts(A_FILE) + EICAR,
        _raw_parts(A_FILE) + b"\r\n" + _raw_parts(('form-data; name="x"; filename="e.com"', EICAR)),
        _raw_parts(A_FILE)[: -len(b"--\r\n")] + b"--" + EICAR,
    ],
    ids=["preamble", "epilogue", "a second body after the end", "epilogue without a line break"],
)
def test_bytes_outside_the_part_are_refused_not_passed(tenant, key_client, body):
    response = key_client(tenant, Role.OPERATOR).post("/api/v1/scan", body, content_type=MULTIPART)
    assert response.status_code == 400, response.content
    assert "file" in response.json()


@pytest.mark.parametrize("ending", [b"\r\n", b""], ids=["closing CRLF", "no closing CRLF"])
def test_a_well_formed_single_part_body_is_scanned(tenant, key_client, ending):
    body = _raw_parts(('form-data; name="file"; filename="e.com"', EICAR))[:-2] + ending
    response = key_client(tenant, Role.OPERATOR).post("/api/v1/scan", body, content_type=MULTIPART)
    assert response.status_code == 200, response.content
    assert response.json()["verdict"] == "Infected"


def test_a_transfer_encoded_part_is_refused_not_scanned_encoded(tenant, key_client):
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="e.com"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + base64.b64encode(EICAR)
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    response = key_client(tenant, Role.OPERATOR).post("/api/v1/scan", body, content_type=MULTIPART)
    assert response.status_code == 400
    assert "Content-Transfer-Encoding" in str(response.json())


@pytest.mark.parametrize(
    "content_type",
    ["multipart/mixed; boundary=x", "multipart/form-data", 'multipart/form-data; boundary=""'],
)
def test_a_multipart_body_that_is_not_form_data_with_a_boundary_is_refused(tenant, key_client, content_type):
    response = key_client(tenant, Role.OPERATOR).post("/api/v1/scan", EICAR, content_type=content_type)
    assert response.status_code == 400
    assert "file" in response.json()


def _post_empty(client, content_type: str):
    # Django's test client leaves out Content-Length for an empty body; a real client
    # such as `curl --data-binary @empty.txt` sends `Content-Length: 0`.
    return client.generic("POST", "/api/v1/scan", b"", content_type=content_type, CONTENT_LENGTH="0")


def test_an_empty_raw_body_with_a_length_is_scanned_as_an_empty_object(tenant, key_client):
    response = _post_empty(key_client(tenant, Role.OPERATOR), "application/octet-stream")
    assert response.status_code == 200, response.content
    assert response.json()["verdict"] == "Clean"
    assert response.json()["size"] == 0
    assert response.json()["sha256"] == hashlib.sha256(b"").hexdigest()


def test_an_empty_multipart_body_is_a_field_error(tenant, key_client):
    response = _post_empty(key_client(tenant, Role.OPERATOR), MULTIPART)
    assert response.status_code == 400, response.content
    assert "file" in response.json()


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_a_session_upload_with_a_csrf_header_is_scanned(tenant, make_user, multipart):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(make_user(tenant=tenant, role=Role.OPERATOR))
    token = "a" * 32
    client.cookies["csrftoken"] = token
    if multipart:
        body, content_type = _raw_parts(('form-data; name="file"; filename="e.com"', EICAR)), MULTIPART
    else:
        body, content_type = EICAR, "application/octet-stream"
    response = client.post("/api/v1/scan", body, content_type=content_type, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content
    assert response.json()["verdict"] == "Infected"


class _BrokenBody(LazyBody):
    """A body whose client goes away after the first read."""

    def read(self, size: int = -1) -> bytes:
        if self.position:
            raise OSError("connection reset by peer")
        return super().read(min(size, 1024))


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_an_upload_cut_off_by_the_client_is_a_400_not_an_engine_error(tenant, key_client, multipart):
    head, tail = _multipart(b"") if multipart else (b"", b"")
    content_type = MULTIPART if multipart else "application/octet-stream"
    response = _post_lazy(
        key_client(tenant, Role.OPERATOR), "/api/v1/scan", _BrokenBody(MiB, head, tail), content_type
    )
    assert response.status_code == 400, response.content
    assert "ended before" in str(response.json())


@pytest.mark.parametrize("length", ["²", "1٣", " 5", "-1"])
def test_a_content_length_that_is_not_ascii_digits_is_a_411_not_a_500(tenant, key_client, length):
    response = key_client(tenant, Role.OPERATOR).generic(
        "POST", "/api/v1/scan", b"x", content_type="application/octet-stream", CONTENT_LENGTH=length
    )
    assert response.status_code == 411, response.content

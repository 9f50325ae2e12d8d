from __future__ import annotations

import uuid

import pytest
from django_scopes import scope

from accounts.models import AuditEvent, Role
from scanning import services
from scanning.models import ScanResult
from tests.fixtures.scanning import EICAR, TESTFILES

pytestmark = pytest.mark.django_db


def _scan(tenant, bucket, s3_client, key, body):
    etag = s3_client.put_object(Bucket=bucket.name, Key=key, Body=body)["ETag"]
    with scope(tenant=tenant):
        return services.run_scan(
            tenant,
            bucket,
            key,
            version_id=None,
            etag=etag,
            trigger="event",
            dedupe_key=services.dedupe_key_for(bucket, key, None, etag, False),
        )


@pytest.fixture
def scanned(tenant, make_linked_bucket, make_bucket, s3_client):
    quarantine = make_bucket()
    bucket = make_linked_bucket(tenant, on_infected="quarantine", quarantine_bucket=quarantine)
    results = {
        "clean": _scan(tenant, bucket, s3_client, "docs/a.txt", b"hello"),
        "infected": _scan(tenant, bucket, s3_client, "docs/eicar.com", EICAR),
        "other": _scan(tenant, bucket, s3_client, "img/b.png", b"\x89PNG..."),
    }
    return bucket, quarantine, results


def test_it_lists_results_with_the_contract_fields(tenant, key_client, scanned):
    body = key_client(tenant, Role.VIEWER).get("/api/v1/results/").json()
    assert len(body["results"]) == 3
    row = next(r for r in body["results"] if r["key"] == "docs/eicar.com")
    for field in ("bucket", "key", "version_id", "verdict", "signatures", "message", "action", "scanned_at"):
        assert field in row
    assert row["verdict"] == "Infected"
    assert row["action"] == "tagged+quarantined"


@pytest.mark.parametrize(
    "query, keys",
    [
        ("verdict=Infected", {"docs/eicar.com"}),
        ("verdict=Clean", {"docs/a.txt", "img/b.png"}),
        ("key=img/b.png", {"img/b.png"}),
        ("key_prefix=docs/", {"docs/a.txt", "docs/eicar.com"}),
        ("since=2000-01-01T00:00:00Z", {"docs/a.txt", "docs/eicar.com", "img/b.png"}),
        ("since=2999-01-01T00:00:00Z", set()),
    ],
)
def test_it_filters_results(tenant, key_client, scanned, query, keys):
    body = key_client(tenant, Role.VIEWER).get(f"/api/v1/results/?{query}").json()
    assert {r["key"] for r in body["results"]} == keys


def test_it_filters_by_bucket(tenant, key_client, scanned):
    bucket, _, _ = scanned
    client = key_client(tenant, Role.VIEWER)
    assert len(client.get(f"/api/v1/results/?bucket={bucket.pk}").json()["results"]) == 3
    assert client.get(f"/api/v1/results/?bucket={uuid.uuid4()}").json()["results"] == []


@pytest.mark.parametrize(
    "query, field", [("verdict=Dirty", "verdict"), ("since=yesterday", "since"), ("bucket=x", "bucket")]
)
def test_a_bad_filter_is_a_400_naming_it(tenant, key_client, query, field):
    response = key_client(tenant, Role.VIEWER).get(f"/api/v1/results/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_the_result_list_costs_a_fixed_number_of_queries(
    tenant, key_client, scanned, django_assert_max_num_queries
):
    client = key_client(tenant, Role.VIEWER)
    with django_assert_max_num_queries(4):
        client.get("/api/v1/results/")


def test_release_restores_the_object_tagged_infected_allowed(tenant, key_client, scanned, s3_client):
    bucket, quarantine, results = scanned
    infected = results["infected"]
    response = key_client(tenant, Role.OPERATOR).post(f"/api/v1/results/{infected.pk}/release")
    assert response.status_code == 200, response.json()
    assert response.json()["verdict"] == "InfectedAllowed"
    restored = s3_client.get_object(Bucket=bucket.name, Key="docs/eicar.com")
    assert restored["Body"].read() == EICAR
    tags = {
        t["Key"]: t["Value"]
        for t in s3_client.get_object_tagging(Bucket=bucket.name, Key="docs/eicar.com")["TagSet"]
    }
    assert tags["scan-result"] == "InfectedAllowed"
    assert "Contents" not in s3_client.list_objects_v2(Bucket=quarantine)
    with scope(tenant=tenant):
        event = AuditEvent.objects.get(tenant=tenant, action="result.release")
    assert event.actor_label.startswith("api-key:")


def test_release_refuses_a_clean_result(tenant, key_client, scanned):
    clean = scanned[2]["clean"]
    response = key_client(tenant, Role.OPERATOR).post(f"/api/v1/results/{clean.pk}/release")
    assert response.status_code == 400


def test_delete_object_removes_the_quarantined_copy(tenant, key_client, scanned, s3_client):
    _, quarantine, results = scanned
    response = key_client(tenant, Role.OPERATOR).post(
        f"/api/v1/results/{results['infected'].pk}/delete-object"
    )
    assert response.status_code == 200
    assert "Contents" not in s3_client.list_objects_v2(Bucket=quarantine)
    with scope(tenant=tenant):
        assert AuditEvent.objects.filter(tenant=tenant, action="result.delete_object").exists()


def test_delete_object_refuses_a_clean_object(tenant, key_client, scanned, s3_client):
    bucket, _, results = scanned
    response = key_client(tenant, Role.OPERATOR).post(f"/api/v1/results/{results['clean'].pk}/delete-object")
    assert response.status_code == 400
    assert s3_client.head_object(Bucket=bucket.name, Key="docs/a.txt")


def test_rescan_queues_a_new_scan(tenant, key_client, scanned, django_capture_on_commit_callbacks):
    from scanning.actors import scan_object

    scan_object.broker.flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        response = key_client(tenant, Role.OPERATOR).post(f"/api/v1/results/{scanned[2]['clean'].pk}/rescan")
    assert response.status_code == 202
    assert scan_object.broker.queues["scans"].qsize() == 1
    scan_object.broker.flush_all()


def test_a_viewer_cannot_triage(tenant, key_client, scanned):
    viewer = key_client(tenant, Role.VIEWER)
    for path in ("rescan", "release", "delete-object"):
        assert viewer.post(f"/api/v1/results/{scanned[2]['infected'].pk}/{path}").status_code == 403


def test_pending_claims_are_not_listed(tenant, key_client, make_linked_bucket):
    bucket = make_linked_bucket(tenant)
    with scope(tenant=tenant):
        ScanResult.objects.create(
            tenant=tenant, bucket=bucket, bucket_name=bucket.name, key="p", dedupe_key="x"
        )
    assert key_client(tenant, Role.VIEWER).get("/api/v1/results/").json()["results"] == []


def test_two_infected_versions_of_one_key_keep_separate_quarantine_copies(
    tenant, key_client, make_linked_bucket, make_bucket, s3_client
):
    quarantine = make_bucket()
    bucket = make_linked_bucket(
        tenant, versioned=True, on_infected="quarantine", quarantine_bucket=quarantine
    )
    clam = (TESTFILES / "clam.exe").read_bytes()
    first = _scan_version(tenant, bucket, s3_client, "doc.bin", EICAR)
    second = _scan_version(tenant, bucket, s3_client, "doc.bin", clam)
    assert first.quarantine_key != second.quarantine_key
    response = key_client(tenant, Role.OPERATOR).post(f"/api/v1/results/{first.pk}/release")
    assert response.status_code == 200, response.json()
    assert s3_client.get_object(Bucket=bucket.name, Key="doc.bin")["Body"].read() == EICAR
    # The other finding's copy is untouched.
    assert s3_client.get_object(Bucket=quarantine, Key=second.quarantine_key)["Body"].read() == clam


def test_a_second_release_is_refused_not_a_500(tenant, key_client, scanned):
    operator = key_client(tenant, Role.OPERATOR)
    infected = scanned[2]["infected"]
    assert operator.post(f"/api/v1/results/{infected.pk}/release").status_code == 200
    again = operator.post(f"/api/v1/results/{infected.pk}/release")
    assert again.status_code == 400
    assert "already released" in str(again.json())
    assert operator.post(f"/api/v1/results/{infected.pk}/delete-object").status_code == 400


def test_the_release_copy_event_does_not_quarantine_the_object_again(
    tenant, key_client, make_linked_bucket, make_bucket, s3_client
):
    quarantine = make_bucket()
    bucket = make_linked_bucket(
        tenant, versioned=True, on_infected="quarantine", quarantine_bucket=quarantine
    )
    infected = _scan_version(tenant, bucket, s3_client, "fp.exe", EICAR)
    released = key_client(tenant, Role.OPERATOR).post(f"/api/v1/results/{infected.pk}/release").json()
    head = s3_client.head_object(Bucket=bucket.name, Key="fp.exe")
    with scope(tenant=tenant):
        # The S3 event of the release's own copy arrives and is scanned.
        again = services.run_scan(
            tenant,
            bucket,
            "fp.exe",
            version_id=head["VersionId"],
            etag=head["ETag"],
            trigger="event",
            dedupe_key=services.dedupe_key_for(bucket, "fp.exe", head["VersionId"], head["ETag"], False),
        )
    assert str(again.pk) == released["id"]
    assert again.verdict == "InfectedAllowed"
    assert s3_client.get_object(Bucket=bucket.name, Key="fp.exe")["Body"].read() == EICAR


def _scan_version(tenant, bucket, s3_client, key, body):
    put = s3_client.put_object(Bucket=bucket.name, Key=key, Body=body)
    with scope(tenant=tenant):
        return services.run_scan(
            tenant,
            bucket,
            key,
            version_id=put.get("VersionId"),
            etag=put["ETag"],
            trigger="event",
            dedupe_key=services.dedupe_key_for(bucket, key, put.get("VersionId"), put["ETag"], False),
        )


@pytest.mark.parametrize(
    "query, field",
    [("since=2026-13-45T00:00:00Z", "since"), ("key=a%00b", "key"), ("key_prefix=a%00", "key_prefix")],
)
def test_impossible_filters_are_400_not_500(tenant, key_client, query, field):
    response = key_client(tenant, Role.VIEWER).get(f"/api/v1/results/?{query}")
    assert response.status_code == 400
    assert field in response.json()

from __future__ import annotations

import uuid

import pytest
from django_scopes import scope

from accounts.models import AuditEvent, Role
from scanning.models import ScanResult
from scanning.pipeline import services
from tests import factories
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


@pytest.fixture(params=[False, True], ids=["unversioned", "versioned"])
def scanned(request, tenant, make_linked_bucket, make_bucket, s3_client):
    quarantine = make_bucket(versioned=request.param)
    bucket = make_linked_bucket(
        tenant, versioned=request.param, on_infected="quarantine", quarantine_bucket=quarantine
    )
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
    from scanning.pipeline.services import scan_object

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
        factories.make_result(tenant, bucket, "p", verdict="")
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


# --- issue 8: triage tells the truth ------------------------------------------------------------------

VERSIONING = pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])


def _versions(s3_client, bucket, key):
    listed = s3_client.list_object_versions(Bucket=bucket.name, Prefix=key).get("Versions", [])
    return {v["VersionId"] for v in listed if v["Key"] == key}


def _quarantined(tenant, make_linked_bucket, make_bucket, s3_client, versioned, key="inbox/report.exe"):
    quarantine = make_bucket(versioned=versioned)
    bucket = make_linked_bucket(
        tenant, versioned=versioned, on_infected="quarantine", quarantine_bucket=quarantine
    )
    infected = _scan_version(tenant, bucket, s3_client, key, EICAR)
    assert infected.quarantine_key, infected.action
    return bucket, quarantine, infected


@VERSIONING
def test_release_refuses_to_replace_a_newer_upload_unless_asked(
    tenant, key_client, make_linked_bucket, make_bucket, s3_client, versioned
):
    bucket, quarantine, infected = _quarantined(tenant, make_linked_bucket, make_bucket, s3_client, versioned)
    newer = s3_client.put_object(Bucket=bucket.name, Key=infected.key, Body=b"the newer upload")
    operator = key_client(tenant, Role.OPERATOR)

    refused = operator.post(f"/api/v1/results/{infected.pk}/release", {}, format="json")
    assert refused.status_code == 409, refused.content
    assert "overwrite" in refused.json()["detail"]
    current = s3_client.get_object(Bucket=bucket.name, Key=infected.key)
    assert current["Body"].read() == b"the newer upload"
    assert s3_client.get_object(Bucket=quarantine, Key=infected.quarantine_key)["Body"].read() == EICAR
    with scope(tenant=tenant):
        infected.refresh_from_db()
        assert infected.triage_state == "open"
        assert ScanResult.objects.filter(verdict="InfectedAllowed").count() == 0
        assert not AuditEvent.objects.filter(action="result.release").exists()

    released = operator.post(f"/api/v1/results/{infected.pk}/release", {"overwrite": True}, format="json")
    assert released.status_code == 200, released.content
    assert s3_client.get_object(Bucket=bucket.name, Key=infected.key)["Body"].read() == EICAR
    if versioned:
        # Nothing lost: the newer upload stays as a noncurrent version.
        assert newer["VersionId"] in _versions(s3_client, bucket, infected.key)
        kept = s3_client.get_object(Bucket=bucket.name, Key=infected.key, VersionId=newer["VersionId"])
        assert kept["Body"].read() == b"the newer upload"
    with scope(tenant=tenant):
        event = AuditEvent.objects.get(action="result.release")
    assert event.details["overwrite"] is True and event.details["replaced"]["size"] == len(
        b"the newer upload"
    )


@VERSIONING
def test_release_into_an_empty_key_needs_no_overwrite(
    tenant, key_client, make_linked_bucket, make_bucket, s3_client, versioned
):
    bucket, quarantine, infected = _quarantined(tenant, make_linked_bucket, make_bucket, s3_client, versioned)
    response = key_client(tenant, Role.OPERATOR).post(f"/api/v1/results/{infected.pk}/release")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["verdict"] == "InfectedAllowed" and body["triage_state"] == "resolved"
    assert s3_client.get_object(Bucket=bucket.name, Key=infected.key)["Body"].read() == EICAR
    assert "Versions" not in s3_client.list_object_versions(Bucket=quarantine)
    with scope(tenant=tenant):
        infected.refresh_from_db()
    assert (infected.triage_state, infected.resolution) == ("resolved", "released")
    assert infected.resolved_by.startswith("api-key:") and infected.resolved_at is not None


def test_release_takes_a_boolean_overwrite(tenant, key_client, scanned):
    response = key_client(tenant, Role.OPERATOR).post(
        f"/api/v1/results/{scanned[2]['infected'].pk}/release", {"overwrite": "perhaps"}, format="json"
    )
    assert response.status_code == 400
    assert "overwrite" in response.json()


@VERSIONING
def test_delete_object_deletes_the_exact_version_and_keeps_a_newer_one(
    tenant, key_client, make_linked_bucket, s3_client, versioned
):
    bucket = make_linked_bucket(tenant, versioned=versioned)  # on_infected: keep (tag only)
    infected = _scan_version(tenant, bucket, s3_client, "kept.exe", EICAR)
    newer = s3_client.put_object(Bucket=bucket.name, Key="kept.exe", Body=b"the newer upload")
    response = key_client(tenant, Role.OPERATOR).post(f"/api/v1/results/{infected.pk}/delete-object")
    if versioned:
        assert response.status_code == 200, response.content
        assert response.json()["triage_state"] == "resolved"
        assert response.json()["resolution"] == "deleted"
        assert _versions(s3_client, bucket, "kept.exe") == {newer["VersionId"]}
    else:
        # The key holds other bytes now: deleting by key would destroy the newer upload.
        assert response.status_code == 409, response.content
        assert "nothing was deleted" in response.json()["detail"]
        with scope(tenant=tenant):
            infected.refresh_from_db()
        assert infected.triage_state == "open"
    assert s3_client.get_object(Bucket=bucket.name, Key="kept.exe")["Body"].read() == b"the newer upload"


@VERSIONING
def test_delete_object_of_a_kept_finding_resolves_it(
    tenant, key_client, make_linked_bucket, s3_client, versioned
):
    bucket = make_linked_bucket(tenant, versioned=versioned)
    infected = _scan_version(tenant, bucket, s3_client, "kept.exe", EICAR)
    response = key_client(tenant, Role.OPERATOR).post(f"/api/v1/results/{infected.pk}/delete-object")
    assert response.status_code == 200, response.content
    assert s3_client.list_object_versions(Bucket=bucket.name).get("Versions", []) == []
    with scope(tenant=tenant):
        infected.refresh_from_db()
        event = AuditEvent.objects.get(action="result.delete_object")
    assert (infected.triage_state, infected.resolution) == ("resolved", "deleted")
    assert event.details["version_id"] == (infected.version_id or None)


def test_the_policy_deleting_a_version_resolves_the_finding(tenant, make_linked_bucket, s3_client):
    bucket = make_linked_bucket(tenant, versioned=True, on_infected="delete")
    infected = _scan_version(tenant, bucket, s3_client, "gone.exe", EICAR)
    assert "deleted" in infected.action
    with scope(tenant=tenant):
        infected.refresh_from_db()
    assert (infected.triage_state, infected.resolution, infected.resolved_by) == (
        "resolved",
        "deleted_by_policy",
        "policy",
    )


def test_the_state_filter_separates_open_and_resolved_findings(
    tenant, key_client, make_linked_bucket, make_bucket, s3_client
):
    quarantine = make_bucket()
    bucket = make_linked_bucket(tenant, on_infected="quarantine", quarantine_bucket=quarantine)
    handled = _scan_version(tenant, bucket, s3_client, "a.exe", EICAR)
    waiting = _scan_version(tenant, bucket, s3_client, "b.exe", EICAR)
    _scan_version(tenant, bucket, s3_client, "c.txt", b"clean")
    viewer = key_client(tenant, Role.VIEWER)
    assert key_client(tenant, Role.OPERATOR).post(f"/api/v1/results/{handled.pk}/release").status_code == 200

    opened = viewer.get("/api/v1/results/?verdict=Infected&state=open").json()["results"]
    assert [r["id"] for r in opened] == [str(waiting.pk)]
    assert opened[0]["triage_state"] == "open" and opened[0]["resolved_at"] is None
    resolved = viewer.get("/api/v1/results/?state=resolved").json()["results"]
    assert {(r["key"], r["verdict"]) for r in resolved} == {
        ("a.exe", "Infected"),
        ("a.exe", "InfectedAllowed"),
    }
    clean = viewer.get("/api/v1/results/?verdict=Clean").json()["results"]
    assert clean[0]["triage_state"] == ""
    bad = viewer.get("/api/v1/results/?state=closed")
    assert bad.status_code == 400 and "state" in bad.json()


def test_rescan_says_what_will_happen(tenant, key_client, scanned, django_capture_on_commit_callbacks):
    from scanning.pipeline.services import scan_object

    scan_object.broker.flush_all()
    clean = scanned[2]["clean"]
    with django_capture_on_commit_callbacks(execute=True):
        response = key_client(tenant, Role.OPERATOR).post(f"/api/v1/results/{clean.pk}/rescan")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["key"] == "docs/a.txt"
    assert "move it to quarantine" in body["message"]
    scan_object.broker.flush_all()


def _queued(django_capture_on_commit_callbacks, client, path, data=None):
    from scanning.pipeline.services import scan_object

    scan_object.broker.flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(path, data or {}, format="json")
    queued = scan_object.broker.queues["scans"].qsize()
    scan_object.broker.flush_all()
    return response, queued


def test_rescan_of_a_quarantined_or_released_finding_is_refused_with_the_reason(
    tenant, key_client, scanned, django_capture_on_commit_callbacks
):
    operator = key_client(tenant, Role.OPERATOR)
    infected = scanned[2]["infected"]
    response, queued = _queued(
        django_capture_on_commit_callbacks, operator, f"/api/v1/results/{infected.pk}/rescan"
    )
    assert (response.status_code, queued) == (409, 0)
    assert "moved to quarantine" in response.json()["detail"]

    assert operator.post(f"/api/v1/results/{infected.pk}/release").status_code == 200
    response, queued = _queued(
        django_capture_on_commit_callbacks, operator, f"/api/v1/results/{infected.pk}/rescan"
    )
    assert (response.status_code, queued) == (409, 0)
    assert "released" in response.json()["detail"]


def test_rescan_of_a_released_object_needs_confirmation(
    tenant, key_client, scanned, django_capture_on_commit_callbacks
):
    operator = key_client(tenant, Role.OPERATOR)
    released = operator.post(f"/api/v1/results/{scanned[2]['infected'].pk}/release").json()
    path = f"/api/v1/results/{released['id']}/rescan"
    response, queued = _queued(django_capture_on_commit_callbacks, operator, path)
    assert (response.status_code, queued) == (409, 0)
    assert "undoing the release" in response.json()["detail"]
    assert "move it to quarantine" in response.json()["detail"]
    response, queued = _queued(django_capture_on_commit_callbacks, operator, path, {"confirm": True})
    assert (response.status_code, queued) == (202, 1)


@VERSIONING
def test_rescan_of_a_deleted_object_is_refused(
    tenant, key_client, make_linked_bucket, s3_client, versioned, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant, versioned=versioned)
    operator = key_client(tenant, Role.OPERATOR)
    infected = _scan_version(tenant, bucket, s3_client, "kept.exe", EICAR)
    assert operator.post(f"/api/v1/results/{infected.pk}/delete-object").status_code == 200
    response, queued = _queued(
        django_capture_on_commit_callbacks, operator, f"/api/v1/results/{infected.pk}/rescan"
    )
    assert (response.status_code, queued) == (409, 0)
    assert "nothing left to scan" in response.json()["detail"]

    # Deleted behind s3av's back: the same answer, found by looking.
    clean = _scan_version(tenant, bucket, s3_client, "clean.txt", b"fine")
    s3_client.delete_object(
        Bucket=bucket.name, Key="clean.txt", **({"VersionId": clean.version_id} if versioned else {})
    )
    response, queued = _queued(
        django_capture_on_commit_callbacks, operator, f"/api/v1/results/{clean.pk}/rescan"
    )
    assert (response.status_code, queued) == (409, 0)
    assert "no longer exists" in response.json()["detail"]


def test_rescan_of_a_replaced_object_is_refused(
    tenant, key_client, make_linked_bucket, s3_client, django_capture_on_commit_callbacks
):
    bucket = make_linked_bucket(tenant)
    clean = _scan_version(tenant, bucket, s3_client, "clean.txt", b"fine")
    s3_client.put_object(Bucket=bucket.name, Key="clean.txt", Body=b"other bytes")
    operator = key_client(tenant, Role.OPERATOR)
    response, queued = _queued(
        django_capture_on_commit_callbacks, operator, f"/api/v1/results/{clean.pk}/rescan"
    )
    assert (response.status_code, queued) == (409, 0)
    assert "other bytes" in response.json()["detail"]


@pytest.mark.parametrize("path", ["release", "delete-object", "rescan"])
def test_a_role_that_can_no_longer_be_assumed_is_a_400_saying_what_to_fix(
    tenant, key_client, scanned, lose_role, path
):
    infected = scanned[2]["infected"] if path != "rescan" else scanned[2]["clean"]
    before = infected.action
    lose_role()
    response = key_client(tenant, Role.OPERATOR).post(f"/api/v1/results/{infected.pk}/{path}")
    assert response.status_code == 400, response.content
    message = response.json()["non_field_errors"][0]
    assert "arn:aws:iam::123456789012:role/s3av-scanner" in message
    assert "can no longer be assumed" in message and "verify the account" in message
    with scope(tenant=tenant):
        infected.refresh_from_db()
    assert infected.action == before and infected.triage_state in {"open", ""}  # can be tried again


@VERSIONING
def test_s3av_never_scans_its_own_quarantine_copies(
    tenant, make_linked_bucket, make_bucket, s3_client, versioned
):
    bucket, quarantine, infected = _quarantined(tenant, make_linked_bucket, make_bucket, s3_client, versioned)
    with scope(tenant=tenant):
        # A quarantine bucket s3av scans (protected before the policy named it, or by another tenant's
        # policy): its own event for the copy arrives.
        qbucket = factories.make_bucket_row(
            tenant,
            bucket.account,
            quarantine,
            protected=True,
            policy=bucket.policy,
            versioning="Enabled" if versioned else "",
        )
        head = s3_client.head_object(Bucket=quarantine, Key=infected.quarantine_key)
        copy_event = dict(
            version_id=head.get("VersionId"),
            etag=head["ETag"],
            trigger="event",
            dedupe_key=services.dedupe_key_for(
                qbucket, infected.quarantine_key, head.get("VersionId"), head["ETag"], False
            ),
        )
        assert services.run_scan(tenant, qbucket, infected.quarantine_key, **copy_event) is None
        # Also when the event beats the finding's record of where the copy went.
        ScanResult.objects.filter(pk=infected.pk).update(quarantine_bucket="", quarantine_key="")
        copy_event["dedupe_key"] = uuid.uuid4().hex
        assert services.run_scan(tenant, qbucket, infected.quarantine_key, **copy_event) is None
        assert not ScanResult.objects.filter(bucket=qbucket).exists()
    listed = s3_client.list_objects_v2(Bucket=quarantine)["Contents"]
    assert [o["Key"] for o in listed] == [infected.quarantine_key]


@VERSIONING
def test_delete_object_of_a_copy_already_gone_resolves_the_finding_as_gone(
    tenant, key_client, make_linked_bucket, make_bucket, s3_client, versioned
):
    _, quarantine, infected = _quarantined(tenant, make_linked_bucket, make_bucket, s3_client, versioned)
    version = {"VersionId": infected.quarantine_version_id} if versioned else {}
    s3_client.delete_object(Bucket=quarantine, Key=infected.quarantine_key, **version)  # behind s3av's back
    response = key_client(tenant, Role.OPERATOR).post(f"/api/v1/results/{infected.pk}/delete-object")
    assert response.status_code == 200, response.content
    assert (response.json()["triage_state"], response.json()["resolution"]) == ("resolved", "gone")

"""The lists' ?filters (django-filter FilterSets): a bad value is a 400 naming the parameter in the API's
error format, the schema documents every filter, and a filter applies to its list only."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scope

from accounts import services
from accounts.models import AuditEvent, Role
from scanning.models import JobStatus
from tests.factories import make_account, make_bucket_row, make_job, make_result

pytestmark = pytest.mark.django_db

TIME_MESSAGE = "Use an ISO 8601 time with a zone, e.g. 2026-01-31T00:00:00Z."
VERDICTS = "Use one of: Clean, Infected, Unscannable, Error, InfectedAllowed."


def _result(tenant, bucket, key, verdict="Infected", **fields):
    return make_result(tenant, bucket, key, verdict, scanned_at=timezone.now(), **fields)


@pytest.mark.parametrize(
    "path, query, errors",
    [
        ("results", {"verdict": "infected"}, {"verdict": [VERDICTS]}),
        ("results", {"bucket": "not-a-uuid"}, {"bucket": ["Not a bucket id."]}),
        ("results", {"state": "closed"}, {"state": ["Use one of: open, resolved."]}),
        ("results", {"since": "2026-01-31T00:00:00"}, {"since": [TIME_MESSAGE]}),  # no zone
        ("results", {"since": "yesterday"}, {"since": [TIME_MESSAGE]}),
        ("jobs", {"bucket": "not-a-uuid"}, {"bucket": ["Not a bucket id."]}),
        (
            "jobs",
            {"status": "running"},
            {"status": ["Use one of: queued, listing, scanning, done, cancelled, failed."]},
        ),
        ("buckets", {"account": "not-a-uuid"}, {"account": ["Not an account id."]}),
        ("audit-events", {"since": "2026-13-01T00:00:00Z"}, {"since": [TIME_MESSAGE]}),
        ("audit-events", {"before": "tomorrow"}, {"before": [TIME_MESSAGE]}),
    ],
)
def test_a_bad_filter_value_is_a_400_naming_the_parameter(tenant, key_client, path, query, errors):
    response = key_client(tenant, Role.VIEWER).get(f"/api/v1/{path}/", query)
    assert response.status_code == 400, response.content
    assert response.json() == errors


def test_every_bad_filter_is_named_at_once(tenant, key_client):
    query = {"verdict": "nope", "bucket": "nope", "since": "nope", "key_prefix": "docs/"}
    response = key_client(tenant, Role.VIEWER).get("/api/v1/results/", query)
    assert response.status_code == 400
    assert response.json() == {
        "verdict": [VERDICTS],
        "bucket": ["Not a bucket id."],
        "since": [TIME_MESSAGE],
    }


def test_an_id_with_spaces_around_it_is_not_an_id(tenant, key_client):
    # As the serializers' UUIDField: the value is taken as given, never stripped.
    response = key_client(tenant, Role.VIEWER).get("/api/v1/jobs/", {"bucket": f" {uuid.uuid4()} "})
    assert response.json() == {"bucket": ["Not a bucket id."]}


def test_an_empty_filter_is_no_filter(tenant, key_client):
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant)
        _result(tenant, bucket, "a")
        _result(tenant, bucket, "b", verdict="Clean")
    query = {"verdict": "", "bucket": "", "key": "", "key_prefix": "", "since": "", "state": ""}
    response = key_client(tenant, Role.VIEWER).get("/api/v1/results/", query)
    assert response.status_code == 200
    assert {r["key"] for r in response.json()["results"]} == {"a", "b"}


def test_a_key_filter_takes_the_key_as_given(tenant, key_client):
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant)
        _result(tenant, bucket, " padded ")
        _result(tenant, bucket, "padded")
    viewer = key_client(tenant, Role.VIEWER)
    assert [r["key"] for r in viewer.get("/api/v1/results/", {"key": " padded "}).json()["results"]] == [
        " padded "
    ]
    assert [r["key"] for r in viewer.get("/api/v1/results/", {"key_prefix": " "}).json()["results"]] == [
        " padded "
    ]


def test_a_filter_applies_to_the_list_only(tenant, key_client):
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant)
        infected = _result(tenant, bucket, "evil.com")
        job = make_job(tenant, bucket, status="scanning")
    viewer = key_client(tenant, Role.VIEWER)
    # A detail route is the object its id names, whatever the query string says.
    assert viewer.get(f"/api/v1/results/{infected.pk}", {"verdict": "Clean"}).status_code == 200
    assert viewer.get(f"/api/v1/results/{infected.pk}", {"verdict": "bogus"}).status_code == 200
    assert viewer.get(f"/api/v1/jobs/{job.pk}", {"status": "done"}).status_code == 200
    assert viewer.get(f"/api/v1/buckets/{bucket.pk}", {"account": "not-a-uuid"}).status_code == 200


def test_it_filters_jobs_by_bucket_and_status(tenant, key_client):
    with scope(tenant=tenant):
        first, second = make_bucket_row(tenant), make_bucket_row(tenant)
        done = make_job(tenant, first, status="done")
        running = make_job(tenant, first, status="scanning")
        other = make_job(tenant, second, status="done")
    viewer = key_client(tenant, Role.VIEWER)

    def ids(query):
        response = viewer.get("/api/v1/jobs/", query)
        assert response.status_code == 200, response.content
        return {job["id"] for job in response.json()["results"]}

    assert ids({"bucket": str(first.pk)}) == {str(done.pk), str(running.pk)}
    assert ids({"status": "done"}) == {str(done.pk), str(other.pk)}
    assert ids({"bucket": str(first.pk), "status": "done"}) == {str(done.pk)}
    assert ids({"bucket": str(uuid.uuid4())}) == set()


def test_it_filters_the_audit_log(tenant, key_client):
    actor = services.Actor.system("filter-test")
    with scope(tenant=tenant):
        account = make_account(tenant)
        old = AuditEvent.objects.create(  # append-only: made old, not aged
            tenant=tenant,
            actor_label="filter-test",
            action="member.add",
            target_type="linked_accounts.awsaccount",
            target_id=str(account.pk),
            target_repr=str(account),
            created_at=timezone.now() - timedelta(days=3),
        )
        new = services.record(tenant, actor, "account.verify", target=account)
    viewer = key_client(tenant, Role.VIEWER)

    def ids(query):
        response = viewer.get("/api/v1/audit-events/", query)
        assert response.status_code == 200, response.content
        return {event["id"] for event in response.json()["results"]}

    assert ids({"action": "member."}) >= {str(old.pk)}
    assert str(new.pk) not in ids({"action": "member."})
    assert ids({"actor": "FILTER-TEST"}) == {str(old.pk), str(new.pk)}
    assert ids({"target": str(account.pk)}) == {str(old.pk), str(new.pk)}
    assert ids({"target": account.account_id}) == {str(old.pk), str(new.pk)}  # a part of its name
    assert ids({"target": str(account.pk)[:8]}) == set()  # an id is matched whole
    day_ago = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids({"actor": "filter-test", "since": day_ago}) == {str(new.pk)}
    assert ids({"actor": "filter-test", "before": day_ago}) == {str(old.pk)}


def test_the_filtered_audit_list_costs_a_fixed_number_of_queries(
    tenant, key_client, django_assert_max_num_queries
):
    admin = key_client(tenant, Role.ADMIN)
    for n in range(6):
        admin.post("/api/v1/members/", {"email": f"f{n}@example.com", "role": "viewer"}, format="json")
    with django_assert_max_num_queries(4):
        response = admin.get("/api/v1/audit-events/", {"action": "member.", "since": "2000-01-01T00:00:00Z"})
    assert len(response.json()["results"]) == 6


FILTERS = {
    "/api/v1/results/": {
        "verdict": {"type": "string"},
        "bucket": {"type": "string", "format": "uuid"},
        "key": {"type": "string"},
        "key_prefix": {"type": "string"},
        "since": {"type": "string", "format": "date-time"},
        "state": {"type": "string"},
    },
    "/api/v1/jobs/": {"bucket": {"type": "string", "format": "uuid"}, "status": {"type": "string"}},
    "/api/v1/buckets/": {"account": {"type": "string", "format": "uuid"}},
    "/api/v1/audit-events/": {
        "action": {"type": "string"},
        "actor": {"type": "string"},
        "target": {"type": "string"},
        "since": {"type": "string", "format": "date-time"},
        "before": {"type": "string", "format": "date-time"},
    },
}


def test_the_schema_documents_every_list_filter(tenant, key_client):
    schema = key_client(tenant).get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    for path, filters in FILTERS.items():
        parameters = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"] if p["in"] == "query"}
        for name, expected in filters.items():
            assert name in parameters, (path, name)
            assert not parameters[name].get("required", False), (path, name)
            assert expected.items() <= parameters[name]["schema"].items(), (path, name)
            assert parameters[name].get("description"), (path, name)
    results = {p["name"]: p for p in schema["paths"]["/api/v1/results/"]["get"]["parameters"]}
    assert results["verdict"]["schema"]["enum"] == sorted(
        ["Clean", "Infected", "Unscannable", "Error", "InfectedAllowed"]
    )
    assert results["state"]["schema"]["enum"] == ["open", "resolved"]
    jobs = {p["name"]: p for p in schema["paths"]["/api/v1/jobs/"]["get"]["parameters"]}
    assert set(jobs["status"]["schema"]["enum"]) == {s.value for s in JobStatus}


def test_a_detail_route_documents_no_list_filter(tenant, key_client):
    schema = key_client(tenant).get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    detail = schema["paths"]["/api/v1/results/{id}/"]["get"]
    assert {p["name"] for p in detail.get("parameters", []) if p["in"] == "query"} == set()


@pytest.mark.parametrize(
    "path, param", [("results", "bucket"), ("jobs", "bucket"), ("buckets", "account")], ids=str
)
def test_a_filter_naming_another_tenants_row_finds_nothing_of_either_tenant(
    tenant, outsider_tenant, key_client, path, param
):
    # A filter value is only ever matched inside the caller's rows: another tenant's id is no way in
    # (neither its rows nor a 500), and it hides the caller's own rows like any id that is not theirs.
    with scope(tenant=outsider_tenant):
        theirs = make_bucket_row(outsider_tenant)
        make_result(outsider_tenant, theirs, "their.txt", scanned_at=timezone.now())
        make_job(outsider_tenant, theirs, status="done")
    with scope(tenant=tenant):
        mine = make_bucket_row(tenant)
        make_result(tenant, mine, "mine.txt", scanned_at=timezone.now())
        make_job(tenant, mine, status="done")
    value = theirs.account_id if param == "account" else theirs.pk
    client = key_client(tenant, Role.VIEWER)
    assert len(client.get(f"/api/v1/{path}/").json()["results"]) == 1  # the caller's own row is listed
    response = client.get(f"/api/v1/{path}/", {param: str(value)})
    assert response.status_code == 200, response.content
    assert response.json()["results"] == []

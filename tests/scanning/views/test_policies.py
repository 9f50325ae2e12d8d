"""The Policies pages (Settings): list with a plain-language summary, create, edit, delete; the model's
rules answered next to their fields; roles, outsiders, query counts."""

from __future__ import annotations

import pytest
from django_scopes import scope

from accounts.models import AuditEvent, Role
from scanning.models import Bucket, ScanPolicy
from scanning.views.policies import summary
from tests import factories

pytestmark = pytest.mark.django_db


def _body(response) -> str:
    return response.content.decode()


def _policy(tenant, **fields):
    with scope(tenant=tenant):
        return factories.make_policy(tenant, **fields)


def _form(**overrides):
    fields = {
        "name": "Quarantine infected",
        "include_patterns": "",
        "exclude_patterns": "",
        "max_object_size": "1000000",
        "on_infected": "keep",
        "on_unscannable": "keep",
        "on_error": "keep",
        "quarantine_bucket": "",
        "quarantine_prefix": "quarantine/",
        "tag_objects": "on",
        "tag_result_key": "scan-result",
        "tag_date_key": "date-scanned",
        "tag_virus_key": "virus-name",
        "tag_message_key": "message",
        "promote_to_bucket": "",
        "promote_prefix": "",
        "rescan_days_on_signature_change": "0",
    }
    fields.update(overrides)
    return fields


def test_the_summary_says_what_the_policy_does(tenant, bucket_row):
    production = bucket_row(tenant, name="production-bucket")
    policy = _policy(
        tenant,
        name="Two buckets",
        on_infected="quarantine",
        quarantine_bucket="quarantine-bucket",
        on_unscannable="quarantine",
        include_patterns=["uploads/*"],
        exclude_patterns=["*.tmp"],
        promote_to_bucket=production,
        promote_prefix="clean/",
        delete_staging_after_promote=True,
        rescan_days_on_signature_change=7,
        scan_bucket_on_infected=True,
        max_object_size=100 * 1024 * 1024,
    )
    lines = summary(policy)
    assert lines == [
        "Scans objects whose keys match uploads/*, except keys matching *.tmp; objects larger than "
        "100.0\xa0MB are not scanned and count as Unscannable.",
        "Infected files are tagged scan-result=Infected and moved to the quarantine bucket "
        "quarantine-bucket under quarantine/.",
        "Clean files are tagged scan-result=Clean and copied to bucket production-bucket under clean/; "
        "the original is deleted once the copy is verified.",
        "Unscannable files are tagged scan-result=Unscannable and moved to the quarantine bucket "
        "quarantine-bucket under quarantine/; they are always reported as findings.",
        "Error files are tagged scan-result=Error and left where they are; they are always reported "
        "as findings.",
        "When the virus signatures change, objects of protected buckets modified in the last 7 days are "
        "scanned again.",
        "When malware is found, the rest of the bucket's unscanned objects are scanned too.",
    ]
    keep = summary(ScanPolicy(tenant=tenant, name="x", tag_objects=False, on_infected="delete"))
    assert keep[1] == "Infected files are not tagged, then the infected version is deleted."
    assert keep[2] == "Clean files are not tagged."


def test_the_list_shows_each_policy_with_its_summary_and_buckets(tenant, session_client, bucket_row):
    policy = _policy(tenant, name="Move them", on_infected="quarantine", quarantine_bucket="q-bucket")
    bucket_row(tenant, policy=policy)
    page = _body(session_client(tenant, Role.VIEWER).get("/settings/policies/"))
    assert "Move them" in page
    assert "moved to the quarantine bucket q-bucket under quarantine/" in page
    assert "Used by 1 bucket." in page
    assert "New policy" not in page  # a viewer reads, an admin writes


def test_an_admin_creates_a_policy(tenant, session_client):
    client = session_client(tenant, Role.ADMIN)
    response = client.post(
        "/settings/policies/new",
        _form(
            on_infected="quarantine", quarantine_bucket="q-bucket", include_patterns="*.pdf\n\n uploads/* \n"
        ),
    )
    assert response.status_code == 302
    with scope(tenant=tenant):
        policy = ScanPolicy.objects.get(tenant=tenant, name="Quarantine infected")
        assert AuditEvent.objects.filter(tenant=tenant, action="policy.create").exists()
    assert policy.include_patterns == ["*.pdf", "uploads/*"]
    assert policy.quarantine_bucket == "q-bucket" and policy.max_object_size == 1_000_000
    assert response["Location"] == f"/settings/policies/{policy.pk}/"
    page = _body(client.get(response["Location"]))
    assert "What it does" in page and "moved to the quarantine bucket q-bucket" in page


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"on_infected": "quarantine"},
            "quarantine_bucket",
            "Name the bucket that quarantined objects move to.",
        ),
        ({"quarantine_bucket": "Not A Bucket"}, "quarantine_bucket", "Not an S3 bucket name"),
        ({"tag_date_key": "scan-result"}, "tag_result_key", "The four tag keys must differ."),
        ({"max_object_size": "0"}, "max_object_size", "greater than or equal to 1"),
        (
            {"max_object_size": "99999999999999"},
            "max_object_size",
            "The engine on this deployment accepts at most",
        ),
        (
            {"rescan_days_on_signature_change": "5000"},
            "rescan_days_on_signature_change",
            "less than or equal to 3650",
        ),
        ({"on_infected": "explode"}, "on_infected", "Select a valid choice"),
        ({"name": ""}, "name", "This field is required."),
        ({"include_patterns": "\n".join(["*"] * 101)}, "include_patterns", "At most 100 patterns."),
    ],
)
def test_a_bad_policy_is_answered_next_to_the_field(tenant, session_client, overrides, field, message):
    response = session_client(tenant, Role.ADMIN).post("/settings/policies/new", _form(**overrides))
    assert response.status_code == 200
    assert any(message in e for e in response.context["form"].errors[field]), response.context["form"].errors
    with scope(tenant=tenant):
        assert not ScanPolicy.objects.filter(tenant=tenant).exists()


def test_a_quarantine_bucket_s3av_protects_is_refused(tenant, session_client, bucket_row):
    bucket_row(tenant, name="protected-bucket", protected=True)
    response = session_client(tenant, Role.ADMIN).post(
        "/settings/policies/new", _form(on_infected="quarantine", quarantine_bucket="protected-bucket")
    )
    assert response.status_code == 200
    assert any("is a protected bucket" in e for e in response.context["form"].errors["quarantine_bucket"])


def test_a_second_policy_of_the_same_name_is_refused(tenant, session_client):
    _policy(tenant, name="Quarantine infected")
    response = session_client(tenant, Role.ADMIN).post("/settings/policies/new", _form())
    assert response.status_code == 200
    assert "A policy with this name exists." in response.context["form"].errors["name"]


def test_another_tenants_bucket_cannot_be_the_promotion_target(
    tenant, outsider_tenant, session_client, bucket_row
):
    theirs = bucket_row(outsider_tenant, name="their-bucket")
    response = session_client(tenant, Role.ADMIN).post(
        "/settings/policies/new", _form(promote_to_bucket=str(theirs.pk))
    )
    assert response.status_code == 200 and response.context["form"].errors["promote_to_bucket"]
    assert "their-bucket" not in _body(response)


def test_an_admin_edits_a_policy(tenant, session_client):
    policy = _policy(tenant, name="Old name")
    client = session_client(tenant, Role.ADMIN)
    page = _body(client.get(f"/settings/policies/{policy.pk}/"))
    assert 'value="Old name"' in page
    response = client.post(
        f"/settings/policies/{policy.pk}/",
        _form(name="New name", on_infected="delete", max_object_size=str(policy.max_object_size)),
    )
    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.name == "New name" and policy.on_infected == "delete"
    with scope(tenant=tenant):
        event = AuditEvent.objects.filter(tenant=tenant, action="policy.update").get()
    assert event.details["after"]["on_infected"] == "delete"
    assert "max_object_size" not in event.details["after"]  # only what changed


def test_an_admin_deletes_a_policy_after_confirming_and_its_buckets_fall_back(
    tenant, session_client, bucket_row
):
    policy = _policy(tenant, name="Going")
    bucket = bucket_row(tenant, name="user-bucket", policy=policy)
    client = session_client(tenant, Role.ADMIN)
    confirm = _body(client.get(f"/settings/policies/{policy.pk}/delete"))
    assert "Delete policy Going?" in confirm and "user-bucket" in confirm and "default policy" in confirm
    assert client.post(f"/settings/policies/{policy.pk}/delete").status_code == 302
    with scope(tenant=tenant):
        assert not ScanPolicy.objects.filter(pk=policy.pk).exists()
        assert Bucket.objects.get(pk=bucket.pk).policy_id is None


def test_the_list_costs_the_same_queries_for_one_policy_or_many(
    tenant, session_client, bucket_row, queries_of
):
    client = session_client(tenant, Role.VIEWER)
    target = bucket_row(tenant)
    _policy(tenant, name="p0", promote_to_bucket=target)
    client.get("/settings/policies/")
    one = queries_of(client, "/settings/policies/")
    for n in range(1, 20):
        policy = _policy(tenant, name=f"p{n}", promote_to_bucket=bucket_row(tenant))
        bucket_row(tenant, policy=policy)
    assert queries_of(client, "/settings/policies/") == one


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_only_an_admin_writes_policies(tenant, session_client, role):
    policy = _policy(tenant, name="Keep")
    client = session_client(tenant, role)
    main = _body(client.get(f"/settings/policies/{policy.pk}/")).split("<main", 1)[1]
    assert "<form" not in main
    assert client.get("/settings/policies/new").status_code == 403
    assert client.post("/settings/policies/new", _form(name="Sneaky")).status_code == 403
    assert client.post(f"/settings/policies/{policy.pk}/", _form(name="Renamed")).status_code == 403
    assert client.post(f"/settings/policies/{policy.pk}/delete").status_code == 403
    policy.refresh_from_db()
    assert policy.name == "Keep"


@pytest.mark.parametrize(
    ("method", "path"), [("get", ""), ("post", ""), ("get", "delete"), ("post", "delete")]
)
def test_another_tenants_policy_is_not_found(tenant, outsider_tenant, session_client, method, path):
    theirs = _policy(outsider_tenant, name="Their secret policy")
    response = getattr(session_client(tenant, Role.ADMIN), method)(
        f"/settings/policies/{theirs.pk}/{path}", _form()
    )
    assert response.status_code == 404
    assert "Their secret policy" not in _body(response)
    with scope(tenant=outsider_tenant):
        assert ScanPolicy.objects.filter(pk=theirs.pk).exists()

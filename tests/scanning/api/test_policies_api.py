import pytest
from django_scopes import scope

from accounts.models import AuditEvent, Role
from scanning.models import ScanPolicy

pytestmark = pytest.mark.django_db


def test_it_creates_a_policy_and_audits(tenant, key_client):
    response = key_client(tenant, Role.ADMIN).post(
        "/api/v1/policies/",
        {
            "name": "strict",
            "on_infected": "quarantine",
            "quarantine_bucket": "q-bucket",
            "exclude_patterns": ["*.log"],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["quarantine_prefix"] == "quarantine/"
    with scope(tenant=tenant):
        assert ScanPolicy.objects.get(pk=response.json()["id"]).tenant == tenant
        assert AuditEvent.objects.filter(tenant=tenant, action="policy.create").exists()


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"name": "q", "on_infected": "quarantine"}, "quarantine_bucket"),
        (
            {"name": "q", "on_infected": "quarantine", "quarantine_bucket": "Not A Bucket!"},
            "quarantine_bucket",
        ),
        ({"name": "x", "on_infected": "explode"}, "on_infected"),
        ({"name": "x", "max_object_size": 0}, "max_object_size"),
        ({"name": "x", "max_object_size": 10**13}, "max_object_size"),
        ({"name": "x", "tag_virus_key": "scan-result"}, "tag_result_key"),
        ({"name": "x", "exclude_patterns": "*.log"}, "exclude_patterns"),
        ({"name": "x", "include_patterns": ["*"] * 101}, "include_patterns"),
        ({}, "name"),
    ],
)
def test_it_rejects_bad_policies_with_field_errors(tenant, key_client, payload, field):
    response = key_client(tenant, Role.ADMIN).post("/api/v1/policies/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_it_refuses_a_duplicate_name(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    admin.post("/api/v1/policies/", {"name": "p"}, format="json")
    assert admin.post("/api/v1/policies/", {"name": "p"}, format="json").status_code == 400


def test_it_updates_and_deletes(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    created = admin.post("/api/v1/policies/", {"name": "p"}, format="json").json()
    patched = admin.patch(f"/api/v1/policies/{created['id']}", {"on_infected": "delete"}, format="json")
    assert patched.json()["on_infected"] == "delete"
    assert admin.delete(f"/api/v1/policies/{created['id']}").status_code == 204
    assert admin.get(f"/api/v1/policies/{created['id']}").status_code == 404


def test_patching_to_quarantine_needs_a_bucket(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    created = admin.post("/api/v1/policies/", {"name": "p"}, format="json").json()
    response = admin.patch(f"/api/v1/policies/{created['id']}", {"on_error": "quarantine"}, format="json")
    assert response.status_code == 400
    assert "quarantine_bucket" in response.json()


def test_an_operator_reads_but_cannot_change_policies(tenant, key_client):
    operator = key_client(tenant, Role.OPERATOR)
    assert operator.get("/api/v1/policies/").status_code == 200
    assert operator.post("/api/v1/policies/", {"name": "p"}, format="json").status_code == 403


def test_the_policy_list_costs_a_fixed_number_of_queries(tenant, key_client, django_assert_max_num_queries):
    admin = key_client(tenant, Role.ADMIN)
    for n in range(5):
        admin.post("/api/v1/policies/", {"name": f"p{n}"}, format="json")
    with django_assert_max_num_queries(4):
        assert len(admin.get("/api/v1/policies/").json()["results"]) == 5


def test_a_policy_promotes_only_to_a_bucket_of_its_tenant(
    tenant, outsider_tenant, key_client, make_linked_bucket
):
    mine = make_linked_bucket(tenant)
    theirs = make_linked_bucket(outsider_tenant)
    admin = key_client(tenant, Role.ADMIN)
    refused = admin.post(
        "/api/v1/policies/", {"name": "p", "promote_to_bucket": str(theirs.pk)}, format="json"
    )
    assert refused.status_code == 400
    assert "promote_to_bucket" in refused.json()
    accepted = admin.post(
        "/api/v1/policies/",
        {
            "name": "p",
            "promote_to_bucket": str(mine.pk),
            "promote_prefix": "clean/",
            "scan_bucket_on_infected": True,
        },
        format="json",
    )
    assert accepted.status_code == 201, accepted.json()
    assert accepted.json()["promote_to_bucket"] == str(mine.pk)


# --- issue 8: a quarantine bucket s3av scans would quarantine its own copies in a loop -------------


def _bucket_row(tenant, **fields):
    from tests.factories import make_bucket_row

    with scope(tenant=tenant):
        return make_bucket_row(tenant, **fields)


def test_a_protected_bucket_cannot_be_a_quarantine_bucket(tenant, outsider_tenant, key_client):
    protected = _bucket_row(tenant, protected=True)
    admin = key_client(tenant, Role.ADMIN)
    payload = {"name": "q", "on_infected": "quarantine", "quarantine_bucket": protected.name}
    response = admin.post("/api/v1/policies/", payload, format="json")
    assert response.status_code == 400
    assert "protected" in response.json()["quarantine_bucket"][0]
    created = admin.post("/api/v1/policies/", {**payload, "quarantine_bucket": "q-elsewhere"}, format="json")
    assert created.status_code == 201
    patched = admin.patch(
        f"/api/v1/policies/{created.json()['id']}", {"quarantine_bucket": protected.name}, format="json"
    )
    assert patched.status_code == 400 and "quarantine_bucket" in patched.json()
    # Another tenant's protected bucket of the same name says nothing about this tenant.
    theirs = _bucket_row(outsider_tenant, protected=True)
    assert (
        admin.post(
            "/api/v1/policies/", {**payload, "name": "t", "quarantine_bucket": theirs.name}, format="json"
        ).status_code
        == 201
    )


def test_a_policy_cannot_quarantine_into_a_bucket_it_applies_to(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    created = admin.post("/api/v1/policies/", {"name": "p"}, format="json").json()
    with scope(tenant=tenant):
        source = _bucket_row(tenant, policy=ScanPolicy.objects.get(pk=created["id"]))
    response = admin.patch(
        f"/api/v1/policies/{created['id']}",
        {"on_infected": "quarantine", "quarantine_bucket": source.name},
        format="json",
    )
    assert response.status_code == 400
    assert "itself" in response.json()["quarantine_bucket"][0]


def test_the_default_policy_cannot_quarantine_into_a_bucket_without_a_policy(tenant, key_client):
    with scope(tenant=tenant):
        default = ScanPolicy.default_for(tenant)
    source = _bucket_row(tenant)  # no policy of its own: the default applies
    response = key_client(tenant, Role.ADMIN).patch(
        f"/api/v1/policies/{default.pk}",
        {"on_infected": "quarantine", "quarantine_bucket": source.name},
        format="json",
    )
    assert response.status_code == 400
    assert "quarantine_bucket" in response.json()


def test_a_policy_cannot_be_attached_to_its_own_quarantine_bucket(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    target = _bucket_row(tenant)
    policy = admin.post(
        "/api/v1/policies/",
        {"name": "p", "on_infected": "quarantine", "quarantine_bucket": target.name},
        format="json",
    ).json()
    response = admin.patch(f"/api/v1/buckets/{target.pk}", {"policy": policy["id"]}, format="json")
    assert response.status_code == 400
    assert "itself" in response.json()["policy"][0]
    with scope(tenant=tenant):
        target.refresh_from_db()
    assert target.policy_id is None


def test_a_policys_quarantine_bucket_cannot_be_protected(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    target = _bucket_row(tenant)
    admin.post(
        "/api/v1/policies/",
        {"name": "strict", "on_infected": "quarantine", "quarantine_bucket": target.name},
        format="json",
    )
    response = admin.post(f"/api/v1/buckets/{target.pk}/protect")
    assert response.status_code == 400
    assert "quarantine bucket of policy 'strict'" in response.json()["non_field_errors"][0]
    with scope(tenant=tenant):
        target.refresh_from_db()
    assert target.protected is False and target.protection == {}


# --- writes and their audit events commit together, with validated values ------------------------------


def test_a_nul_character_in_a_policy_change_is_refused_before_anything_is_saved(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    created = admin.post("/api/v1/policies/", {"name": "p"}, format="json").json()
    response = admin.patch(
        f"/api/v1/policies/{created['id']}", {"on_infected": "delete", "note\u0000": "x"}, format="json"
    )
    assert response.status_code == 400
    with scope(tenant=tenant):
        assert ScanPolicy.objects.get(pk=created["id"]).on_infected == "keep"
        assert not AuditEvent.objects.filter(tenant=tenant, action="policy.update").exists()


def test_the_audit_event_of_a_policy_change_records_validated_values(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    created = admin.post("/api/v1/policies/", {"name": "p"}, format="json").json()
    response = admin.patch(
        f"/api/v1/policies/{created['id']}",
        {"on_infected": "delete", "rescan_days_on_signature_change": "7", "unknown": "junk"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    with scope(tenant=tenant):
        event = AuditEvent.objects.get(tenant=tenant, action="policy.update")
    assert event.details == {
        "before": {"on_infected": "keep", "rescan_days_on_signature_change": 0},
        "after": {"on_infected": "delete", "rescan_days_on_signature_change": 7},
    }


def test_a_failed_audit_write_leaves_the_policy_unchanged(tenant, key_client, monkeypatch):
    admin = key_client(tenant, Role.ADMIN)
    created = admin.post("/api/v1/policies/", {"name": "p"}, format="json").json()

    def audit_fails(*args, **kwargs):
        raise RuntimeError("the audit log is unavailable")

    monkeypatch.setattr("scanning.policies.services.record", audit_fails)
    response = admin.patch(f"/api/v1/policies/{created['id']}", {"on_infected": "delete"}, format="json")
    assert response.status_code == 500
    with scope(tenant=tenant):
        assert ScanPolicy.objects.get(pk=created["id"]).on_infected == "keep"


@pytest.mark.parametrize("days, ok", [(0, True), (3650, True), (3651, False), (10**6, False), (-1, False)])
def test_rescan_days_are_bounded(tenant, key_client, days, ok):
    response = key_client(tenant, Role.ADMIN).post(
        "/api/v1/policies/", {"name": "p", "rescan_days_on_signature_change": days}, format="json"
    )
    assert response.status_code == (201 if ok else 400), response.json()
    if not ok:
        assert "rescan_days_on_signature_change" in response.json()


def test_the_schema_documents_the_policy_bounds(tenant, key_client, settings):
    schema = key_client(tenant, Role.VIEWER).get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    fields = schema["components"]["schemas"]["ScanPolicyRequest"]["properties"]
    assert fields["rescan_days_on_signature_change"]["maximum"] == 3650
    assert fields["max_object_size"]["maximum"] == settings.MAX_OBJECT_SIZE
    assert fields["include_patterns"]["maxItems"] == 100

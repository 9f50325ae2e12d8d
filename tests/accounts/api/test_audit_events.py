import pytest

from accounts.models import Role

pytestmark = pytest.mark.django_db


def test_it_lists_the_tenants_audit_events_newest_first(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    admin.post("/api/v1/members/", {"email": "x@example.com", "role": "viewer"}, format="json")
    events = admin.get("/api/v1/audit-events/").json()["results"]
    actions = [e["action"] for e in events]
    assert actions[0] == "member.add"
    assert "tenant.create" in actions
    assert events[0]["actor"].startswith("api-key:")


def test_it_shows_no_other_tenants_events(tenant, outsider_tenant, key_client):
    key_client(outsider_tenant, Role.ADMIN).post(
        "/api/v1/members/", {"email": "y@example.com", "role": "viewer"}, format="json"
    )
    events = key_client(tenant, Role.VIEWER).get("/api/v1/audit-events/").json()["results"]
    assert all("y@example.com" not in str(e["details"]) for e in events)


def test_it_pages_with_a_cursor(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    for n in range(5):
        admin.post("/api/v1/members/", {"email": f"p{n}@example.com", "role": "viewer"}, format="json")
    first = admin.get("/api/v1/audit-events/?page_size=3").json()
    assert len(first["results"]) == 3
    assert first["next"]
    second = admin.get(first["next"]).json()
    assert {e["id"] for e in first["results"]}.isdisjoint({e["id"] for e in second["results"]})


def test_the_audit_list_costs_a_fixed_number_of_queries(tenant, key_client, django_assert_max_num_queries):
    admin = key_client(tenant, Role.ADMIN)
    for n in range(6):
        admin.post("/api/v1/members/", {"email": f"q{n}@example.com", "role": "viewer"}, format="json")
    with django_assert_max_num_queries(4):
        admin.get("/api/v1/audit-events/")

import pytest
from django_scopes import scope

from accounts.models import AuditEvent, Membership, Role

pytestmark = pytest.mark.django_db


def test_it_adds_a_member_by_email(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    response = admin.post("/api/v1/members/", {"email": "New@Example.com", "role": "operator"}, format="json")
    assert response.status_code == 201
    assert response.json()["email"] == "new@example.com"
    assert response.json()["role"] == "operator"
    with scope(tenant=tenant):
        event = AuditEvent.objects.get(tenant=tenant, action="member.add")
    assert event.details["email"] == "new@example.com"


def test_it_refuses_a_duplicate_member(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    admin.post("/api/v1/members/", {"email": "a@example.com", "role": "viewer"}, format="json")
    response = admin.post("/api/v1/members/", {"email": "a@example.com", "role": "viewer"}, format="json")
    assert response.status_code == 400
    assert "email" in response.json()


def test_it_changes_a_role(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    created = admin.post(
        "/api/v1/members/", {"email": "b@example.com", "role": "viewer"}, format="json"
    ).json()
    response = admin.patch(f"/api/v1/members/{created['id']}", {"role": "admin"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "admin"


def test_it_keeps_the_last_admin(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    with scope(tenant=tenant):
        only_admin = Membership.objects.get(tenant=tenant, role=Role.ADMIN)
    response = admin.patch(f"/api/v1/members/{only_admin.pk}", {"role": "viewer"}, format="json")
    assert response.status_code == 400
    assert admin.delete(f"/api/v1/members/{only_admin.pk}").status_code == 400


def test_it_removes_a_member(tenant, key_client):
    admin = key_client(tenant, Role.ADMIN)
    created = admin.post(
        "/api/v1/members/", {"email": "c@example.com", "role": "viewer"}, format="json"
    ).json()
    assert admin.delete(f"/api/v1/members/{created['id']}").status_code == 204
    assert admin.get(f"/api/v1/members/{created['id']}").status_code == 404


def test_a_viewer_reads_members_but_cannot_change_them(tenant, key_client):
    viewer = key_client(tenant, Role.VIEWER)
    assert viewer.get("/api/v1/members/").status_code == 200
    response = viewer.post("/api/v1/members/", {"email": "d@example.com", "role": "viewer"}, format="json")
    assert response.status_code == 403


def test_it_hides_other_tenants_members(tenant, outsider_tenant, key_client):
    mine = key_client(tenant, Role.ADMIN)
    with scope(tenant=outsider_tenant):
        theirs = Membership.objects.get(tenant=outsider_tenant)
    emails = [m["email"] for m in mine.get("/api/v1/members/").json()["results"]]
    assert theirs.user.email not in emails
    assert mine.get(f"/api/v1/members/{theirs.pk}").status_code == 404
    assert mine.patch(f"/api/v1/members/{theirs.pk}", {"role": "none"}, format="json").status_code == 404
    assert mine.delete(f"/api/v1/members/{theirs.pk}").status_code == 404


def test_the_member_list_costs_a_fixed_number_of_queries(
    tenant, key_client, make_user, django_assert_max_num_queries
):
    admin = key_client(tenant, Role.ADMIN)
    for _ in range(8):
        make_user(tenant=tenant, role=Role.VIEWER)
    with django_assert_max_num_queries(4):
        response = admin.get("/api/v1/members/")
    assert len(response.json()["results"]) == 9


def test_an_over_long_email_is_a_field_error(tenant, key_client):
    email = "x" * 300 + "@example.com"
    response = key_client(tenant, Role.ADMIN).post(
        "/api/v1/members/", {"email": email, "role": "viewer"}, format="json"
    )
    assert response.status_code == 400
    assert "email" in response.json()


def _add(admin, email):
    response = admin.post("/api/v1/members/", {"email": email, "role": "viewer"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_adding_a_member_tells_nothing_about_an_account_elsewhere(
    tenant, outsider_tenant, key_client, make_user
):
    # The address has an account, with a name, in another tenant.
    make_user("known@example.com", tenant=outsider_tenant, name="Known Person")
    admin = key_client(tenant, Role.ADMIN)
    known = _add(admin, "Known@Example.com")
    fresh = _add(admin, "Fresh@Example.com")
    assert set(known) == set(fresh)
    assert (known["email"], known["name"]) == ("known@example.com", "")
    assert (fresh["email"], fresh["name"]) == ("fresh@example.com", "")
    listed = {m["email"]: m["name"] for m in admin.get("/api/v1/members/").json()["results"]}
    assert listed["known@example.com"] == ""
    with scope(tenant=tenant):
        events = AuditEvent.objects.filter(tenant=tenant, action="member.add").order_by("created_at")
        known_event, fresh_event = (e.details for e in events)
    assert set(known_event) == set(fresh_event) == {"email", "role"}


def test_a_members_name_shows_once_they_signed_in_after_joining(tenant, key_client, make_user):
    from django.utils import timezone

    user = make_user("named@example.com", tenant=tenant, name="Named Member")
    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])
    listed = {m["email"]: m["name"] for m in key_client(tenant).get("/api/v1/members/").json()["results"]}
    assert listed["named@example.com"] == "Named Member"

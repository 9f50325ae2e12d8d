"""The audit log page: the tenant's events only, filters, pagination with a count, fixed queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone
from django_scopes import scope

from accounts import services
from accounts.models import Role

pytestmark = pytest.mark.django_db


def _events(tenant, count, action="bucket.protect", actor="ops@example.com", when=None):
    with scope(tenant=tenant):
        for n in range(count):
            event = services.record(
                tenant, services.Actor.system(actor), action, tenant, {"n": n, "note": "<b>x</b>"}
            )
            if when is not None:
                # Events are append-only for code (the queryset refuses update()); a test still places
                # one in the past.
                with connection.cursor() as cursor:
                    cursor.execute(
                        "UPDATE accounts_auditevent SET created_at=%s WHERE id=%s", [when, event.pk]
                    )


def test_it_lists_only_the_tenants_events_newest_first(tenant, outsider_tenant, session_client):
    _events(tenant, 2, action="member.add")
    _events(outsider_tenant, 1, action="outsider.secret")
    body = session_client(tenant, Role.VIEWER).get("/audit/").content.decode()
    assert "<code>member.add</code>" in body
    assert "outsider.secret" not in body
    assert "&lt;b&gt;x&lt;/b&gt;" in body  # details are text, never markup
    assert " UTC</time>" in body


def test_it_filters_by_actor_action_target_and_dates(tenant, session_client):
    _events(tenant, 1, action="member.add", actor="alice@example.com")
    _events(tenant, 1, action="member.role", actor="bob@example.com")
    _events(tenant, 1, action="api_key.create", actor="alice@example.com", when="2025-03-10T12:00:00Z")
    viewer = session_client(tenant, Role.VIEWER)

    def actions(query):
        body = viewer.get(f"/audit/?{query}").content.decode()
        return sorted(
            a for a in ("member.add", "member.role", "api_key.create") if f"<code>{a}</code>" in body
        )

    assert actions("actor=alice") == ["api_key.create", "member.add"]
    assert actions("action=member.") == ["member.add", "member.role"]
    assert actions("action=member.role") == ["member.role"]
    assert actions("since=2025-03-10&until=2025-03-10") == ["api_key.create"]
    assert actions("until=2025-03-09") == []
    assert actions(f"target={tenant.name}") == ["api_key.create", "member.add", "member.role"]
    body = viewer.get("/audit/?actor=alice&action=member.").content.decode()
    assert "Actor: alice" in body and "Action: member." in body  # the active filters are shown


def test_bad_filters_are_field_errors(tenant, session_client):
    response = session_client(tenant, Role.VIEWER).get("/audit/?since=yesterday&until=2025-01-01&actor=%00")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Enter a valid date." in body and "Null characters are not allowed." in body
    reversed_range = session_client(tenant, Role.VIEWER).get("/audit/?since=2025-02-01&until=2025-01-01")
    assert "“To” is before “From”." in reversed_range.content.decode()


def test_it_paginates_with_a_count_and_keeps_the_filters(tenant, session_client):
    _events(tenant, 120)
    viewer = session_client(tenant, Role.VIEWER)
    first = viewer.get("/audit/?action=bucket.").content.decode()
    assert "Showing 1–50 of 120 events" in first
    assert 'href="?action=bucket.&amp;page=2"' in first
    last = viewer.get("/audit/?action=bucket.&page=3").content.decode()
    assert "Showing 101–120 of 120 events" in last
    assert viewer.get("/audit/?page=999").status_code == 200
    assert viewer.get("/audit/?page=nope").status_code == 200


def test_the_query_count_does_not_grow_with_rows(tenant, session_client, django_assert_max_num_queries):
    viewer = session_client(tenant, Role.VIEWER)
    _events(tenant, 3)
    with django_assert_max_num_queries(10) as few:
        viewer.get("/audit/")
    _events(tenant, 60)
    with django_assert_max_num_queries(len(few.captured_queries)):
        viewer.get("/audit/?actor=ops")


def test_a_member_without_a_role_is_refused(tenant, session_client):
    assert session_client(tenant, Role.NONE).get("/audit/").status_code == 403


def test_recent_events_show_up(tenant, session_client):
    admin = session_client(tenant, Role.ADMIN)
    admin.post("/settings/api-keys", {"name": "audited", "role": "viewer"})
    body = admin.get(f"/audit/?since={timezone.now().date():%Y-%m-%d}").content.decode()
    assert "<code>api_key.create</code>" in body and "audited" in body


def test_a_bad_filter_is_left_out_and_the_others_still_apply(tenant, session_client):
    _events(tenant, 3)
    viewer = session_client(tenant, Role.VIEWER)
    body = viewer.get("/audit/?since=2026-13-45&action=bucket.").content.decode()
    assert "Enter a valid date." in body
    assert "Showing 1–3 of 3 events" in body  # the bad date is not applied; the action filter is
    assert "Action: bucket." in body and "From:" not in body

"""Answers under /api/ are JSON whatever goes wrong, and NUL characters are a 400, never a 500."""

from __future__ import annotations

import pytest

from accounts.models import Role

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/policies/not-an-id/x", "/api/v2/", "/api/"])
def test_an_unknown_api_path_answers_json_404(tenant, key_client, settings, debug, path):
    settings.DEBUG = debug
    response = key_client(tenant).get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_an_unknown_method_answers_json_405(tenant, key_client):
    response = key_client(tenant).put("/api/v1/policies/", {}, format="json")
    assert response.status_code == 405
    assert "detail" in response.json()


def test_a_server_error_in_the_api_answers_json_500(tenant, key_client, monkeypatch, settings):
    settings.DEBUG = True  # not the debug page, not a traceback

    def broken(*args, **kwargs):
        raise RuntimeError("something broke")

    monkeypatch.setattr("accounts.api.views.MeView.get", broken)
    response = key_client(tenant).get("/api/v1/me")
    assert response.status_code == 500
    assert response.json() == {"detail": "Server error."}


NUL = "a\u0000b"


@pytest.mark.parametrize(
    "method, path, body, field",
    [
        ("post", "/api/v1/policies/", {"name": NUL}, "name"),
        (
            "post",
            "/api/v1/policies/",
            {"name": "p", "include_patterns": ["*.exe", NUL]},
            "include_patterns.1",
        ),
        ("post", "/api/v1/policies/", {"name": "p", NUL: 1}, "non_field_errors"),
        ("patch", "/api/v1/tenant", {"name": NUL}, "name"),
        ("patch", "/api/v1/tenant", {"allowed_cidrs": [NUL]}, "allowed_cidrs.0"),
        ("post", "/api/v1/members/", {"email": f"{NUL}@example.com", "role": "viewer"}, "email"),
        ("post", "/api/v1/api-keys/", {"name": NUL}, "name"),
        ("post", "/api/v1/channels/", {"name": NUL, "kind": "email"}, "name"),
        ("post", "/api/v1/accounts/", {"account_id": "123456789012", "name": NUL}, "name"),
        ("post", "/api/v1/scan/existing", {"bucket": NUL, "key": NUL}, "bucket"),
    ],
)
def test_a_nul_anywhere_in_a_body_is_a_field_error(tenant, key_client, method, path, body, field):
    response = getattr(key_client(tenant, Role.ADMIN), method)(path, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()


@pytest.mark.parametrize("query", ["key=a%00b", "key_prefix=%00", "verdict=%00", "cursor=%00", "a%00=1"])
def test_a_nul_in_a_query_parameter_is_a_400(tenant, key_client, query):
    response = key_client(tenant).get(f"/api/v1/results/?{query}")
    assert response.status_code == 400
    assert response.json()


@pytest.mark.parametrize("since", ["0235-01-17T20:33:07-20:43", "0001-01-01T00:00:00+23:00"])
def test_a_since_with_an_extreme_offset_is_a_filter_or_a_field_error(tenant, key_client, since):
    # The schema fuzzer's find: offsets past ±15:59 reached PostgreSQL, which refused them (500).
    response = key_client(tenant).get("/api/v1/results/", {"since": since})
    assert response.status_code in {200, 400}
    if response.status_code == 400:
        assert "since" in response.json()


# --- the schema and the API agree (schemathesis's positive-data check found these) -----------------------


@pytest.mark.parametrize("kind", ["members", "buckets", "accounts"])
def test_a_patch_without_fields_changes_nothing_as_the_schema_says(tenant, key_client, kind):
    from django_scopes import scope

    from tests.sweeps.test_isolation_sweep import OBJECT_FACTORIES

    with scope(tenant=tenant):
        object_id = OBJECT_FACTORIES[kind](tenant)
    admin = key_client(tenant, Role.ADMIN)
    before = admin.get(f"/api/v1/{kind}/{object_id}").json()
    response = admin.patch(f"/api/v1/{kind}/{object_id}", {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == before


def test_the_schema_states_the_patterns_the_api_checks(tenant, key_client):
    schema = key_client(tenant).get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]
    assert components["VerifyRequest"]["properties"]["role_arn"]["pattern"].startswith("^arn:")
    bucket = components["ScanPolicyRequest"]["properties"]["quarantine_bucket"]  # a name, or empty
    assert [alternative.get("pattern") for alternative in bucket["oneOf"]][0].startswith("^[a-z0-9]")
    for status in ("400", "401", "403", "404", "429"):
        assert status in schema["paths"]["/api/v1/policies/"]["post"]["responses"]


def test_a_bad_cursor_is_a_field_error_not_a_404(tenant, key_client):
    response = key_client(tenant, Role.VIEWER).get("/api/v1/accounts/?cursor=not-a-cursor")
    assert response.status_code == 400, response.content
    assert "cursor" in response.json()

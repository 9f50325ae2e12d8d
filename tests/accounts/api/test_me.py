import pytest

from accounts.models import Role

pytestmark = pytest.mark.django_db


def test_it_describes_an_api_key(tenant, key_client):
    client = key_client(tenant, Role.OPERATOR)
    body = client.get("/api/v1/me").json()
    assert body["kind"] == "api_key"
    assert body["role"] == "operator"
    assert body["tenant"]["slug"] == tenant.slug
    assert body["api_key"]["prefix"] == client.api_key.prefix


def test_it_describes_a_session_user(tenant, session_client):
    client = session_client(tenant, Role.VIEWER)
    body = client.get("/api/v1/me").json()
    assert body == {
        "kind": "user",
        "role": "viewer",
        "tenant": {"id": str(tenant.pk), "name": tenant.name, "slug": tenant.slug},
        "user": {"id": str(client.user.pk), "email": client.user.email},
    }


def test_it_lets_a_member_without_role_see_only_themselves(tenant, session_client):
    client = session_client(tenant, Role.NONE)
    assert client.get("/api/v1/me").json()["role"] == "none"
    assert client.get("/api/v1/tenant").status_code == 403
    assert client.get("/api/v1/members/").status_code == 403


def test_it_answers_401_without_credentials(client):
    response = client.get("/api/v1/me")
    assert response.status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer nonsense", "Bearer s3av_000000000000_wrong", "Bearer "],
)
def test_it_answers_401_for_a_bad_key(client, header):
    response = client.get("/api/v1/me", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


def test_the_schema_and_the_interactive_docs_are_served(client):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/results/" in schema.json()["paths"]
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()

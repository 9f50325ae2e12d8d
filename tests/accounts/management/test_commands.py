import io

import pytest
from django.core.management import CommandError, call_command
from django_scopes import scope
from rest_framework.test import APIClient

from accounts.models import Membership, Role, Tenant, User

pytestmark = pytest.mark.django_db


def _run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_tenant_prints_the_slug_and_sign_in(client):
    output = _run("create_tenant", "--name", "Acme Corp", "--admin-email", "Boss@Acme.test")
    lines = dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)
    tenant = Tenant.objects.get(slug=lines["tenant"])
    assert tenant.name == "Acme Corp"
    with scope(tenant=tenant):
        assert Membership.objects.get(tenant=tenant).role == Role.ADMIN
    assert client.login(username="boss@acme.test", password=lines["password"])


def test_create_api_key_prints_only_a_working_secret(tenant):
    output = _run("create_api_key", "--tenant", tenant.slug, "--role", "operator", "--name", "ci")
    secret = output.strip()
    assert "\n" not in secret
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/me").json()["role"] == "operator"


def test_create_api_key_names_an_unknown_tenant():
    with pytest.raises(CommandError, match="no-such"):
        _run("create_api_key", "--tenant", "no-such", "--role", "viewer", "--name", "x")


def test_the_portal_home_shows_the_tenant(client):
    output = _run("create_tenant", "--name", "Portal Org", "--admin-email", "p@portal.test")
    password = output.split("password: ")[1].strip()
    user = User.objects.get(email="p@portal.test")
    assert client.login(username=user.email, password=password)
    body = client.get("/").content.decode()
    assert "Portal Org" in body and "admin" in body


def test_switching_to_a_malformed_tenant_id_is_ignored(client, tenant, make_user):
    client.force_login(make_user(tenant=tenant, role=Role.VIEWER))
    response = client.post("/tenant/switch", {"tenant": "not-a-uuid"})
    assert response.status_code == 302

import pytest
from django_scopes import scope

from accounts.models import Role
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def bucket_of(make_linked_bucket):
    return make_linked_bucket


def test_the_buckets_page_shows_only_the_members_tenant(tenant, outsider_tenant, session_client, bucket_of):
    # The findings pages have their own tests: tests/scanning/views/.
    mine = bucket_of(tenant)
    theirs = bucket_of(outsider_tenant)
    client = session_client(tenant, Role.VIEWER)
    assert theirs.name not in client.get("/buckets/").content.decode()
    assert mine.name in client.get("/buckets/").content.decode()


def test_the_portal_needs_a_sign_in(client):
    assert client.get("/buckets/").status_code == 302


def test_the_scans_page_lists_only_the_tenants_jobs(tenant, outsider_tenant, session_client, bucket_of):

    mine, theirs = bucket_of(tenant), bucket_of(outsider_tenant)
    with scope(tenant=tenant):
        factories.make_job(tenant, mine, prefix="mine/", listed=7)
    with scope(tenant=outsider_tenant):
        factories.make_job(outsider_tenant, theirs, prefix="theirs/")
    body = session_client(tenant, Role.VIEWER).get("/jobs/").content.decode()
    assert f"s3://{mine.name}/mine/" in body
    assert theirs.name not in body

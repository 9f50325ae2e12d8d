import json

import pytest
from django_scopes import scope

from accounts.models import AuditEvent, Role
from scanning.buckets import read_gate
from scanning.models import ScanPolicy
from tests.factories import make_account, make_bucket_row, make_policy

pytestmark = pytest.mark.django_db


def _bucket(tenant, **fields):
    with scope(tenant=tenant):
        return make_bucket_row(tenant, **fields)


def _policy(tenant, name="strict"):
    with scope(tenant=tenant):
        return make_policy(tenant, name)


def test_it_lists_buckets_with_the_contract_fields(tenant, key_client):
    bucket = _bucket(tenant, region="eu-west-1")
    body = key_client(tenant, Role.VIEWER).get("/api/v1/buckets/").json()
    (shown,) = body["results"]
    assert shown["id"] == str(bucket.pk)
    assert shown["name"] == bucket.name and shown["region"] == "eu-west-1"
    assert shown["account"] == str(bucket.account_id)
    assert shown["protected"] is False and shown["policy"] is None and shown["missing"] is False
    assert set(body) >= {"next", "previous", "results"}


def test_it_filters_by_account(tenant, key_client):
    first, second = _bucket(tenant), _bucket(tenant)
    viewer = key_client(tenant, Role.VIEWER)
    names = [b["name"] for b in viewer.get(f"/api/v1/buckets/?account={first.account_id}").json()["results"]]
    assert names == [first.name]
    assert second.name not in names
    response = viewer.get("/api/v1/buckets/?account=not-a-uuid")
    assert response.status_code == 400 and response.json() == {"account": ["Not an account id."]}


def test_the_bucket_list_costs_a_fixed_number_of_queries(tenant, key_client, django_assert_max_num_queries):
    with scope(tenant=tenant):
        account = make_account(tenant)
        for _ in range(6):
            make_bucket_row(tenant, account)
    viewer = key_client(tenant, Role.VIEWER)
    with django_assert_max_num_queries(4):
        response = viewer.get("/api/v1/buckets/")
    assert len(response.json()["results"]) == 6


def test_it_sets_the_policy_of_a_bucket(tenant, key_client):
    bucket, policy = _bucket(tenant), _policy(tenant)
    admin = key_client(tenant, Role.ADMIN)
    response = admin.patch(f"/api/v1/buckets/{bucket.pk}", {"policy": str(policy.pk)}, format="json")
    assert response.status_code == 200 and response.json()["policy"] == str(policy.pk)
    response = admin.patch(f"/api/v1/buckets/{bucket.pk}", {"policy": None}, format="json")
    assert response.json()["policy"] is None
    with scope(tenant=tenant):
        assert AuditEvent.objects.filter(tenant=tenant, action="bucket.policy").count() == 2


def test_another_tenants_policy_is_a_400(tenant, outsider_tenant, key_client):
    bucket, theirs = _bucket(tenant), _policy(outsider_tenant)
    response = key_client(tenant, Role.ADMIN).patch(
        f"/api/v1/buckets/{bucket.pk}", {"policy": str(theirs.pk)}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"policy": ["No such policy."]}


def test_an_operator_protects_and_unprotects_through_the_api(
    tenant, key_client, moto_account, make_bucket, s3_client
):
    name = make_bucket()
    bucket = _bucket(tenant, account=moto_account, name=name)
    operator = key_client(tenant, Role.OPERATOR)
    response = operator.post(f"/api/v1/buckets/{bucket.pk}/protect")
    assert response.status_code == 200, response.content
    assert response.json()["protected"] is True
    assert s3_client.get_bucket_notification_configuration(Bucket=name)["QueueConfigurations"]
    response = operator.post(f"/api/v1/buckets/{bucket.pk}/unprotect")
    assert response.status_code == 200 and response.json()["protected"] is False
    assert "QueueConfigurations" not in s3_client.get_bucket_notification_configuration(Bucket=name)


def test_protecting_a_bucket_of_an_unverified_account_is_a_400_in_words(tenant, key_client):
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, make_account(tenant, connected=False))
    response = key_client(tenant, Role.OPERATOR).post(f"/api/v1/buckets/{bucket.pk}/protect")
    assert response.status_code == 400
    assert "Verify" in response.json()["non_field_errors"][0]


def test_the_read_gate_is_shown_to_viewers_and_applied_by_admins(
    tenant, key_client, moto_account, make_bucket, s3_client
):
    name = make_bucket()
    bucket = _bucket(tenant, account=moto_account, name=name)
    shown = key_client(tenant, Role.VIEWER).get(f"/api/v1/buckets/{bucket.pk}/read-gate").json()
    assert shown["statement"]["Sid"] == read_gate.SID
    assert shown["statement"]["Resource"] == f"arn:aws:s3:::{name}/*"
    with scope(tenant=tenant):
        assert not ScanPolicy.objects.filter(tenant=tenant, is_default=True).exists()  # GET wrote nothing
    assert key_client(tenant, Role.OPERATOR).post(f"/api/v1/buckets/{bucket.pk}/read-gate").status_code == 403
    response = key_client(tenant, Role.ADMIN).post(f"/api/v1/buckets/{bucket.pk}/read-gate")
    assert response.status_code == 200 and response.json()["applied"] is True
    policy = json.loads(s3_client.get_bucket_policy(Bucket=name)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == [
        read_gate.SID,
        read_gate.TAG_GUARD_SID,
        read_gate.COPY_GUARD_SID,
    ]
    guard = shown["statements"][1]
    assert guard["Condition"]["ForAnyValue:StringEquals"] == {"s3:RequestObjectTagKeys": ["scan-result"]}


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("patch", ""),
        ("post", "/protect"),
        ("post", "/unprotect"),
        ("get", "/read-gate"),
        ("post", "/read-gate"),
    ],
)
def test_another_tenant_gets_404(tenant, outsider_tenant, key_client, method, suffix):
    bucket = _bucket(tenant)
    outsider = key_client(outsider_tenant, Role.ADMIN)
    body = {"policy": None} if method != "get" else None
    response = getattr(outsider, method)(f"/api/v1/buckets/{bucket.pk}{suffix}", body, format="json")
    assert response.status_code == 404
    assert outsider.get("/api/v1/buckets/").json()["results"] == []


@pytest.mark.parametrize(
    ("role", "method", "suffix"),
    [
        (Role.VIEWER, "patch", ""),
        (Role.OPERATOR, "patch", ""),
        (Role.VIEWER, "post", "/protect"),
        (Role.VIEWER, "post", "/unprotect"),
        (Role.VIEWER, "post", "/read-gate"),
    ],
)
def test_a_role_too_low_gets_403(tenant, key_client, role, method, suffix):
    bucket = _bucket(tenant)
    response = getattr(key_client(tenant, role), method)(
        f"/api/v1/buckets/{bucket.pk}{suffix}", {"policy": None}, format="json"
    )
    assert response.status_code == 403

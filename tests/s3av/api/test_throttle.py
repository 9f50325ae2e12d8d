import pytest
from django.core.cache import cache

from accounts.models import Role
from s3av.api.throttling import TenantRateThrottle

pytestmark = pytest.mark.django_db


def test_it_answers_429_past_the_rate_per_key(tenant, key_client, monkeypatch):
    cache.clear()
    monkeypatch.setattr(TenantRateThrottle, "THROTTLE_RATES", {"tenant": "3/min"})
    first, second = key_client(tenant, Role.VIEWER), key_client(tenant, Role.VIEWER)
    codes = [first.get("/api/v1/me").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert second.get("/api/v1/me").status_code == 200  # the rate is per key
    cache.clear()

import pytest
from django_scopes import ScopeError, scope

from accounts.models import ApiKey, AuditEvent, Membership

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", [Membership, ApiKey, AuditEvent])
def test_an_unscoped_query_of_tenant_data_raises(model):
    with pytest.raises(ScopeError):
        list(model.objects.all())


def test_a_scoped_query_sees_only_its_tenant(tenant, outsider_tenant):
    with scope(tenant=tenant):
        owners = list(Membership.objects.all())
    assert {m.tenant_id for m in owners} == {tenant.pk}


def test_audit_events_are_append_only(tenant):
    with scope(tenant=tenant):
        event = AuditEvent.objects.filter(tenant=tenant).first()
        event.action = "rewritten"
        with pytest.raises(TypeError):
            event.save()
        with pytest.raises(TypeError):
            event.delete()
        with pytest.raises(TypeError):
            AuditEvent.objects.filter(tenant=tenant).update(action="x")
        with pytest.raises(TypeError):
            AuditEvent.objects.filter(tenant=tenant).delete()

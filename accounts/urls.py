from django.urls import path

from accounts.views import audit
from accounts.views import settings as settings_views

urlpatterns = [
    path("settings/", settings_views.overview, name="settings"),
    path("settings/members", settings_views.members, name="settings-members"),
    path(
        "settings/members/<uuid:membership_id>/role", settings_views.member_role, name="settings-member-role"
    ),
    path(
        "settings/members/<uuid:membership_id>/remove",
        settings_views.member_remove,
        name="settings-member-remove",
    ),
    path(
        "settings/members/<uuid:membership_id>/invite",
        settings_views.member_invite,
        name="settings-member-invite",
    ),
    path("settings/api-keys", settings_views.api_keys, name="settings-api-keys"),
    path(
        "settings/api-keys/<uuid:key_id>/revoke",
        settings_views.api_key_revoke,
        name="settings-api-key-revoke",
    ),
    path("settings/tenant", settings_views.tenant_settings, name="settings-tenant"),
    path("audit/", audit.audit_log, name="audit-log"),
]

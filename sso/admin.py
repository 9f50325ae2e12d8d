"""Support staff read SAML connections here; changes go through the tenant's API or SSO page (audited)."""

from __future__ import annotations

from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
from django.contrib import admin

from accounts.admin import ReadOnlyAdmin
from sso.models import SamlConnection


@admin.register(SamlConnection)
class SamlConnectionAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "preset", "idp_entity_id", "enabled", "allow_idp_initiated", "updated_at"]
    list_filter = ["preset", "enabled"]
    search_fields = ["tenant__name", "tenant__slug", "idp_entity_id"]
    list_select_related = ["tenant"]


# allauth's own admin pages would let staff link an IdP subject to any user or add SocialApps we never
# read (sso.adapter builds each tenant's app), unaudited: not offered.
for model in (SocialApp, SocialAccount, SocialToken):
    if admin.site.is_registered(model):
        admin.site.unregister(model)

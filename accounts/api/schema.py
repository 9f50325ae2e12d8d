"""Describe our authentication to drf-spectacular so the schema shows it."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "http", "scheme": "bearer", "description": "An s3av API key: `Bearer s3av_…`"}


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.auth.TenantSessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}

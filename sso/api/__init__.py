"""``/api/v1/sso``: the tenant's SAML configuration."""

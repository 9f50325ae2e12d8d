"""``/api/v1/`` for tenants and people: me, tenant, members, API keys, the audit log; the API's
authentication and role permission, and how the schema describes them."""

"""``/api/v1/`` for tenants and people: me, tenant, members, API keys, the audit log; the API's
authentication and role permission, and how the schema describes them."""

# The schema extensions register themselves on import. Here, not in AccountsConfig.ready: every process
# (the worker, the scheduler, `manage.py scan`) would otherwise import DRF and drf-spectacular at start-up
# (~0.12 s) without serving the API; s3av.urls imports this package before any schema is generated.
from accounts.api import schema  # noqa: E402, F401

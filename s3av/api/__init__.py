"""The API plumbing every app's ``api/`` package shares: the tenant-scoped base viewsets and the classes
``REST_FRAMEWORK`` names in settings (parser, pagination, throttle, exception handler, list filters)."""

"""``/api/v1/accounts/`` and ``/api/v1/organizations/``: linked AWS accounts and organisation links."""

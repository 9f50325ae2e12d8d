from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):
    """Site rules for sign-in. People join a tenant when an admin adds them; no self sign-up."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

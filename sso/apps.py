from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

TENANT_MIDDLEWARE = "accounts.middleware.TenantMiddleware"
SSO_MIDDLEWARE = "sso.middleware.SsoMiddleware"


def require_sso_wiring() -> None:
    """Refuse to start unless the settings wire SSO's rules in (fail closed).

    accounts imports nothing of sso: the password refusal where SSO is required and the session's
    binding to the IdP's tenant run only through ``ACCOUNT_ADAPTER``, and the ACS check and the SSO
    session's limits only through ``SsoMiddleware``. Without either, sign-in would still work, without
    those rules.
    """
    from sso.adapter import SsoAccountAdapter  # imports models: only once the app registry is ready

    adapter = import_string(settings.ACCOUNT_ADAPTER)
    if not (isinstance(adapter, type) and issubclass(adapter, SsoAccountAdapter)):
        raise ImproperlyConfigured(
            "With the sso app installed, ACCOUNT_ADAPTER must name sso.adapter.SsoAccountAdapter "
            "(or a subclass): it refuses password sign-in where SSO is required."
        )
    middleware = list(settings.MIDDLEWARE)
    if (
        SSO_MIDDLEWARE not in middleware
        or TENANT_MIDDLEWARE not in middleware
        or middleware.index(SSO_MIDDLEWARE) < middleware.index(TENANT_MIDDLEWARE)
    ):
        raise ImproperlyConfigured(
            f"With the sso app installed, MIDDLEWARE must list {SSO_MIDDLEWARE} after {TENANT_MIDDLEWARE}."
        )


class SsoConfig(AppConfig):
    name = "sso"
    verbose_name = "Single sign-on"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # In ready(), as Django wants start-up work: once per process, after the app registry is loaded.
        from onelogin.saml2.constants import OneLogin_Saml2_Constants

        from sso.presets import CLOCK_SKEW_SECONDS

        # python3-saml reads this class attribute at each check of NotBefore / NotOnOrAfter; its default
        # (300 s) is looser than we want.
        OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT = CLOCK_SKEW_SECONDS
        require_sso_wiring()

from django.apps import AppConfig


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

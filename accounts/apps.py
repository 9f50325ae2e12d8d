from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Tenants and people"
    default_auto_field = "django.db.models.BigAutoField"

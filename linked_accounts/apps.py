from django.apps import AppConfig


class LinkedAccountsConfig(AppConfig):
    name = "linked_accounts"
    # The Django admin's section heading for support staff.
    verbose_name = "Linked AWS accounts"
    default_auto_field = "django.db.models.BigAutoField"

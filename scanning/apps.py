from django.apps import AppConfig


class ScanningConfig(AppConfig):
    name = "scanning"
    # The Django admin's section heading for support staff.
    verbose_name = "Scanning"
    default_auto_field = "django.db.models.BigAutoField"

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class ScanningConfig(AppConfig):
    name = "scanning"
    # The Django admin's section heading for support staff.
    verbose_name = "Scanning"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The rooms that sit above the pipeline and linked_accounts hand their hooks in here, so that
        # every import points down (the contracts in pyproject.toml).
        from linked_accounts.signals import account_teardown
        from scanning.buckets import teardown
        from scanning.engine.clamd import ClamdClient
        from scanning.jobs import services as jobs
        from scanning.pipeline import services as pipeline

        # Refuse to start with an address the engine client would refuse (as bad settings are).
        for name, addresses in (
            ("S3AV_CLAMD", [settings.CLAMD_ADDRESS]),
            ("S3AV_SIGNATURES_CLAMDS", settings.SIGNATURES_CLAMDS),
        ):
            for address in addresses:
                try:
                    ClamdClient(address)
                except ValueError as exc:
                    raise ImproperlyConfigured(f"{name}: {exc}") from None
        pipeline.connect_job_hooks(jobs.JOB_HOOKS)
        account_teardown.connect(teardown.remove_account_protection, dispatch_uid="scanning.teardown")

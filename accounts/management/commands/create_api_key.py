from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from accounts import services
from accounts.models import Role, Tenant


class Command(BaseCommand):
    help = "Create an API key for a tenant and print only its secret."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--role", required=True, choices=[r.value for r in Role if r != Role.NONE])
        parser.add_argument("--name", required=True)
        parser.add_argument("--expires-days", type=int, default=None)

    def handle(self, *args: object, **options: object) -> None:
        with scopes_disabled():
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        expires = None
        if options["expires_days"] is not None:
            if int(options["expires_days"]) < 1:  # type: ignore[call-overload]
                raise CommandError("--expires-days must be at least 1.")
            expires = timezone.now() + timedelta(days=int(options["expires_days"]))  # type: ignore[call-overload]
        with scope(tenant=tenant):
            _, secret = services.create_api_key(
                tenant,
                services.Actor.system("cli:create_api_key"),
                str(options["name"]),
                str(options["role"]),
                expires,
            )
        self.stdout.write(secret)

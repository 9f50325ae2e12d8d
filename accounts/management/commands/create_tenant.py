import secrets

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services


class Command(BaseCommand):
    help = "Create a tenant and its first admin; prints the slug and how the admin signs in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--admin-email", required=True)
        parser.add_argument(
            "--admin-password",
            help="Initial password for a new admin user (default: a random one, printed once).",
        )

    def handle(self, *args: object, **options: str) -> None:
        password = options["admin_password"] or secrets.token_urlsafe(12)
        try:
            tenant, user, created = services.create_tenant(
                services.Actor.system("cli:create_tenant"), options["name"], options["admin_email"], password
            )
        except services.ServiceError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"tenant: {tenant.slug}")
        self.stdout.write(f"admin: {user.email}")
        self.stdout.write(f"sign in at {settings.PUBLIC_URL}/accounts/login/")
        if created:
            self.stdout.write(f"password: {password}")
        else:
            self.stdout.write("password: unchanged (the user already existed)")

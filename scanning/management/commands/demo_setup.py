"""Set up the demo: a tenant with an admin, a linked account on the local S3 endpoint, a protected
staging bucket with a quarantine policy, and sample uploads (clean files, EICAR, a ClamAV test file).

Idempotent: running it again reuses what exists. Meant for `make demo`, never for production.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_scopes import scope, scopes_disabled

from accounts import services as account_services
from accounts.models import Tenant, User
from linked_accounts import aws
from linked_accounts import services as link_services
from linked_accounts.models import AwsAccount
from scanning.buckets import discovery
from scanning.buckets.protection import protect_bucket, set_bucket_policy
from scanning.models import Bucket, ScanPolicy

DEMO_ACCOUNT = "123456789012"
UPLOADS = "demo-uploads"
QUARANTINE = "demo-quarantine"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLAM_ZIP = Path("/usr/share/clamav-testfiles/clam.zip")


class Command(BaseCommand):
    help = "Create the demo tenant, account, buckets and sample uploads on the local S3 endpoint."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", required=True, help="password for the demo admin and staff users")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.AWS_ENDPOINT_URL:
            raise CommandError("S3AV_AWS_ENDPOINT_URL must point at the local S3 endpoint for the demo.")
        password = options["password"]
        actor = account_services.Actor.system("demo_setup")
        with scopes_disabled():
            tenant = Tenant.objects.filter(slug="demo").first()
        if tenant is None:
            tenant, _, _ = account_services.create_tenant(actor, "Demo", "admin@demo.local", password)
            if tenant.slug != "demo":
                tenant.slug = "demo"
                tenant.save(update_fields=["slug"])
        if not User.objects.filter(email="staff@demo.local").exists():
            User.objects.create_superuser("staff@demo.local", password)

        s3 = aws.make_client("s3", endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION)
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        for name in (UPLOADS, QUARANTINE):
            if name not in existing:
                s3.create_bucket(Bucket=name)
        s3.put_bucket_versioning(Bucket=UPLOADS, VersioningConfiguration={"Status": "Enabled"})

        # Uploaded before protection: the first protection's bucket scan finds them; later uploads
        # are scanned from their S3 events.
        samples = {
            "incoming/readme.txt": b"Quarterly report: all numbers are fine.\n",
            "incoming/data/report 2026+final.csv": b"region,total\nnorth,10\nsouth,12\n",
            "incoming/eicar.com": EICAR,
        }
        if CLAM_ZIP.exists():
            samples["incoming/samples/clam.zip"] = CLAM_ZIP.read_bytes()
        for sample_key, body in samples.items():
            s3.put_object(Bucket=UPLOADS, Key=sample_key, Body=body)

        with scope(tenant=tenant):
            account = AwsAccount.objects.filter(tenant=tenant, account_id=DEMO_ACCOUNT).first()
            if account is None:
                account = link_services.link_account(tenant, actor, DEMO_ACCOUNT, "Demo account")
            link_services.verify_account(
                tenant, actor, account, f"arn:aws:iam::{DEMO_ACCOUNT}:role/s3av-scanner"
            )
            discovery.discover_buckets(tenant, actor, account)
            policy, _ = ScanPolicy.objects.get_or_create(
                tenant=tenant,
                name="Quarantine infected",
                defaults={"on_infected": "quarantine", "quarantine_bucket": QUARANTINE},
            )
            uploads = Bucket.objects.get(tenant=tenant, account=account, name=UPLOADS)
            set_bucket_policy(tenant, actor, uploads, policy)
            protect_bucket(tenant, actor, uploads)
            _, secret = account_services.create_api_key(
                tenant, actor, f"demo {uuid.uuid4().hex[:6]}", "admin"
            )

        self.stdout.write(f"tenant: {tenant.slug}")
        self.stdout.write(f"uploaded {len(samples)} sample objects to s3://{UPLOADS}/incoming/")
        self.stdout.write(f"api key: {secret}")

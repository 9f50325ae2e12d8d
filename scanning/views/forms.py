"""Forms the scanning pages share: starting a scan (on a bucket's page and on Scans)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from accounts.models import Tenant
from accounts.portal import add_errors
from accounts.services import Actor, ServiceError
from scanning.jobs import services as jobs
from scanning.models import Bucket, JobTrigger


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


class BucketChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.account.name or obj.account.account_id})"


class ScanForm(forms.Form):
    """A scan of what a bucket (or a prefix of it) holds; times are in the member's time zone."""

    bucket = BucketChoiceField(queryset=Bucket.objects.none(), label="Bucket", empty_label=None)
    # A field called "prefix" shadows BaseForm.prefix (the form prefix) only for the type checker:
    # the form metaclass moves fields into base_fields.
    prefix = forms.CharField(  # type: ignore[assignment]
        max_length=1024,
        required=False,
        strip=False,
        label="Prefix",
        help_text="Only keys starting with this, e.g. uploads/2026/. Empty: the whole bucket.",
    )
    modified_after = forms.DateTimeField(
        required=False,
        label="Modified after",
        widget=DateTimeLocalInput(),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        help_text="Optional: only objects modified at or after this time.",
    )
    modified_before = forms.DateTimeField(
        required=False,
        label="Modified before",
        widget=DateTimeLocalInput(),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        help_text="Optional: only objects modified before this time.",
    )
    all_versions = forms.BooleanField(
        required=False,
        label="Scan every version, not only the current one",
        help_text="For versioned buckets: older versions can be restored, so they may need scanning too.",
    )

    def __init__(self, *args: Any, tenant: Tenant, bucket: Bucket | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if bucket is not None:
            del self.fields["bucket"]  # the page's own bucket
        else:
            self.fields["bucket"].queryset = (  # type: ignore[attr-defined]
                Bucket.objects.filter(tenant=tenant, missing_since__isnull=True)
                .select_related("account")
                .order_by("name")
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        after, before = data.get("modified_after"), data.get("modified_before")
        if after and before and after >= before:
            self.add_error("modified_before", "Give a time after “Modified after”.")
        return data


def start_scan(request: HttpRequest, tenant: Tenant, form: ScanForm, bucket: Bucket) -> HttpResponse | None:
    """Start the scan a valid ``ScanForm`` asks for (the Scans page and a bucket's page): the redirect to
    Scans, or None with the service's refusal added to the form."""
    data = form.cleaned_data
    try:
        job = jobs.start_bucket_scan(
            tenant,
            Actor.from_request(request),
            bucket,
            data["prefix"],
            JobTrigger.MANUAL,
            modified_after=data["modified_after"],
            modified_before=data["modified_before"],
            all_versions=data["all_versions"],
        )
    except ServiceError as exc:
        add_errors(form, exc)
        return None
    messages.success(request, f"Scan of s3://{bucket.name}/{job.prefix} started.")
    return redirect("jobs")

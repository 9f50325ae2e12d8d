"""Portal pages: scheduled scans (cron, UTC), under Scans. Next runs are shown in the member's time zone.

The writes are the API's ``schedules.create_schedule``/``update_schedule``/``delete_schedule``; like the
API, scheduling scans is starting scans: operator.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Role, Tenant
from accounts.portal import add_errors, member_tenant, roles
from accounts.services import Actor, ServiceError
from scanning.models import Bucket, Schedule, validate_cron
from scanning.schedules import services as schedules
from scanning.views.forms import BucketChoiceField

CRON_HELP = (
    "Five fields in UTC: minute hour day-of-month month day-of-week, at most hourly. "
    "<code>0 2 * * *</code>: every day at 02:00 UTC; <code>30 * * * 1-5</code>: every hour at :30 on "
    "weekdays; <code>@weekly</code>: Sundays at midnight UTC."
)


class ScheduleForm(forms.Form):
    bucket = BucketChoiceField(queryset=Bucket.objects.none(), label="Bucket", empty_label=None)
    # A field called "prefix" shadows BaseForm.prefix (the form prefix) only for the type checker:
    # the form metaclass moves fields into base_fields.
    prefix = forms.CharField(  # type: ignore[assignment]
        max_length=1024, required=False, strip=False, label="Prefix", help_text="Empty: the whole bucket."
    )
    cron = forms.CharField(max_length=100, label="When (cron)", help_text=CRON_HELP)
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["bucket"].queryset = (  # type: ignore[attr-defined]
            Bucket.objects.filter(tenant=tenant, missing_since__isnull=True)
            .select_related("account")
            .order_by("name")
        )

    def clean_cron(self) -> str:
        value = self.cleaned_data["cron"].strip()
        validate_cron(value)  # the model's rule; the service checks it again
        return value


def _schedule(tenant: Tenant, schedule_id: Any) -> Schedule:
    # Another tenant's schedule is "not found", exactly like a missing one.
    schedule = Schedule.objects.filter(tenant=tenant, pk=schedule_id).select_related("bucket").first()
    if schedule is None:
        raise Http404("No such schedule.")
    return schedule


def _list(request: HttpRequest, tenant: Tenant, form: ScheduleForm | None = None) -> HttpResponse:
    rows = (
        Schedule.objects.filter(tenant=tenant)
        .select_related("bucket", "last_job")
        .order_by("bucket__name", "created_at")
    )
    return render(
        request,
        "scanning/schedules.html",
        {"schedules": rows, "form": form or ScheduleForm(tenant=tenant), **roles(request)},
    )


@login_required
@require_GET
def schedule_list(request: HttpRequest) -> HttpResponse:
    return _list(request, member_tenant(request))


@login_required
@require_POST
def schedule_create(request: HttpRequest) -> HttpResponse:
    tenant = member_tenant(request, Role.OPERATOR)
    form = ScheduleForm(request.POST, tenant=tenant)
    if form.is_valid():
        data = form.cleaned_data
        try:
            schedules.create_schedule(
                tenant,
                Actor.from_request(request),
                data["bucket"],
                data["cron"],
                prefix=data["prefix"],
                enabled=data["enabled"],
            )
        except (ServiceError, DjangoValidationError) as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Schedule created.")
            return redirect("schedules")
    return _list(request, tenant, form)


@login_required
def schedule_edit(request: HttpRequest, schedule_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.OPERATOR if request.method == "POST" else Role.VIEWER)
    schedule = _schedule(tenant, schedule_id)
    initial = {
        "bucket": schedule.bucket_id,
        "prefix": schedule.prefix,
        "cron": schedule.cron,
        "enabled": schedule.enabled,
    }
    form = ScheduleForm(request.POST or None, tenant=tenant, initial=initial)
    if request.method == "POST" and form.is_valid():
        changes = {k: v for k, v in form.cleaned_data.items() if v != initial[k] and k != "bucket"}
        if form.cleaned_data["bucket"].pk != schedule.bucket_id:
            changes["bucket"] = form.cleaned_data["bucket"]
        try:
            if changes:
                schedules.update_schedule(tenant, Actor.from_request(request), schedule, **changes)
        except (ServiceError, DjangoValidationError) as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Schedule saved." if changes else "Nothing changed.")
            return redirect("schedules")
    return render(request, "scanning/schedule.html", {"schedule": schedule, "form": form, **roles(request)})


@login_required
def schedule_delete(request: HttpRequest, schedule_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.OPERATOR)
    schedule = _schedule(tenant, schedule_id)
    if request.method != "POST":
        target = f"s3://{schedule.bucket.name}/{schedule.prefix}"
        return render(
            request,
            "components/confirm.html",
            {
                "title": f"Delete the schedule of {target}?",
                "consequences": [
                    f"{target} is no longer scanned on {schedule.cron!r} (UTC).",
                    "A scan it started and that is still running goes on; its results and the scan "
                    "history stay.",
                ],
                "action_url": request.path,
                "confirm_label": "Delete the schedule",
                "cancel_url": reverse("schedules"),
                "danger": True,
            },
        )
    schedules.delete_schedule(tenant, Actor.from_request(request), schedule)
    messages.success(request, "Schedule deleted. Scans it started stay in the history.")
    return redirect("schedules")

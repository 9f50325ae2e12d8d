"""Portal pages: Scans — running scans with a live progress bar, starting and cancelling, history.

The progress bar is a small fragment (``job_progress``) that htmx fetches every two seconds while the
scan runs; once the scan ended the fragment comes back without the polling attributes, so polling stops.
Starting and cancelling are the API's ``jobs.start_bucket_scan`` and ``jobs.cancel_job`` (operator).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Role, Tenant
from accounts.portal import member_tenant, roles
from accounts.services import Actor, ServiceError
from scanning.jobs import services as jobs
from scanning.models import ACTIVE_JOB_STATUSES, ScanJob
from scanning.views.forms import ScanForm, start_scan

PAGE_SIZE = 50
# Running scans shown with a progress bar each; more are rare (one per target) and listed below.
RUNNING_SHOWN = 20


def _job(tenant: Tenant, job_id: Any) -> ScanJob:
    # Another tenant's scan is "not found", exactly like a missing one.
    job = ScanJob.objects.filter(tenant=tenant, pk=job_id).select_related("bucket").first()
    if job is None:
        raise Http404("No such scan.")
    return job


def _page(
    request: HttpRequest, tenant: Tenant, form: ScanForm | None = None, status: int = 200
) -> HttpResponse:
    all_jobs = ScanJob.objects.filter(tenant=tenant).select_related("bucket")
    running = list(all_jobs.filter(status__in=ACTIVE_JOB_STATUSES).order_by("-created_at")[:RUNNING_SHOWN])
    history = all_jobs.exclude(status__in=ACTIVE_JOB_STATUSES).order_by("-created_at", "-pk")
    page = Paginator(history, PAGE_SIZE).get_page(request.GET.get("page"))
    context: dict[str, Any] = {
        "running": running,
        "page": page,
        "history": page.object_list,
        "scan_form": form or ScanForm(tenant=tenant),
        **roles(request),
    }
    return render(request, "scanning/jobs.html", context, status=status)


@login_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    return _page(request, member_tenant(request))


@login_required
@require_POST
def job_start(request: HttpRequest) -> HttpResponse:
    tenant = member_tenant(request, Role.OPERATOR)
    form = ScanForm(request.POST, tenant=tenant)
    if (
        form.is_valid()
        and (started := start_scan(request, tenant, form, form.cleaned_data["bucket"])) is not None
    ):
        return started
    return _page(request, tenant, form)


@require_GET
def job_progress(request: HttpRequest, job_id: Any) -> HttpResponse:
    """The progress fragment of one scan (htmx polls it while the scan runs)."""
    if not request.user.is_authenticated:
        # Signed out while the page polls: the login page must not be swapped into the card. htmx
        # swaps nothing on a 401 and follows HX-Redirect with the whole page.
        response = HttpResponse(status=401)
        response["HX-Redirect"] = f"{resolve_url(settings.LOGIN_URL)}?next={reverse('jobs')}"
        return response
    tenant = member_tenant(request)
    job = _job(tenant, job_id)
    return render(request, "scanning/job_progress.html", {"job": job, **roles(request)})


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.OPERATOR)
    job = _job(tenant, job_id)
    try:
        jobs.cancel_job(tenant, Actor.from_request(request), job)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Scan of s3://{job.bucket.name}/{job.prefix} cancelled.")
    return redirect("jobs")

"""Portal pages for scanning: recent findings and buckets of the signed-in member's tenant."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import Role, role_at_least
from scanning.models import Bucket, ScanJob, ScanResult, Verdict

PAGE = 100


def _tenant_for_viewer(request: HttpRequest):  # type: ignore[no-untyped-def]
    tenant = getattr(request, "tenant", None)
    if tenant is None or not role_at_least(getattr(request, "role", None), Role.VIEWER):
        raise PermissionDenied("An admin of your tenant must grant you a role first.")
    return tenant


@login_required
def results(request: HttpRequest) -> HttpResponse:
    tenant = _tenant_for_viewer(request)
    verdict = request.GET.get("verdict", "")
    queryset = ScanResult.objects.filter(tenant=tenant).exclude(verdict="").order_by("-scanned_at")
    if verdict in Verdict.values:
        queryset = queryset.filter(verdict=verdict)
    return render(
        request,
        "scanning/results.html",
        {"results": queryset[:PAGE], "verdicts": Verdict.values, "verdict": verdict},
    )


@login_required
def buckets(request: HttpRequest) -> HttpResponse:
    tenant = _tenant_for_viewer(request)
    rows = Bucket.objects.filter(tenant=tenant).select_related("account", "policy").order_by("name")
    return render(request, "scanning/buckets.html", {"buckets": rows})


@login_required
def jobs(request: HttpRequest) -> HttpResponse:
    tenant = _tenant_for_viewer(request)
    rows = ScanJob.objects.filter(tenant=tenant).select_related("bucket").order_by("-created_at")[:PAGE]
    return render(request, "scanning/jobs.html", {"jobs": rows})

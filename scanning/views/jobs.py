"""Portal pages: bucket scans."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from scanning.models import ScanJob
from scanning.views.common import PAGE, tenant_for_viewer


@login_required
def jobs(request: HttpRequest) -> HttpResponse:
    tenant = tenant_for_viewer(request)
    rows = ScanJob.objects.filter(tenant=tenant).select_related("bucket").order_by("-created_at")[:PAGE]
    return render(request, "scanning/jobs.html", {"jobs": rows})

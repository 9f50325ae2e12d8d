"""The usage settings page: objects and bytes scanned per month, against the tenant's monthly limit.

Among the settings pages (accounts.views.settings), admins only; the counts are scanning's.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.views.settings import admin_tenant
from scanning.models import UsageMonth


@login_required
def usage(request: HttpRequest) -> HttpResponse:
    tenant = admin_tenant(request)
    limit = tenant.monthly_scan_bytes_limit
    months = list(UsageMonth.objects.filter(tenant=tenant).order_by("-month")[:24])
    rows = [
        {
            "month": m.month,
            "objects": m.objects_scanned,
            "bytes": m.bytes_scanned,
            "percent": min(100, round(100 * m.bytes_scanned / limit)) if limit else None,
        }
        for m in months
    ]
    this_month = timezone.now().date().replace(day=1)
    current = next((r for r in rows if r["month"] == this_month), None)
    return render(
        request,
        "settings/usage.html",
        {"section": "usage", "rows": rows, "limit": limit, "current": current, "this_month": this_month},
    )

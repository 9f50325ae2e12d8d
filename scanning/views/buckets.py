"""Portal pages: the tenant's discovered buckets."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from scanning.models import Bucket
from scanning.views.common import tenant_for_viewer


@login_required
def buckets(request: HttpRequest) -> HttpResponse:
    tenant = tenant_for_viewer(request)
    rows = Bucket.objects.filter(tenant=tenant).select_related("account", "policy").order_by("name")
    return render(request, "scanning/buckets.html", {"buckets": rows})

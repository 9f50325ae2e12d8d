"""Object history: every verdict of one (bucket, key) and its versions, and the audit events about it."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from accounts.models import AuditEvent
from scanning.models import Bucket, ScanResult
from scanning.views.findings import viewer_tenant
from scanning.views.keyset import BadCursor, page_of

RESULT_TARGET = ScanResult._meta.label_lower
BUCKET_TARGET = Bucket._meta.label_lower
# The audit events shown with one page of verdicts: those about the page's results and the requests to
# scan the key. More than this is rare for one key; the audit log has them all.
EVENTS_SHOWN = 200


@login_required
@require_safe
def history(request: HttpRequest) -> HttpResponse:
    tenant = viewer_tenant(request)
    key = request.GET.get("key", "")
    try:
        bucket_id = uuid.UUID(request.GET.get("bucket", ""))
    except ValueError:
        bucket_id = None
    problem = ""
    if bucket_id is None:
        problem = "Name a bucket (its id) and a key: open the history from a finding's page."
    elif not key or "\x00" in key:
        problem = "Name the object's key (without NUL characters)."
    if problem or bucket_id is None:
        messages.error(request, problem)
        return render(request, "scanning/history.html", {"bucket": None, "key": key}, status=400)
    bucket = Bucket.objects.filter(tenant=tenant, pk=bucket_id).select_related("account").first()
    if bucket is None:
        raise Http404("No such bucket.")
    results = ScanResult.objects.filter(tenant=tenant, bucket=bucket, key=key).exclude(verdict="")
    try:
        page = page_of(results, request.GET.get("cursor", ""))
    except BadCursor as exc:
        messages.error(request, str(exc))
        page = page_of(results)
    ids = [str(r.pk) for r in page.rows]
    events = list(
        AuditEvent.objects.filter(tenant=tenant)
        .filter(
            Q(target_type=RESULT_TARGET, target_id__in=ids)
            | Q(target_type=BUCKET_TARGET, target_id=str(bucket.pk), details__key=key)
        )
        .order_by("-created_at")[:EVENTS_SHOWN]
    )
    versions = {r.version_id for r in page.rows}

    def link(cursor: str | None) -> str:
        return "?" + urlencode(
            {"bucket": str(bucket.pk), "key": key, **({"cursor": cursor} if cursor else {})}
        )

    return render(
        request,
        "scanning/history.html",
        {
            "bucket": bucket,
            "key": key,
            "page": page,
            "events": events,
            "versions": len(versions - {""}),
            "newer": link(page.newer) if page.newer else "",
            "older": link(page.older) if page.older else "",
            "first": link(None) if not page.is_first else "",
            "zone": timezone.get_current_timezone_name(),
        },
    )

"""Portal pages for scanning: recent findings and buckets of the signed-in member's tenant."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Role, role_at_least
from accounts.services import Actor, ServiceError
from scanning import services
from scanning.models import Bucket, ScanJob, ScanResult, TriageState, Verdict

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
    state = request.GET.get("state", "")
    if state in TriageState.values:
        queryset = queryset.filter(triage_state=state)
    return render(
        request,
        "scanning/results.html",
        {
            "results": queryset[:PAGE],
            "verdicts": Verdict.values,
            "verdict": verdict,
            "state": state,
            "can_triage": role_at_least(getattr(request, "role", None), Role.OPERATOR),
        },
    )


TRIAGE = {
    "release": (services.release_from_quarantine, "Released from quarantine, tagged InfectedAllowed."),
    "delete": (services.delete_scanned_object, "Deleted."),
    "rescan": (services.rescan, "Queued for a new scan."),
}


@login_required
@require_POST
def triage(request: HttpRequest, result_id: str, what: str) -> HttpResponse:
    """The portal's buttons for the same audited triage the API offers (operator and up)."""
    tenant = _tenant_for_viewer(request)
    if what not in TRIAGE:
        raise Http404
    result = ScanResult.objects.filter(tenant=tenant, pk=result_id).exclude(verdict="").first()
    if result is None:
        raise Http404
    if not role_at_least(getattr(request, "role", None), Role.OPERATOR):
        raise PermissionDenied("Triage needs the operator role.")
    action, done = TRIAGE[what]
    try:
        outcome = action(tenant, Actor.from_request(request), result)  # type: ignore[operator]
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, outcome["message"] if isinstance(outcome, dict) else done)
    return redirect("results")


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

"""Portal pages: findings (Infected, Unscannable, Error results) and their triage."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Role, role_at_least
from accounts.services import Actor, ServiceError
from scanning.models import ScanResult, TriageState, Verdict
from scanning.pipeline import services
from scanning.views.common import PAGE, tenant_for_viewer


@login_required
def results(request: HttpRequest) -> HttpResponse:
    tenant = tenant_for_viewer(request)
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
    tenant = tenant_for_viewer(request)
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

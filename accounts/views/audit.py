"""The audit log page: the tenant's events, newest first, filtered and paginated."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.forms import AuditFilterForm
from accounts.middleware import role_of
from accounts.models import AuditEvent, Role, role_at_least

PAGE = 50


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    tenant = getattr(request, "tenant", None)
    # As GET /api/v1/audit-events/: every member with a role reads the tenant's log.
    if tenant is None or not role_at_least(role_of(request), Role.VIEWER):
        raise PermissionDenied("An admin of your tenant must grant you a role first.")
    form = AuditFilterForm(request.GET or None)
    events = AuditEvent.objects.filter(tenant=tenant)
    active: list[tuple[str, str]] = []
    if form.is_bound:
        # A bad value is an error next to its field and that filter is left out; the others apply
        # (cleaned_data holds only the fields that validated), as the findings page does.
        form.is_valid()
        data = {name: None for name in form.fields} | form.cleaned_data
        if data["actor"]:
            events = events.filter(actor_label__icontains=data["actor"])
            active.append(("Actor", data["actor"]))
        if data["action"]:
            events = events.filter(action__startswith=data["action"])
            active.append(("Action", data["action"]))
        if data["target"]:
            events = events.filter(Q(target_repr__icontains=data["target"]) | Q(target_id=data["target"]))
            active.append(("Target", data["target"]))
        if data["since"]:
            events = events.filter(created_at__gte=datetime.combine(data["since"], time.min, tzinfo=UTC))
            active.append(("From", f"{data['since']:%Y-%m-%d}"))
        if data["until"]:
            end = datetime.combine(data["until"] + timedelta(days=1), time.min, tzinfo=UTC)
            events = events.filter(created_at__lt=end)
            active.append(("To", f"{data['until']:%Y-%m-%d}"))
    columns = ["id", "created_at", "actor_label", "action", "target_type", "target_repr", "details", "ip"]
    page = Paginator(events.only(*columns).order_by("-created_at", "-id"), PAGE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "audit/log.html",
        {"form": form if form.is_bound else AuditFilterForm(), "page_obj": page, "active": active},
    )

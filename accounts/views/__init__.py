import uuid

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_scopes import scopes_disabled

from accounts.middleware import SESSION_TENANT_KEY, session_memberships


@login_required
def home(request: HttpRequest) -> HttpResponse:
    with scopes_disabled():
        memberships = list(session_memberships(request))
    return render(request, "home.html", {"memberships": memberships})


@login_required
@require_POST
def switch_tenant(request: HttpRequest) -> HttpResponse:
    try:
        wanted = str(uuid.UUID(request.POST.get("tenant", "")))
    except ValueError:
        return redirect("home")
    with scopes_disabled():
        if session_memberships(request).filter(tenant_id=wanted).exists():
            request.session[SESSION_TENANT_KEY] = wanted
    return redirect("home")

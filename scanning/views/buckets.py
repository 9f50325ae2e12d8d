"""Portal pages: the tenant's buckets, protection on and off, policy, read gate, and starting a scan.

The writes are the API's: ``protection.protect_bucket``/``unprotect_bucket`` (operator),
``protection.set_bucket_policy`` and ``read_gate.apply`` (admin), ``jobs.start_bucket_scan``
(operator).
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Role, Tenant
from accounts.portal import add_errors, member_tenant, roles
from accounts.services import Actor, ServiceError
from scanning.buckets import protection, read_gate
from scanning.models import Bucket, ScanJob, ScanPolicy
from scanning.views.forms import ScanForm, start_scan

PAGE_SIZE = 50
DEFAULT_POLICY = "default"


def _bucket(tenant: Tenant, bucket_id: Any) -> Bucket:
    # Another tenant's bucket is "not found", exactly like a missing one.
    bucket = Bucket.objects.filter(tenant=tenant, pk=bucket_id).select_related("account", "policy").first()
    if bucket is None:
        raise Http404("No such bucket.")
    return bucket


def _default_policy(tenant: Tenant) -> ScanPolicy | None:
    # Read without creating it: showing a page must not write.
    return ScanPolicy.objects.filter(tenant=tenant, is_default=True).first()


def _quarantines(tenant: Tenant) -> dict[str, list[str]]:
    """Bucket name -> the names of the policies that quarantine into it."""
    found: dict[str, list[str]] = {}
    rows = ScanPolicy.objects.filter(tenant=tenant).exclude(quarantine_bucket="")
    for name, policy in rows.values_list("quarantine_bucket", "name"):
        found.setdefault(name, []).append(policy)
    return found


def policy_label(bucket: Bucket, default: ScanPolicy | None, quarantines: dict[str, list[str]]) -> str:
    """What the policy column says: the bucket's own policy, the default, or that it is a quarantine.

    A quarantine bucket is where findings go, not a bucket s3av scans: showing it as "Default" read as
    if s3av scanned (and quarantined again) its own quarantine copies.
    """
    if bucket.policy is not None:
        return bucket.policy.name
    if bucket.name in quarantines and not bucket.protected:
        return "None (quarantine of " + ", ".join(quarantines[bucket.name]) + ")"
    return f"Default ({default.name})" if default is not None else "Default"


def _last_jobs() -> dict[str, Any]:
    latest = ScanJob.objects.filter(bucket=OuterRef("pk")).order_by("-created_at")
    return {
        "last_job_at": Subquery(latest.values("created_at")[:1]),
        "last_job_status": Subquery(latest.values("status")[:1]),
        "last_job_infected": Subquery(latest.values("infected")[:1]),
    }


@login_required
@require_GET
def buckets(request: HttpRequest) -> HttpResponse:
    tenant = member_tenant(request)
    rows = (
        Bucket.objects.filter(tenant=tenant)
        .select_related("account", "policy")
        .annotate(**_last_jobs())
        .order_by("name", "pk")
    )
    show = request.GET.get("show", "")
    if show == "protected":
        rows = rows.filter(protected=True)
    elif show == "unprotected":
        rows = rows.filter(protected=False, missing_since__isnull=True)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    default, quarantines = _default_policy(tenant), _quarantines(tenant)
    for bucket in page:
        bucket.policy_label = policy_label(bucket, default, quarantines)  # type: ignore[attr-defined]
        bucket.is_quarantine = bucket.name in quarantines  # type: ignore[attr-defined]
    return render(
        request,
        "scanning/buckets.html",
        {"page": page, "buckets": page.object_list, "show": show, **roles(request)},
    )


class PolicyChoiceForm(forms.Form):
    policy = forms.ChoiceField(label="Scan policy")

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policies = {str(p.pk): p for p in ScanPolicy.objects.filter(tenant=tenant, is_default=False)}
        default = _default_policy(tenant)
        self.fields["policy"].choices = [  # type: ignore[attr-defined]
            (DEFAULT_POLICY, f"The default policy{f' ({default.name})' if default else ''}"),
            *((pk, p.name) for pk, p in self.policies.items()),
        ]

    def chosen(self) -> ScanPolicy | None:
        return self.policies.get(self.cleaned_data["policy"])


def _detail(request: HttpRequest, bucket: Bucket, status: int = 200, **extra: Any) -> HttpResponse:
    tenant = bucket.tenant
    default, quarantines = _default_policy(tenant), _quarantines(tenant)
    statements = read_gate.statements(bucket)
    context: dict[str, Any] = {
        "bucket": bucket,
        "policy_label": policy_label(bucket, default, quarantines),
        "effective_policy": bucket.policy or default,
        "quarantine_of": quarantines.get(bucket.name, []),
        "policy_form": PolicyChoiceForm(
            tenant=tenant, initial={"policy": str(bucket.policy_id) if bucket.policy_id else DEFAULT_POLICY}
        ),
        "scan_form": ScanForm(tenant=tenant, bucket=bucket),
        "recent_jobs": ScanJob.objects.filter(tenant=tenant, bucket=bucket).order_by("-created_at")[:5],
        "read_gate_json": json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=2),
        "account_connected": bucket.account.status == "connected",
        **roles(request),
    }
    context.update(extra)
    return render(request, "scanning/bucket.html", context, status=status)


@login_required
@require_GET
def bucket_detail(request: HttpRequest, bucket_id: Any) -> HttpResponse:
    tenant = member_tenant(request)
    return _detail(request, _bucket(tenant, bucket_id))


def _back(request: HttpRequest, bucket: Bucket) -> HttpResponse:
    # Back to the list when the button was pressed there, else to the bucket's page.
    if request.POST.get("next") == "list":
        return redirect("buckets")
    return redirect("bucket", bucket_id=bucket.pk)


@login_required
@require_POST
def bucket_protect(request: HttpRequest, bucket_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.OPERATOR)
    bucket = _bucket(tenant, bucket_id)
    scan_existing = request.POST.get("scan_existing") == "on"
    try:
        protection.protect_bucket(tenant, Actor.from_request(request), bucket, scan_existing=scan_existing)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        text = f"{bucket.name} is protected: new uploads are scanned as they arrive."
        if scan_existing:
            text += " A scan of what it already holds has started (see Scans)."
        messages.success(request, text)
    return _back(request, bucket)


@login_required
@require_POST
def bucket_unprotect(request: HttpRequest, bucket_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.OPERATOR)
    bucket = _bucket(tenant, bucket_id)
    try:
        protection.unprotect_bucket(tenant, Actor.from_request(request), bucket)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"{bucket.name} is no longer protected; s3av removed its queue and event notification."
        )
    return _back(request, bucket)


@login_required
@require_POST
def bucket_policy(request: HttpRequest, bucket_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.ADMIN)
    bucket = _bucket(tenant, bucket_id)
    form = PolicyChoiceForm(request.POST, tenant=tenant)
    if form.is_valid():
        try:
            protection.set_bucket_policy(tenant, Actor.from_request(request), bucket, form.chosen())
        except ServiceError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Policy saved.")
            return redirect("bucket", bucket_id=bucket.pk)
    bucket.refresh_from_db()
    return _detail(request, bucket, policy_form=form)


@login_required
@require_POST
def bucket_read_gate(request: HttpRequest, bucket_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.ADMIN)
    bucket = _bucket(tenant, bucket_id)
    try:
        read_gate.apply(tenant, Actor.from_request(request), bucket)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, "The read gate is in the bucket policy: objects are readable once scanned Clean."
        )
    return redirect(f"{reverse('bucket', args=[bucket.pk])}#read-gate")


@login_required
@require_POST
def bucket_scan(request: HttpRequest, bucket_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.OPERATOR)
    bucket = _bucket(tenant, bucket_id)
    form = ScanForm(request.POST, tenant=tenant, bucket=bucket)
    if form.is_valid() and (started := start_scan(request, tenant, form, bucket)) is not None:
        return started
    return _detail(request, bucket, scan_form=form)

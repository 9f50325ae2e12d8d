"""Findings: the Infected, Unscannable and Error results of the tenant, filtered, paged, exported as CSV,
one result's detail, and triage (rescan, release, delete) behind a confirmation page.

Triage calls the same service functions as the API's ``/results/{id}/rescan|release|delete-object``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_safe
from django_scopes import scope

from accounts.models import Role, Tenant, role_at_least
from accounts.services import Actor, ServiceError
from linked_accounts.models import AwsAccount
from scanning.models import FINDING_VERDICTS, Bucket, ScanPolicy, ScanResult, TriageState
from scanning.pipeline import services
from scanning.templatetags.findings import action_taken
from scanning.views.common import tenant_for_viewer
from scanning.views.keyset import BadCursor, capped_count, page_of

EXPORT_CHUNK = 2000


def viewer_tenant(request: HttpRequest) -> Tenant:
    tenant: Tenant = tenant_for_viewer(request)
    return tenant


def can_triage(request: HttpRequest) -> bool:
    return role_at_least(getattr(request, "role", None), Role.OPERATOR)


# --- filters -----------------------------------------------------------------------------------------


class FindingFilter(forms.Form):
    verdict = forms.ChoiceField(
        required=False, choices=[("", "Any verdict")] + [(v.value, v.label) for v in FINDING_VERDICTS]
    )
    state = forms.ChoiceField(
        required=False,
        label="Triage state",
        choices=[("", "Any state"), (TriageState.OPEN, "Open"), (TriageState.RESOLVED, "Resolved")],
    )
    bucket = forms.ChoiceField(required=False, choices=[])
    account = forms.ChoiceField(required=False, choices=[])
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(required=False, max_length=1024, label="Key contains", strip=True)

    LABELS = {"verdict": "Verdict", "state": "State", "bucket": "Bucket", "account": "Account",
              "since": "From", "until": "To", "q": "Key contains"}  # fmt: skip

    def __init__(self, data: Any, buckets: list[Bucket], accounts: list[AwsAccount]) -> None:
        super().__init__(data)
        bucket_field, account_field = self.fields["bucket"], self.fields["account"]
        assert isinstance(bucket_field, forms.ChoiceField) and isinstance(account_field, forms.ChoiceField)
        bucket_field.choices = [("", "Any bucket")] + [(str(b.pk), b.name) for b in buckets]
        account_field.choices = [("", "Any account")] + [
            (str(a.pk), f"{a.name} ({a.account_id})" if a.name else a.account_id) for a in accounts
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return data

    def valid_values(self) -> dict[str, Any]:
        """The filters that passed validation (a bad one is dropped and reported, the rest apply)."""
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value and name not in self.errors}


def _day_start(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def filtered(tenant: Tenant, values: dict[str, Any]) -> QuerySet[ScanResult]:
    queryset = ScanResult.objects.filter(tenant=tenant, verdict__in=[v.value for v in FINDING_VERDICTS])
    if "verdict" in values:
        queryset = queryset.filter(verdict=values["verdict"])
    if "state" in values:
        queryset = queryset.filter(triage_state=values["state"])
    if "bucket" in values:
        queryset = queryset.filter(bucket_id=values["bucket"])
    if "account" in values:
        queryset = queryset.filter(bucket__account_id=values["account"])
    if "since" in values:
        queryset = queryset.filter(scanned_at__gte=_day_start(values["since"]))
    if "until" in values:
        queryset = queryset.filter(scanned_at__lt=_day_start(values["until"] + timedelta(days=1)))
    if "q" in values:
        queryset = queryset.filter(key__icontains=values["q"])
    return queryset


def _filters(
    request: HttpRequest, tenant: Tenant, report: bool = True
) -> tuple[FindingFilter, dict[str, Any]]:
    buckets = list(Bucket.objects.filter(tenant=tenant).only("id", "name").order_by("name"))
    accounts = list(AwsAccount.objects.filter(tenant=tenant).only("id", "name", "account_id"))
    form = FindingFilter(request.GET, buckets, accounts)
    values = form.valid_values()
    for name, errors in form.errors.items() if report else ():
        label = FindingFilter.LABELS.get(name, name)
        messages.error(request, f"{label}: {' '.join(str(e) for e in errors)} This filter is not applied.")
    return form, values


def _query(values: dict[str, Any], **extra: str) -> str:
    params = {name: str(value) for name, value in values.items()}
    params.update(extra)
    return urlencode(params)


def _active(form: FindingFilter, values: dict[str, Any]) -> list[dict[str, str]]:
    """Each applied filter with its label, what it shows, and the link that removes it."""
    chips = []
    for name, value in values.items():
        shown = str(value)
        field = form.fields[name]
        if isinstance(field, forms.ChoiceField):
            shown = str(dict(field.choices).get(str(value), value))  # type: ignore[arg-type]
        rest = {k: v for k, v in values.items() if k != name}
        chips.append(
            {
                "label": FindingFilter.LABELS[name],
                "value": shown,
                "remove": "?" + _query(rest) if rest else "?",
            }
        )
    return chips


@login_required
@require_safe
def findings(request: HttpRequest) -> HttpResponse:
    tenant = viewer_tenant(request)
    form, values = _filters(request, tenant)
    queryset = filtered(tenant, values)
    try:
        page = page_of(queryset, request.GET.get("cursor", ""))
    except BadCursor as exc:
        messages.error(request, str(exc))
        page = page_of(queryset)
    total, more = capped_count(queryset)
    query = _query(values)
    triage = can_triage(request)
    for row in page.rows:
        row.offered = offered(row) if triage else []
    return render(
        request,
        "scanning/findings.html",
        {
            "form": form,
            "active": _active(form, values),
            "page": page,
            "total": total,
            "more": more,
            "query": query,
            "newer": f"?{_query(values, cursor=page.newer)}" if page.newer else "",
            "older": f"?{_query(values, cursor=page.older)}" if page.older else "",
            "first": f"?{query}" if not page.is_first else "",
            "export": reverse("findings-export") + (f"?{query}" if query else ""),
            "can_triage": triage,
            "zone": timezone.get_current_timezone_name(),
        },
    )


# --- CSV export --------------------------------------------------------------------------------------


class _Echo:
    def write(self, value: str) -> str:
        return value


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_START) else text


EXPORT_COLUMNS = [
    "scanned_at", "bucket", "key", "version_id", "verdict", "signatures", "message", "action",
    "triage_state", "resolution", "resolved_by", "resolved_at", "size", "etag", "sha256", "engine",
    "signature_version", "account", "id",
]  # fmt: skip


def _csv_rows(tenant: Tenant, queryset: QuerySet[ScanResult]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    # Streamed after the view returned, so outside the request's tenant scope: open it again. The rows
    # come through a server-side cursor in chunks; memory stays the same however many rows there are.
    with scope(tenant=tenant):
        rows = queryset.select_related("bucket__account").order_by("-scanned_at", "-pk")
        for r in rows.iterator(chunk_size=EXPORT_CHUNK):
            account = r.bucket.account.account_id if r.bucket is not None else ""
            yield writer.writerow(
                safe_cell(value)
                for value in (
                    r.scanned_at.isoformat() if r.scanned_at else "",
                    r.bucket_name,
                    r.key,
                    r.version_id,
                    r.verdict,
                    " ".join(r.signatures or []),
                    r.message,
                    action_taken(r),
                    r.triage_state,
                    r.resolution,
                    r.resolved_by,
                    r.resolved_at.isoformat() if r.resolved_at else "",
                    r.size,
                    r.etag,
                    r.sha256,
                    r.engine,
                    r.signature_version,
                    account,
                    r.pk,
                )  # fmt: skip
            )


@login_required
@require_safe
def export(request: HttpRequest) -> StreamingHttpResponse:
    tenant = viewer_tenant(request)
    # A bad filter is dropped, as on the page (which said so before the reader pressed Export).
    _, values = _filters(request, tenant, report=False)
    response = StreamingHttpResponse(_csv_rows(tenant, filtered(tenant, values)), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="s3av-findings-{stamp}.csv"'
    return response


# --- one result --------------------------------------------------------------------------------------


def result_of(tenant: Tenant, result_id: Any) -> ScanResult:
    result = (
        ScanResult.objects.filter(tenant=tenant, pk=result_id)
        .exclude(verdict="")
        .select_related("bucket__account", "bucket__policy")
        .first()
    )
    if result is None:
        raise Http404("No such result.")
    return result


def _policy_of(result: ScanResult) -> ScanPolicy | None:
    # Not Bucket.effective_policy(): that creates the default policy when missing, and a page view
    # writes nothing.
    bucket = result.bucket
    if bucket is None:
        return None
    if bucket.policy is not None:
        return bucket.policy
    return ScanPolicy.objects.filter(tenant_id=result.tenant_id, is_default=True).first()


def offered(result: ScanResult) -> list[str]:
    """The triage actions this finding can take now (for an operator)."""
    if result.triage_state != TriageState.OPEN or result.bucket_id is None:
        return []
    actions = []
    if not result.quarantine_key:
        actions.append("rescan")
    if result.verdict == "Infected" and result.quarantine_key:
        actions.append("release")
    actions.append("delete")
    return actions


@login_required
@require_safe
def detail(request: HttpRequest, result_id: Any) -> HttpResponse:
    tenant = viewer_tenant(request)
    result = result_of(tenant, result_id)
    return render(
        request,
        "scanning/finding.html",
        {
            "r": result,
            "actions": offered(result) if can_triage(request) else [],
            "policy": _policy_of(result),
            "zone": timezone.get_current_timezone_name(),
        },
    )


# --- triage ------------------------------------------------------------------------------------------


def _where(bucket: str, key: str, version_id: str | None) -> str:
    version = f" (version {version_id})" if version_id and version_id != "null" else ""
    return f"s3://{bucket}/{key}{version}"


def plan(result: ScanResult, what: str, policy: ScanPolicy | None) -> list[str]:
    """What pressing the button will do, exactly, in sentences."""
    bucket = result.bucket
    assert bucket is not None
    here = _where(result.bucket_name, result.key, result.version_id)
    if what == "delete":
        if result.quarantine_key:
            copy = _where(result.quarantine_bucket, result.quarantine_key, result.quarantine_version_id)
            return [
                f"The quarantined copy {copy} is deleted permanently: that exact version, not a delete "
                "marker. It cannot be recovered.",
                f"Nothing is written to {result.bucket_name}: the object was moved out of it when it was "
                "quarantined.",
                "The finding is then resolved as deleted, in your name, and the audit log records it.",
            ]
        if bucket.versioned:
            return [
                f"{here} is deleted permanently. The bucket is versioned: that version itself is removed, "
                "not hidden behind a delete marker, and it cannot be recovered.",
                "Other versions of the key, and a newer upload, are left as they are.",
                "The finding is then resolved as deleted, in your name, and the audit log records it.",
            ]
        return [
            f"{here} is deleted permanently. The bucket is not versioned: there is no earlier version to "
            "fall back to, and it cannot be recovered.",
            "If the key holds other bytes now (a newer upload), nothing is deleted.",
            "The finding is then resolved as deleted, in your name, and the audit log records it.",
        ]
    if what == "release":
        copy = _where(result.quarantine_bucket, result.quarantine_key, result.quarantine_version_id)
        tag = policy.tag_result_key if policy else "scan-result"
        versioned = (
            "The bucket is versioned: the released copy becomes the key's current version."
            if bucket.versioned
            else "The bucket is not versioned."
        )
        return [
            f"The quarantined copy {copy} is copied back to s3://{result.bucket_name}/{result.key} and "
            f"tagged {tag}=InfectedAllowed, so the read gate lets people download it again. {versioned}",
            "The quarantined copy is then deleted.",
            "If the key holds another object now, nothing is released: you are told, and can choose to "
            "replace it.",
            "The finding is resolved as released (a false positive), in your name, and the audit log "
            "records it.",
        ]
    name = policy.name if policy else "the default policy"
    then = policy.get_on_infected_display().lower() if policy else "keep (tag only)"
    return [
        f"A new scan of {here} is queued with the signatures the workers have now.",
        f"If it is found Infected again, the policy {name!r} applies: {then}.",
        "A new result records the verdict; this finding stays as it is.",
    ]


TRIAGE_TITLES = {"rescan": "Rescan", "release": "Release as a false positive", "delete": "Delete"}


@login_required
def triage(request: HttpRequest, result_id: Any, what: str) -> HttpResponse:
    tenant = viewer_tenant(request)
    if what not in TRIAGE_TITLES:
        raise Http404
    result = result_of(tenant, result_id)
    if not can_triage(request):
        raise PermissionDenied("Triage needs the operator role.")
    if request.method not in {"GET", "POST"}:
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    back = reverse("finding", args=[result.pk])
    if what not in offered(result):
        if result.triage_state != TriageState.OPEN:
            messages.error(request, "This finding is resolved already: there is nothing left to triage.")
        elif what == "release":
            messages.error(request, "Only a quarantined Infected object can be released.")
        else:
            messages.error(request, "The object was moved to quarantine: release it or delete it.")
        return redirect(back)
    policy = _policy_of(result)
    context: dict[str, Any] = {
        "r": result,
        "what": what,
        "title": TRIAGE_TITLES[what],
        "plan": plan(result, what, policy),
        "conflict": "",
        "overwrite_offered": False,
    }
    if request.method == "GET":
        return render(request, "scanning/triage_confirm.html", context)
    actor = Actor.from_request(request)
    try:
        if what == "rescan":
            queued = services.rescan(tenant, actor, result)
            messages.success(request, queued["message"])
        elif what == "release":
            overwrite = request.POST.get("overwrite") == "yes"
            released = services.release_from_quarantine(tenant, actor, result, overwrite=overwrite)
            messages.success(
                request,
                f"Released: s3://{released.bucket_name}/{released.key} is back, tagged InfectedAllowed.",
            )
        else:
            services.delete_scanned_object(tenant, actor, result)
            messages.success(request, f"Deleted {_where(result.bucket_name, result.key, result.version_id)}.")
    except services.TriageConflict as exc:
        context["conflict"] = exc.message
        # Release's one conflict: the key holds another object now, which the person may replace.
        context["overwrite_offered"] = what == "release"
        return render(request, "scanning/triage_confirm.html", context, status=409)
    except ServiceError as exc:
        context["conflict"] = exc.message
        return render(request, "scanning/triage_confirm.html", context, status=400)
    return redirect(back)


def old_results(request: HttpRequest) -> HttpResponse:
    """``/results/`` was this page's address; keep its links (and their filters) working."""
    target = reverse("findings")
    return redirect(f"{target}?{request.GET.urlencode()}" if request.GET else target, permanent=True)


def old_triage(request: HttpRequest, result_id: Any, what: str) -> HttpResponse:
    # A POST to the old button address lands on the confirmation page; nothing happens without it.
    what = "delete" if what == "delete-object" else what
    return redirect("finding-triage", result_id=result_id, what=what)

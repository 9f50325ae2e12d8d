"""Portal pages: scan policies (Settings), each with a plain-language summary of what it does.

Viewers read them (as in the API); admins create, edit and delete them through
``scanning.policies.services`` — the model's rules (quarantine bucket needed, no quarantine loop, four
different tag keys) come back as errors next to their fields.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts.models import Role, Tenant
from accounts.portal import add_errors, member_tenant, roles
from accounts.services import Actor, ServiceError
from scanning.models import (
    MAX_PATTERN_LENGTH,
    MAX_PATTERNS,
    MAX_RESCAN_DAYS,
    Bucket,
    InfectedAction,
    ProblemAction,
    ScanPolicy,
)
from scanning.policies import services as policies
from scanning.views.forms import BucketChoiceField


def summary(policy: ScanPolicy) -> list[str]:
    """What the policy does, in sentences a person reads once: scope, then each verdict's fate."""
    lines: list[str] = []
    size = filesizeformat(policy.max_object_size)
    if policy.include_patterns:
        scope = "Scans objects whose keys match " + _list(policy.include_patterns)
    else:
        scope = "Scans every object"
    if policy.exclude_patterns:
        scope += ", except keys matching " + _list(policy.exclude_patterns)
    lines.append(f"{scope}; objects larger than {size} are not scanned and count as Unscannable.")

    def tag(verdict: str) -> str:
        return f"tagged {policy.tag_result_key}={verdict}" if policy.tag_objects else "not tagged"

    where = f"bucket {policy.quarantine_bucket or '(none named)'}"
    if policy.quarantine_prefix:
        where += f" under {policy.quarantine_prefix}"
    if policy.on_infected == InfectedAction.QUARANTINE:
        infected = f"Infected files are {tag('Infected')} and moved to the quarantine {where}"
    elif policy.on_infected == InfectedAction.DELETE:
        infected = f"Infected files are {tag('Infected')}, then the infected version is deleted"
    else:
        infected = f"Infected files are {tag('Infected')} and left where they are"
    lines.append(infected + ".")

    clean = f"Clean files are {tag('Clean')}"
    if policy.promote_to_bucket_id is not None:
        destination = policy.promote_to_bucket.name if policy.promote_to_bucket else "another bucket"
        clean += f" and copied to bucket {destination}"
        if policy.promote_prefix:
            clean += f" under {policy.promote_prefix}"
        if policy.delete_staging_after_promote:
            clean += "; the original is deleted once the copy is verified"
    lines.append(clean + ".")

    for label, action in (("Unscannable", policy.on_unscannable), ("Error", policy.on_error)):
        fate = (
            f"moved to the quarantine {where}"
            if action == ProblemAction.QUARANTINE
            else "left where they are"
        )
        lines.append(f"{label} files are {tag(label)} and {fate}; they are always reported as findings.")

    if policy.rescan_days_on_signature_change:
        days = policy.rescan_days_on_signature_change
        lines.append(
            f"When the virus signatures change, objects of protected buckets modified in the last {days} "
            f"day{'s' if days != 1 else ''} are scanned again."
        )
    if policy.scan_bucket_on_infected:
        lines.append("When malware is found, the rest of the bucket's unscanned objects are scanned too.")
    return lines


def _list(patterns: list[str]) -> str:
    shown = ", ".join(patterns[:5])
    return shown + (f" and {len(patterns) - 5} more" if len(patterns) > 5 else "")


class PatternsField(forms.CharField):
    """Glob patterns, one a line."""

    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false"})

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return [line.strip() for line in text.splitlines() if line.strip()]

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def validate(self, value: Any) -> None:
        if len(value) > MAX_PATTERNS:
            raise DjangoValidationError(f"At most {MAX_PATTERNS} patterns.")
        if any(len(item) > MAX_PATTERN_LENGTH for item in value):
            raise DjangoValidationError(f"A pattern has at most {MAX_PATTERN_LENGTH} characters.")


class PolicyForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name")
    include_patterns = PatternsField(
        required=False,
        label="Scan only keys matching",
        help_text="Glob patterns, one a line (*.pdf, uploads/*). Empty: every key.",
    )
    exclude_patterns = PatternsField(
        required=False, label="Never scan keys matching", help_text="Glob patterns, one a line."
    )
    max_object_size = forms.IntegerField(
        min_value=1,
        label="Largest object scanned (bytes)",
        help_text=f"Larger objects are Unscannable. At most {settings.MAX_OBJECT_SIZE} "
        f"({filesizeformat(settings.MAX_OBJECT_SIZE)}) on this deployment.",
    )
    on_infected = forms.ChoiceField(choices=InfectedAction.choices, label="Infected files")
    on_unscannable = forms.ChoiceField(choices=ProblemAction.choices, label="Unscannable files")
    on_error = forms.ChoiceField(
        choices=ProblemAction.choices, label="Files that could not be scanned (Error)"
    )
    quarantine_bucket = forms.CharField(
        max_length=63,
        required=False,
        label="Quarantine bucket",
        help_text="Where quarantined files go: a bucket s3av does not protect.",
    )
    quarantine_prefix = forms.CharField(
        max_length=512, required=False, strip=False, label="Quarantine prefix"
    )
    tag_objects = forms.BooleanField(required=False, label="Tag every scanned object with its verdict")
    tag_result_key = forms.CharField(max_length=128, label="Verdict tag key")
    tag_date_key = forms.CharField(max_length=128, label="Date tag key")
    tag_virus_key = forms.CharField(max_length=128, label="Virus name tag key")
    tag_message_key = forms.CharField(max_length=128, label="Message tag key")
    promote_to_bucket = BucketChoiceField(
        queryset=Bucket.objects.none(),
        required=False,
        empty_label="Nowhere (no promotion)",
        label="Copy Clean files to",
        help_text="The two-bucket system: uploads land in a staging bucket, Clean files are copied on.",
    )
    promote_prefix = forms.CharField(max_length=512, required=False, strip=False, label="Promotion prefix")
    delete_staging_after_promote = forms.BooleanField(
        required=False, label="Delete the staging copy once the promoted copy is verified"
    )
    rescan_days_on_signature_change = forms.IntegerField(
        min_value=0,
        max_value=MAX_RESCAN_DAYS,
        label="Rescan after signature updates (days)",
        help_text="When the signatures change, rescan objects modified in the last N days. 0: never.",
    )
    scan_bucket_on_infected = forms.BooleanField(
        required=False, label="When malware is found, scan the rest of the bucket"
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["promote_to_bucket"].queryset = (  # type: ignore[attr-defined]
            Bucket.objects.filter(tenant=tenant).select_related("account").order_by("name")
        )

    @staticmethod
    def initial_for(policy: ScanPolicy) -> dict[str, Any]:
        return {name: getattr(policy, name) for name in policies.POLICY_FIELDS}


def _policy(tenant: Tenant, policy_id: Any) -> ScanPolicy:
    # Another tenant's policy is "not found", exactly like a missing one.
    policy = (
        ScanPolicy.objects.filter(tenant=tenant, pk=policy_id).select_related("promote_to_bucket").first()
    )
    if policy is None:
        raise Http404("No such policy.")
    return policy


@login_required
@require_GET
def policy_list(request: HttpRequest) -> HttpResponse:
    tenant = member_tenant(request)
    rows = list(
        ScanPolicy.objects.filter(tenant=tenant)
        .select_related("promote_to_bucket")
        .annotate(bucket_count=Count("buckets"))
        .order_by("-is_default", "name")
    )
    for policy in rows:
        policy.summary = summary(policy)  # type: ignore[attr-defined]
    return render(request, "scanning/policies.html", {"policies": rows, **roles(request)})


def _save(
    request: HttpRequest, tenant: Tenant, form: PolicyForm, policy: ScanPolicy | None
) -> ScanPolicy | None:
    actor = Actor.from_request(request)
    data = dict(form.cleaned_data)
    try:
        if policy is None:
            return policies.create_policy(tenant, actor, **data)
        changes = {k: v for k, v in data.items() if v != getattr(policy, k)}
        return policies.update_policy(tenant, actor, policy, **changes) if changes else policy
    except (ServiceError, DjangoValidationError) as exc:
        add_errors(form, exc)
        return None


@login_required
def policy_new(request: HttpRequest) -> HttpResponse:
    tenant = member_tenant(request, Role.ADMIN)
    initial = PolicyForm.initial_for(ScanPolicy(tenant=tenant))
    form = PolicyForm(request.POST or None, tenant=tenant, initial=initial)
    if request.method == "POST" and form.is_valid():
        created = _save(request, tenant, form, None)
        if created is not None:
            messages.success(request, f"Policy {created.name!r} created. Choose it on a bucket's page.")
            return redirect("policy", policy_id=created.pk)
    return render(request, "scanning/policy_form.html", {"form": form, "policy": None})


@login_required
def policy_detail(request: HttpRequest, policy_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.ADMIN if request.method == "POST" else Role.VIEWER)
    policy = _policy(tenant, policy_id)
    form = PolicyForm(request.POST or None, tenant=tenant, initial=PolicyForm.initial_for(policy))
    if request.method == "POST" and form.is_valid():
        saved = _save(request, tenant, form, policy)
        if saved is not None:
            messages.success(request, "Policy saved.")
            return redirect("policy", policy_id=saved.pk)
        policy.refresh_from_db()
    buckets = Bucket.objects.filter(tenant=tenant, policy=policy).order_by("name")
    context = {
        "form": form,
        "policy": policy,
        "summary": summary(policy),
        "buckets": buckets,
        **roles(request),
    }
    return render(request, "scanning/policy_form.html", context)


@login_required
def policy_delete(request: HttpRequest, policy_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.ADMIN)
    policy = _policy(tenant, policy_id)
    buckets = Bucket.objects.filter(tenant=tenant, policy=policy).order_by("name")
    if request.method != "POST":
        names = [b.name for b in buckets]
        uses = (
            f"{len(names)} bucket{'s' if len(names) != 1 else ''} that chose it ({', '.join(names[:10])}"
            f"{' and more' if len(names) > 10 else ''}) will follow the default policy from now on."
            if names
            else "No bucket chose it."
        )
        consequences = [uses, "Results and findings it produced stay as they are."]
        if policy.is_default:
            consequences.append(
                "It is the default policy: the next scan of a bucket without a policy makes a new default "
                "with the built-in settings (scan everything, tag, move nothing)."
            )
        return render(
            request,
            "components/confirm.html",
            {
                "title": f"Delete policy {policy.name}?",
                "consequences": consequences,
                "action_url": request.path,
                "confirm_label": "Delete the policy",
                "cancel_url": reverse("policy", args=[policy.pk]),
                "danger": True,
            },
        )
    policies.delete_policy(tenant, Actor.from_request(request), policy)
    messages.success(request, f"Policy {policy.name!r} deleted; its buckets use the default policy now.")
    return redirect("policies")

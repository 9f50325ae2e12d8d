"""Portal pages for linked AWS accounts: the linking wizard, an account's page, removal with its report.

Every write calls the same service function as the API (``linked_accounts.services``); the roles are
the API's: viewers read, operators discover buckets, admins link, verify and remove.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Role, Tenant
from accounts.portal import add_errors, member_tenant, roles
from accounts.services import Actor, ServiceError
from linked_accounts import aws, services, templates
from linked_accounts.models import AwsAccount, AwsOrganization
from scanning.buckets import discovery
from scanning.models import Bucket

NEW_ORGANIZATION = "new"


def _account(tenant: Tenant, account_id: Any) -> AwsAccount:
    # Another tenant's account is "not found", exactly like a missing one.
    account = AwsAccount.objects.filter(tenant=tenant, pk=account_id).select_related("organization").first()
    if account is None:
        raise Http404("No such account.")
    return account


# --- the list ----------------------------------------------------------------------------------------


@login_required
@require_GET
def account_list(request: HttpRequest) -> HttpResponse:
    tenant = member_tenant(request)
    accounts = (
        AwsAccount.objects.filter(tenant=tenant)
        .select_related("organization")
        .annotate(
            bucket_count=Count("buckets", filter=Q(buckets__missing_since__isnull=True)),
            protected_count=Count("buckets", filter=Q(buckets__protected=True)),
        )
        .order_by("created_at")
    )
    organizations = (
        AwsOrganization.objects.filter(tenant=tenant)
        .annotate(account_count=Count("accounts"))
        .order_by("created_at")
    )
    return render(
        request,
        "linked_accounts/list.html",
        {"accounts": accounts, "organizations": organizations, **roles(request)},
    )


# --- step 1: the account id ----------------------------------------------------------------------------


class LinkForm(forms.Form):
    account_id = forms.RegexField(
        regex=r"^\s*\d{12}\s*$",
        label="AWS account id",
        help_text="12 digits, as shown in the AWS console's account menu.",
        error_messages={"invalid": "An AWS account id is 12 digits."},
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    name = forms.CharField(
        max_length=200, required=False, label="Name", help_text="Optional: what your team calls it."
    )
    deploy = forms.ChoiceField(
        label="How the role is deployed",
        choices=[
            ("stack", "A CloudFormation stack in this account"),
            ("stackset", "A StackSet from the management account of an AWS Organization"),
        ],
        initial="stack",
        widget=forms.RadioSelect,
    )
    organization = forms.ChoiceField(
        label="Organisation",
        required=False,
        help_text="The organisation whose StackSet deployed the role in this account.",
    )
    organization_name = forms.CharField(
        max_length=200, required=False, label="Name of a new organisation", help_text="Optional."
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.organizations = {str(o.pk): o for o in AwsOrganization.objects.filter(tenant=tenant)}
        self.fields["organization"].choices = [  # type: ignore[attr-defined]
            (NEW_ORGANIZATION, "A new organisation"),
            *((pk, str(o)) for pk, o in self.organizations.items()),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("deploy") == "stackset" and not data.get("organization"):
            self.add_error("organization", "Choose the organisation, or a new one.")
        return data


@login_required
def account_new(request: HttpRequest) -> HttpResponse:
    tenant = member_tenant(request, Role.ADMIN)
    form = LinkForm(request.POST or None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        actor = Actor.from_request(request)
        organization = None
        try:
            if data["deploy"] == "stackset":
                if data["organization"] == NEW_ORGANIZATION:
                    organization = services.create_organization(tenant, actor, data["organization_name"])
                else:
                    organization = form.organizations[data["organization"]]
            account = services.link_account(
                tenant, actor, data["account_id"].strip(), data["name"], organization=organization
            )
        except ServiceError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, f"Account {account.account_id} added. Next: deploy the role.")
            return redirect("linked-account", account_id=account.pk)
    return render(request, "linked_accounts/new.html", {"form": form})


# --- an account's page: deploy the role, verify, discover -----------------------------------------


class VerifyForm(forms.Form):
    role_arn = forms.CharField(
        max_length=2048,
        label="Role ARN",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, account: AwsAccount, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        example = role_arn_example(account)
        self.fields["role_arn"].help_text = f"The stack's RoleArn output, e.g. {example}."
        self.fields["role_arn"].widget.attrs["placeholder"] = example


class RenameForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, label="Name")


# What a refused verification means and what to do, by the service's error code.
_VERIFY_HELP: dict[str, tuple[str, list[str]]] = {
    "role_refused": (
        "AWS would not let s3av assume this role.",
        [
            "The role may not exist (yet): check that the stack finished deploying, and copy the ARN "
            "from its RoleArn output.",
            "The role's trust policy may not trust s3av: it must name {principal} as the principal.",
            "The external id in the trust policy may not match: it must be {external_id}. A template "
            "downloaded for another account, or before this account was added again, has another one.",
        ],
    ),
    "external_id_not_required": (
        "The role works without the external id, so s3av refuses it.",
        [
            "Anyone who learns the role's ARN could then have s3av act on your account (the confused "
            "deputy problem).",
            "Deploy the template from this page: its trust policy has the sts:ExternalId condition. Then "
            "verify again.",
        ],
    ),
    "external_id_unconfirmed": (
        "s3av could not check that the role requires the external id.",
        ["Try again in a minute. If it keeps failing, tell whoever runs this s3av deployment."],
    ),
    "region_disabled": (
        "AWS STS is turned off in this region of your account.",
        ["Enable the STS regional endpoint in IAM's account settings, then verify again."],
    ),
    "service_credentials": (
        "s3av's own AWS credentials were refused.",
        ["This is a problem of this s3av deployment, not of your role: tell whoever runs it."],
    ),
    "unreachable": (
        "s3av could not reach AWS.",
        ["Try again in a minute. If it keeps failing, tell whoever runs this s3av deployment."],
    ),
    "assume_failed": (
        "AWS refused the role for another reason.",
        [
            "Check the role in the IAM console, redeploy the template from this page if in doubt, and "
            "try again."
        ],
    ),
}


def verify_help(code: str, account: AwsAccount) -> dict[str, Any] | None:
    """The headline and the checklist shown under a refused verification, or None."""
    if code not in _VERIFY_HELP:
        return None
    headline, steps = _VERIFY_HELP[code]
    values = {"principal": settings.AWS_SERVICE_PRINCIPAL, "external_id": account.role_external_id}
    return {"headline": headline, "steps": [step.format(**values) for step in steps]}


def _detail_context(request: HttpRequest, account: AwsAccount, **extra: Any) -> dict[str, Any]:
    buckets = Bucket.objects.filter(tenant=account.tenant, account=account).order_by("name")
    context: dict[str, Any] = {
        "account": account,
        "buckets": buckets,
        "principal": settings.AWS_SERVICE_PRINCIPAL,
        "verify_form": VerifyForm(initial={"role_arn": account.role_arn}, account=account),
        "rename_form": RenameForm(initial={"name": account.name}),
        "connected": account.status == AwsAccount.Status.CONNECTED,
        **roles(request),
    }
    context.update(extra)
    return context


@login_required
@require_GET
def account_detail(request: HttpRequest, account_id: Any) -> HttpResponse:
    tenant = member_tenant(request)
    account = _account(tenant, account_id)
    return render(request, "linked_accounts/detail.html", _detail_context(request, account))


@login_required
@require_POST
def account_verify(request: HttpRequest, account_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.ADMIN)
    account = _account(tenant, account_id)
    form = VerifyForm(request.POST, account=account)
    help_text = None
    if form.is_valid():
        try:
            account = services.verify_account(
                tenant, Actor.from_request(request), account, form.cleaned_data["role_arn"]
            )
        except ServiceError as exc:
            form.add_error("role_arn", exc.message)
            help_text = verify_help(exc.code or "", account)
            account.refresh_from_db()
        else:
            messages.success(request, "The role works. Next: discover the account's buckets.")
            return redirect(f"{reverse('linked-account', args=[account.pk])}#discover")
    context = _detail_context(request, account, verify_form=form, verify_help=help_text)
    return render(request, "linked_accounts/detail.html", context)


@login_required
@require_POST
def account_discover(request: HttpRequest, account_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.OPERATOR)
    account = _account(tenant, account_id)
    try:
        summary = discovery.discover_buckets(tenant, Actor.from_request(request), account)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        found, new, missing = summary["found"], summary["new"], summary["newly_missing"]
        text = f"Found {found} bucket{'s' if found != 1 else ''}: {new} new"
        if missing:
            text += f", {missing} no longer there"
        messages.success(request, text + ".")
        for problem in summary["problems"]:
            messages.warning(request, f"Could not read every setting of {problem}.")
    return redirect(f"{reverse('linked-account', args=[account.pk])}#buckets")


@login_required
@require_POST
def account_rename(request: HttpRequest, account_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.ADMIN)
    account = _account(tenant, account_id)
    form = RenameForm(request.POST)
    if not form.is_valid():
        return render(
            request, "linked_accounts/detail.html", _detail_context(request, account, rename_form=form)
        )
    services.update_account(tenant, Actor.from_request(request), account, name=form.cleaned_data["name"])
    messages.success(request, "Name saved.")
    return redirect("linked-account", account_id=account.pk)


# --- the templates -----------------------------------------------------------------------------------

_TEMPLATE_KINDS = {"account", "stackset"}
_SYNTAXES = {"json": "application/json", "yaml": "application/yaml"}


@login_required
@require_GET
def account_template(request: HttpRequest, account_id: Any, kind: str, syntax: str) -> HttpResponse:
    """The CloudFormation template, as a download (the API's ``template`` action, for a browser)."""
    tenant = member_tenant(request)
    account = _account(tenant, account_id)
    if kind not in _TEMPLATE_KINDS or syntax not in _SYNTAXES:
        raise Http404
    if kind == "stackset" and account.organization is None:
        raise Http404("This account was linked on its own: its role is a stack, not a StackSet.")
    render_template = templates.stackset_template if kind == "stackset" else templates.role_template
    body = templates.render(render_template(settings.AWS_SERVICE_PRINCIPAL, account.role_external_id), syntax)
    response = HttpResponse(body, content_type=_SYNTAXES[syntax])
    response["Content-Disposition"] = f'attachment; filename="s3av-{account.account_id}-{kind}.{syntax}"'
    return response


def _organization(tenant: Tenant, organization_id: Any) -> AwsOrganization:
    # Another tenant's organisation is "not found", exactly like a missing one.
    organization = AwsOrganization.objects.filter(tenant=tenant, pk=organization_id).first()
    if organization is None:
        raise Http404("No such organisation.")
    return organization


@login_required
@require_GET
def organization_template(request: HttpRequest, organization_id: Any, kind: str, syntax: str) -> HttpResponse:
    """The organisation's StackSet (for its management account), or the same role as a single stack."""
    tenant = member_tenant(request)
    organization = _organization(tenant, organization_id)
    if kind not in _TEMPLATE_KINDS or syntax not in _SYNTAXES:
        raise Http404
    render_template = templates.stackset_template if kind == "stackset" else templates.role_template
    body = templates.render(render_template(settings.AWS_SERVICE_PRINCIPAL, organization.external_id), syntax)
    response = HttpResponse(body, content_type=_SYNTAXES[syntax])
    response["Content-Disposition"] = f'attachment; filename="s3av-org-{organization.pk}-{kind}.{syntax}"'
    return response


@login_required
def organization_delete(request: HttpRequest, organization_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.ADMIN)
    organization = _organization(tenant, organization_id)
    if request.method != "POST":
        return render(
            request,
            "components/confirm.html",
            {
                "title": f"Delete organisation {organization}?",
                "consequences": [
                    "s3av forgets the organisation and its external id. Roles its StackSet deployed can no "
                    "longer be linked under it.",
                    "Only an organisation with no linked account can be deleted: remove its accounts first.",
                ],
                "action_url": request.path,
                "confirm_label": "Delete the organisation",
                "cancel_url": reverse("linked-accounts"),
                "danger": True,
            },
        )
    try:
        services.delete_organization(tenant, Actor.from_request(request), organization)
    except ServiceError as exc:
        messages.error(
            request, exc.message.replace(" (DELETE /api/v1/accounts/{id} tears each one down)", "")
        )
    else:
        messages.success(request, f"Organisation {organization} deleted.")
    return redirect("linked-accounts")


# --- removal -----------------------------------------------------------------------------------------


@login_required
def account_remove(request: HttpRequest, account_id: Any) -> HttpResponse:
    """GET: what removing will do; POST: tear down, forget the account, show the report."""
    tenant = member_tenant(request, Role.ADMIN)
    account = _account(tenant, account_id)
    if request.method != "POST":
        protected = list(
            Bucket.objects.filter(tenant=tenant, account=account, protected=True)
            .order_by("name")
            .values_list("name", flat=True)
        )
        total = Bucket.objects.filter(tenant=tenant, account=account).count()
        if protected:
            shown = ", ".join(protected[:20]) + (
                f" and {len(protected) - 20} more" if len(protected) > 20 else ""
            )
            first = (
                f"Protection is removed from {len(protected)} bucket{'s' if len(protected) != 1 else ''} "
                f"({shown}): s3av takes its event notification out of each bucket's configuration (the "
                "rest of it is kept) and deletes its queues."
            )
        else:
            first = "No bucket of this account is protected, so nothing in AWS needs removing."
        return render(
            request,
            "components/confirm.html",
            {
                "title": f"Remove account {account.account_id}?",
                "consequences": [
                    first,
                    f"s3av forgets the account, its {total} bucket{'s' if total != 1 else ''} and their scan "
                    "results. The objects and their tags in S3 stay as they are.",
                    "The role you deployed stays: delete its stack in CloudFormation when you no longer "
                    "need it.",
                ],
                "action_url": request.path,
                "confirm_label": "Remove the account",
                "cancel_url": reverse("linked-account", args=[account.pk]),
                "danger": True,
            },
        )
    label = str(account)
    report = services.delete_account(tenant, Actor.from_request(request), account)
    return render(request, "linked_accounts/removed.html", {"label": label, "report": report})


def role_arn_example(account: AwsAccount) -> str:
    return f"arn:{aws.partition_of(account)}:iam::{account.account_id}:role/{templates.ROLE_NAME_DEFAULT}"

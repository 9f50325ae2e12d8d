"""Portal pages: notification channels (Settings) — SNS topics, webhooks, email — and "send a test".

Viewers read them with webhook URLs masked (as in the API); admins create, edit, delete and test them
through ``scanning.notifications.services``, which also checks what a channel may be
(``channel_problems``, the API's rules).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Role, Tenant
from accounts.portal import add_errors, member_tenant, roles
from accounts.services import Actor, ServiceError
from linked_accounts.models import AwsAccount
from scanning.models import ChannelKind, NotificationChannel, Verdict
from scanning.notifications import services as channels
from scanning.notifications.events import DEPLOYMENT_EVENTS, TENANT_EVENTS

EVENT_LABELS = {
    "agent.lost": "A scanning worker stopped answering",
    "engine.down": "A scanning engine is down",
    "signatures.stale": "Virus signatures are out of date",
    "signatures.rejected": "A signature update was rejected",
    "bucket.protected": "A bucket was protected",
    "bucket.unprotected": "A bucket's protection was removed",
    "bucket.discovered": "New buckets were discovered",
}
VERDICT_LABELS = {
    Verdict.INFECTED.value: "Infected",
    Verdict.UNSCANNABLE.value: "Unscannable",
    Verdict.ERROR.value: "Error (could not be scanned)",
    Verdict.CLEAN.value: "Clean",
    Verdict.INFECTED_ALLOWED.value: "Released as a false positive",
}


class AccountChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name or obj.account_id} ({obj.account_id})"


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name")
    kind = forms.ChoiceField(choices=ChannelKind.choices, label="Kind", widget=forms.RadioSelect)
    target = forms.CharField(
        max_length=2048,
        required=False,
        label="Target",
        help_text="SNS: the topic ARN. Webhook: the https URL s3av posts to (signed, see the secret). "
        "Email: leave empty; it goes to the tenant's admins.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    account = AccountChoiceField(
        queryset=AwsAccount.objects.none(),
        required=False,
        label="Account of the SNS topic",
        empty_label="—",
        help_text="SNS only: the linked account that owns the topic (its role publishes).",
    )
    results = forms.MultipleChoiceField(
        label="Send",
        widget=forms.CheckboxSelectMultiple,
        choices=[
            ("Verdicts", list(VERDICT_LABELS.items())),
            (
                "Operational events (webhook and SNS)",
                [(k, EVENT_LABELS[k]) for k in TENANT_EVENTS + DEPLOYMENT_EVENTS],
            ),
        ],
        initial=[Verdict.INFECTED.value],
        error_messages={"required": "Choose at least one verdict or event to send."},
    )
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")

    def __init__(self, *args: Any, tenant: Tenant, channel: NotificationChannel | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.channel = channel
        self.fields["account"].queryset = AwsAccount.objects.filter(tenant=tenant).order_by("created_at")  # type: ignore[attr-defined]
        if channel is not None:
            # A channel keeps its kind (the API refuses a change too).
            self.fields["kind"].disabled = True
            self.fields["kind"].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        kind = self.channel.kind if self.channel is not None else data.get("kind")
        target_changed = self.channel is None or data.get("target", "") != self.channel.target
        problems = channels.channel_problems(
            kind=kind,
            target=data.get("target", ""),
            account=data.get("account"),
            results=data.get("results", []),
            check_target=target_changed,
        )
        for field, messages_ in problems.items():
            for message in messages_:
                self.add_error(field if field in self.fields else None, message)
        return data


def _channel(tenant: Tenant, channel_id: Any) -> NotificationChannel:
    # Another tenant's channel is "not found", exactly like a missing one.
    channel = (
        NotificationChannel.objects.filter(tenant=tenant, pk=channel_id).select_related("account").first()
    )
    if channel is None:
        raise Http404("No such channel.")
    return channel


def _decorate(channel: NotificationChannel, can_admin: bool) -> NotificationChannel:
    channel.shown_target = channel.target if can_admin else channels.masked_target(channel)  # type: ignore[attr-defined]
    channel.filter_labels = [  # type: ignore[attr-defined]
        VERDICT_LABELS.get(r) or EVENT_LABELS.get(r, r) for r in channel.results or []
    ]
    return channel


@login_required
@require_GET
def channel_list(request: HttpRequest) -> HttpResponse:
    tenant = member_tenant(request)
    can = roles(request)
    rows = [
        _decorate(c, can["can_admin"])
        for c in NotificationChannel.objects.filter(tenant=tenant)
        .select_related("account")
        .order_by("name", "created_at")
    ]
    return render(request, "scanning/channels.html", {"channels": rows, **can})


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    account = data.get("account")
    return {
        "name": data["name"],
        "target": data.get("target", ""),
        "account_id": account.pk if account is not None else None,
        "results": list(data["results"]),
        "enabled": data["enabled"],
    }


@login_required
def channel_new(request: HttpRequest) -> HttpResponse:
    tenant = member_tenant(request, Role.ADMIN)
    form = ChannelForm(request.POST or None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        try:
            channel = channels.create_channel(
                tenant,
                Actor.from_request(request),
                kind=form.cleaned_data["kind"],
                **_fields(form.cleaned_data),
            )
        except (ServiceError, DjangoValidationError) as exc:
            add_errors(form, exc, {"account_id": "account"})
        else:
            messages.success(request, f"Channel {channel.name!r} created. Send a test to check it.")
            if channel.secret:
                # The signing secret is shown once, on this answer; the page is not cached.
                context = {"channel": _decorate(channel, True), "secret": channel.secret, **roles(request)}
                response = render(request, "scanning/channel_created.html", context)
                response["Cache-Control"] = "no-store"
                return response
            return redirect("channels")
    return render(
        request, "scanning/channel_form.html", {"form": form, "channel": None, "verdicts": VERDICT_LABELS}
    )


@login_required
def channel_detail(request: HttpRequest, channel_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.ADMIN)
    channel = _channel(tenant, channel_id)
    initial = {
        "name": channel.name,
        "kind": channel.kind,
        "target": channel.target,
        "account": channel.account_id,
        "results": channel.results,
        "enabled": channel.enabled,
    }
    form = ChannelForm(request.POST or None, tenant=tenant, channel=channel, initial=initial)
    if request.method == "POST" and form.is_valid():
        changes = {k: v for k, v in _fields(form.cleaned_data).items() if v != getattr(channel, k)}
        try:
            if changes:
                channels.update_channel(tenant, Actor.from_request(request), channel, **changes)
        except (ServiceError, DjangoValidationError) as exc:
            add_errors(form, exc, {"account_id": "account"})
        else:
            messages.success(request, "Channel saved." if changes else "Nothing changed.")
            return redirect("channels")
    context = {"form": form, "channel": _decorate(channel, True), "verdicts": VERDICT_LABELS}
    return render(request, "scanning/channel_form.html", context)


@login_required
def channel_delete(request: HttpRequest, channel_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.ADMIN)
    channel = _channel(tenant, channel_id)
    if request.method != "POST":
        return render(
            request,
            "components/confirm.html",
            {
                "title": f"Delete channel {channel.name}?",
                "consequences": [
                    f"Nothing more is sent to {channel.get_kind_display()} "
                    f"{channels.masked_target(channel) or '(the tenant admins)'}.",
                    "Messages still waiting to be sent to it are not sent.",
                ],
                "action_url": request.path,
                "confirm_label": "Delete the channel",
                "cancel_url": reverse("channel", args=[channel.pk]),
                "danger": True,
            },
        )
    channels.delete_channel(tenant, Actor.from_request(request), channel)
    messages.success(request, f"Channel {channel.name!r} deleted.")
    return redirect("channels")


@login_required
@require_POST
def channel_test(request: HttpRequest, channel_id: Any) -> HttpResponse:
    tenant = member_tenant(request, Role.ADMIN)
    channel = _channel(tenant, channel_id)
    error = channels.send_test_message(tenant, Actor.from_request(request), channel)
    if error:
        messages.error(request, f"The test to {channel.name!r} was not delivered: {error}")
    else:
        messages.success(request, f"A test message was delivered to {channel.name!r}.")
    return redirect("channels")

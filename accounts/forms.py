"""The portal's forms for members, API keys, tenant settings and the audit log's filters.

They check the shape of what was typed and name the field that is wrong; the rules themselves (the
last admin, the expiry window, SSO before requiring it) stay in accounts.services and Tenant.clean,
whose errors the views put next to the same fields.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, time
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat

from accounts.models import MAX_CIDRS, MAX_MONTHLY_SCAN_BYTES, MAX_SCAN_BYTES, Role
from s3av.env import parse_size

ROLE_HELP = (
    "Admin: everything, members and settings included. Operator: protect buckets, run scans, triage "
    "findings. Viewer: read only. No access: signed in, sees nothing."
)


class InviteMemberForm(forms.Form):
    email = forms.EmailField(label="Email address", max_length=254, widget=forms.EmailInput())
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER, help_text=ROLE_HELP)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What uses the key, e.g. “CI upload check”. Shown in the audit log.",
    )
    role = forms.ChoiceField(
        choices=Role.choices, initial=Role.VIEWER, help_text="Give a key the least role its job needs."
    )
    expires_at = forms.DateField(
        label="Expires on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional, at most ten years ahead. The key stops working at the end of that day (UTC).",
    )

    def clean_expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_at")
        if day is None:
            return None
        return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


class SizeField(forms.CharField):
    """A byte count typed as 500M, 2G or plain bytes; empty is no limit."""

    def __init__(self, *, maximum: int, **kwargs: Any) -> None:
        self.maximum = maximum
        super().__init__(required=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, int):
            for unit, size in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
                if value % size == 0:
                    return f"{value // size}{unit}"
        return value

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        text = str(value or "").strip()
        if not text:
            return None
        try:
            size = parse_size(text)
        except ValueError:
            raise ValidationError(f"“{text}” is not a size such as 500M, 2G or 1T.") from None
        if size > self.maximum:
            raise ValidationError(f"At most {filesizeformat(self.maximum)}.")
        return size


class TenantSettingsForm(forms.Form):
    name = forms.CharField(max_length=200)
    allowed_cidrs = forms.CharField(
        label="Allowed address ranges",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false"}),
        help_text=(
            "One CIDR range a line, e.g. 203.0.113.0/24 or 2001:db8::/32. Only these addresses reach the "
            "portal and the API. Empty: any address."
        ),
    )
    sso_required = forms.BooleanField(
        label="Require single sign-on for every member",
        required=False,
        help_text="Password sign-in is refused for members once this is on (support staff excepted).",
    )
    max_scan_bytes = SizeField(
        label="Largest upload to the scan API",
        maximum=MAX_SCAN_BYTES,
        help_text="e.g. 500M or 2G; empty: the server's limit.",
    )
    monthly_scan_bytes_limit = SizeField(
        label="Monthly scan limit",
        maximum=MAX_MONTHLY_SCAN_BYTES,
        help_text=(
            "Bytes scanned a month (every kind of scan counts) past which the scan API refuses uploads "
            "until the month ends; bucket and event scans go on. e.g. 500G or 10T; empty: no limit."
        ),
    )

    def clean_allowed_cidrs(self) -> list[str]:
        text = self.cleaned_data.get("allowed_cidrs", "")
        entries = [part for line in text.splitlines() for part in line.replace(",", " ").split()]
        if len(entries) > MAX_CIDRS:
            raise ValidationError(f"At most {MAX_CIDRS} ranges.")
        ranges, bad = [], []
        for entry in entries:
            try:
                ranges.append(str(ipaddress.ip_network(entry, strict=False)))
            except ValueError:
                bad.append(entry)
        if bad:
            raise ValidationError(
                [f"“{entry}” is not a CIDR range such as 203.0.113.0/24." for entry in bad[:5]]
            )
        return list(dict.fromkeys(ranges))


class AuditFilterForm(forms.Form):
    """The audit log's filters; each is optional and a bad value is a field error."""

    actor = forms.CharField(
        required=False,
        max_length=254,
        widget=forms.TextInput(attrs={"placeholder": "email or key"}),
    )
    action = forms.CharField(
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "e.g. member. or member.add"}),
    )
    target = forms.CharField(
        required=False, max_length=254, widget=forms.TextInput(attrs={"placeholder": "name or id"})
    )
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "“To” is before “From”.")
        return data

"""The dashboard (the portal's home page): scanning over time, open findings, buckets, running scans,
the fleet's health and this month's usage, for the member's tenant.

Every figure is one aggregate query, so the page costs the same number of queries however much the
tenant has scanned; the charts are SVG drawn here from those aggregates (no script, no inline style).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.db.models.functions import Trunc
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.formats import number_format
from django.views.decorators.http import require_safe

from accounts.models import Role, role_at_least
from accounts.views import home as no_tenant_home
from scanning.fleet import agents as fleet
from scanning.models import Bucket, ScanJob, ScanResult, SignatureUpdate, TriageState, UsageMonth, Verdict
from scanning.views.common import tenant_for_viewer
from scanning.views.keyset import capped_count

# Stacked from the bottom in this order; colours pass 3:1 against white (WCAG AA for graphics).
SERIES = [
    (Verdict.CLEAN, "#15803d"),
    (Verdict.INFECTED, "#b91c1c"),
    (Verdict.UNSCANNABLE, "#a16207"),
    (Verdict.ERROR, "#c2410c"),
    (Verdict.INFECTED_ALLOWED, "#4338ca"),
]
BYTES_COLOUR = "#1d4ed8"
CHART_WIDTH = 480  # SVG units; the SVG scales to its box, keeping this aspect
CHART_HEIGHT = 80
TICK_ROOM = 20  # below the bars, for the time labels
SETTLED = timedelta(minutes=10)


@dataclass
class Segment:
    verdict: str
    count: int
    y: float
    height: float
    fill: str


@dataclass
class Slot:
    start: datetime
    label: str
    counts: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    x: float = 0
    centre: float = 0
    segments: list[Segment] = field(default_factory=list)
    bytes_y: float = CHART_HEIGHT
    bytes_height: float = 0
    tick: str = ""

    @property
    def objects(self) -> int:
        return sum(self.counts.values())

    @property
    def summary(self) -> str:
        parts = [f"{number_format(n)} {v}" for v, n in self.counts.items() if n]
        noun = "object" if self.objects == 1 else "objects"
        detail = f" ({', '.join(parts)})" if parts else ""
        return f"{self.label}: {number_format(self.objects)} {noun}{detail}"


@dataclass
class Chart:
    title: str
    slots: list[Slot]
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    box_height: int = CHART_HEIGHT + TICK_ROOM
    bar: float = 0
    max_objects: int = 0
    max_bytes: int = 0
    objects: int = 0
    bytes: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def _slots(kind: str, now: datetime) -> list[Slot]:
    local = timezone.localtime(now)
    if kind == "hour":
        top = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        starts = [timezone.localtime(top - timedelta(hours=n)) for n in range(23, -1, -1)]
        return [
            Slot(s, s.strftime("%H:00"), tick=s.strftime("%H:00") if s.hour % 6 == 0 else "") for s in starts
        ]
    zone = timezone.get_current_timezone()
    days = [local.date() - timedelta(days=n) for n in range(29, -1, -1)]
    starts = [timezone.make_aware(datetime.combine(d, time.min), zone) for d in days]
    return [
        Slot(s, s.strftime("%d %b"), tick=s.strftime("%d %b") if (29 - n) % 7 == 0 else "")
        for n, s in enumerate(starts)
    ]


def _cache_key(tenant: Any, kind: str, slot: Slot) -> str:
    zone = timezone.get_current_timezone_name()
    return f"s3av:dashboard:{tenant.pk}:{kind}:{zone}:{int(slot.start.timestamp())}"


def _fill(tenant: Any, kind: str, slots: list[Slot], now: datetime) -> None:
    """Count each slot's verdicts and bytes: the settled slots from the cache, the rest in one query.

    A slot that ended more than ``SETTLED`` ago gets no new results (``scanned_at`` is the time a
    verdict is recorded), so its figures are kept; a month of a big tenant's results is then read once
    a day instead of on every view of the dashboard.
    """
    ends = [s.start for s in slots[1:]] + [now]
    settled = [s for s, end in zip(slots, ends, strict=True) if end <= now - SETTLED]
    keys = {_cache_key(tenant, kind, s): s for s in settled}
    known = cache.get_many(list(keys))
    for key, figures in known.items():
        keys[key].counts, keys[key].bytes = dict(figures["counts"]), figures["bytes"]
    missing = [s for s in slots if _cache_key(tenant, kind, s) not in known]
    if not missing:
        return
    by_start = {s.start.timestamp(): s for s in missing}
    rows = (
        ScanResult.objects.filter(tenant=tenant, scanned_at__gte=missing[0].start)
        .exclude(verdict="")
        .annotate(slot=Trunc("scanned_at", kind, tzinfo=timezone.get_current_timezone()))
        .values("slot", "verdict")
        .annotate(n=Count("pk"), size=Sum("size"))
        .order_by()
    )
    for row in rows:
        slot = by_start.get(row["slot"].timestamp())
        if slot is not None:
            slot.counts[row["verdict"]] = row["n"]
            slot.bytes += row["size"] or 0
    cache.set_many(
        {key: {"counts": s.counts, "bytes": s.bytes} for key, s in keys.items() if key not in known},
        timeout=int(timedelta(days=2).total_seconds()),
    )


def chart(tenant: Any, kind: str, now: datetime) -> Chart:
    """Objects (by verdict) and bytes scanned per hour of the last 24 hours, or per day of the last 30."""
    slots = _slots(kind, now)
    _fill(tenant, kind, slots, now)
    result = Chart(
        "Last 24 hours, by hour" if kind == "hour" else "Last 30 days, by day",
        slots,
        bar=round(CHART_WIDTH / len(slots) * 0.8, 2),
    )
    result.max_objects = max((s.objects for s in slots), default=0)
    result.max_bytes = max((s.bytes for s in slots), default=0)
    for n, slot in enumerate(slots):
        slot.x = round(n * CHART_WIDTH / len(slots) + 1, 2)
        slot.centre = round(slot.x + result.bar / 2, 2)
        y = float(CHART_HEIGHT)
        for verdict, colour in SERIES:
            count = slot.counts.get(verdict, 0)
            result.counts[verdict] = result.counts.get(verdict, 0) + count
            if count and result.max_objects:
                height = max(count / result.max_objects * (CHART_HEIGHT - 4), 1.0)
                y -= height
                slot.segments.append(Segment(verdict, count, round(y, 2), round(height, 2), colour))
        if slot.bytes and result.max_bytes:
            slot.bytes_height = round(max(slot.bytes / result.max_bytes * (CHART_HEIGHT - 4), 1.0), 2)
            slot.bytes_y = round(CHART_HEIGHT - slot.bytes_height, 2)
        result.objects += slot.objects
        result.bytes += slot.bytes
    return result


def fleet_health(now: datetime) -> dict[str, Any]:
    """Counts only: the fleet is the deployment's, and what each worker does may be another tenant's."""
    agents = fleet.current_agents(now)
    running = [a for a in agents if a.status_at(now, fleet.lost_after()) == "active"]
    stale = [
        a for a in running if a.signature_age is not None and a.signature_age > settings.SIGNATURES_MAX_AGE
    ]
    versions = sorted({a.signature_version for a in running if a.signature_version})
    ages = [a.signature_age for a in running if a.signature_age is not None]
    return {
        "active": len(running),
        "lost": sum(1 for a in agents if a.status_at(now, fleet.lost_after()) == "lost"),
        "engine_down": sum(1 for a in running if not a.engine_ok),
        "stale": len(stale),
        "versions": versions,
        "oldest_age_hours": max(ages) // 3600 if ages else None,
        "max_age_hours": settings.SIGNATURES_MAX_AGE // 3600,
        "last_update": SignatureUpdate.objects.order_by("-started_at").first(),
    }


def _running(tenant: Any) -> tuple[list[ScanJob], int]:
    jobs = ScanJob.objects.filter(tenant=tenant).running()
    shown = list(jobs.select_related("bucket").order_by("created_at")[:5])
    return shown, jobs.count() if len(shown) == 5 else len(shown)


@login_required
@require_safe
def running_scans(request: HttpRequest) -> HttpResponse:
    """The dashboard's "Scans running" card alone: htmx swaps it in every few seconds while scans run."""
    tenant = tenant_for_viewer(request)
    running, running_count = _running(tenant)
    return render(request, "scanning/_running.html", {"running": running, "running_count": running_count})


@login_required
@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    tenant = getattr(request, "tenant", None)
    if tenant is None or not role_at_least(getattr(request, "role", None), Role.VIEWER):
        # No tenant, or no role yet: the page that says so (and who can grant one).
        return no_tenant_home(request)
    now = timezone.now()
    open_findings, more_open = capped_count(
        ScanResult.objects.filter(tenant=tenant, triage_state=TriageState.OPEN)
    )
    counted = Bucket.objects.filter(tenant=tenant).aggregate(
        on=Count("pk", filter=Q(protected=True, missing_since__isnull=True)),
        off=Count("pk", filter=Q(protected=False, missing_since__isnull=True)),
        gone=Count("pk", filter=Q(missing_since__isnull=False)),
    )
    buckets = {"protected": counted["on"], "unprotected": counted["off"], "missing": counted["gone"]}
    running, running_count = _running(tenant)
    month = timezone.now().astimezone(UTC).date().replace(day=1)
    usage = UsageMonth.objects.filter(tenant=tenant, month=month).first()
    limit = tenant.monthly_scan_bytes_limit
    used = usage.bytes_scanned if usage else 0
    return render(
        request,
        "scanning/dashboard.html",
        {
            "day": chart(tenant, "hour", now),
            "month": chart(tenant, "day", now),
            "series": SERIES,
            "bytes_colour": BYTES_COLOUR,
            "open_findings": open_findings,
            "more_open": more_open,
            "buckets": buckets,
            "running": running,
            "running_count": running_count,
            "fleet": fleet_health(now),
            "usage": usage,
            "used": used,
            "limit": limit,
            "used_percent": min(100, round(used * 100 / limit)) if limit else None,
            "usage_month": month,
            "zone": timezone.get_current_timezone_name(),
        },
    )

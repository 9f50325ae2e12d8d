"""The portal's scanning pages. API routes live in s3av/urls.py's router (scanning/api/)."""

from django.urls import path

from scanning.views import buckets, dashboard, findings, history, jobs

urlpatterns = [
    path("", dashboard.dashboard, name="home"),
    path("dashboard/running", dashboard.running_scans, name="dashboard-running"),
    path("findings/", findings.findings, name="findings"),
    path("findings/export.csv", findings.export, name="findings-export"),
    path("findings/<uuid:result_id>/", findings.detail, name="finding"),
    path("findings/<uuid:result_id>/<slug:what>", findings.triage, name="finding-triage"),
    path("objects/history", history.history, name="object-history"),
    # The findings list was /results/ before: its links (and their filters) keep working.
    path("results/", findings.old_results, name="results"),
    path("results/<uuid:result_id>/<slug:what>", findings.old_triage),
    path("buckets/", buckets.buckets, name="buckets"),
    path("jobs/", jobs.jobs, name="jobs"),
]

"""The portal's scanning pages. API routes live in s3av/urls.py's router (scanning/api/)."""

from django.urls import path

from scanning.views import buckets, findings, jobs

urlpatterns = [
    path("results/", findings.results, name="results"),
    path("results/<uuid:result_id>/<slug:what>", findings.triage, name="triage"),
    path("buckets/", buckets.buckets, name="buckets"),
    path("jobs/", jobs.jobs, name="jobs"),
]

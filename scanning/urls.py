"""The portal's scanning pages. API routes live in s3av/urls.py's router (scanning/api/)."""

from django.urls import include, path

from scanning.views import (
    buckets,
    channels,
    dashboard,
    findings,
    history,
    jobs,
    linked_accounts,
    policies,
    schedules,
    usage,
)

# Linked accounts' pages live here, not in linked_accounts/: they show and discover buckets, and
# linked_accounts imports nothing of scanning (the import contracts in pyproject.toml).
linked_account_patterns = [
    path("", linked_accounts.account_list, name="linked-accounts"),
    path("new", linked_accounts.account_new, name="linked-account-new"),
    path("<uuid:account_id>/", linked_accounts.account_detail, name="linked-account"),
    path("<uuid:account_id>/verify", linked_accounts.account_verify, name="linked-account-verify"),
    path("<uuid:account_id>/discover", linked_accounts.account_discover, name="linked-account-discover"),
    path("<uuid:account_id>/rename", linked_accounts.account_rename, name="linked-account-rename"),
    path("<uuid:account_id>/remove", linked_accounts.account_remove, name="linked-account-remove"),
    path(
        "<uuid:account_id>/template/<slug:kind>.<slug:syntax>",
        linked_accounts.account_template,
        name="linked-account-template",
    ),
    path(
        "organizations/<uuid:organization_id>/template/<slug:kind>.<slug:syntax>",
        linked_accounts.organization_template,
        name="linked-organization-template",
    ),
    path(
        "organizations/<uuid:organization_id>/delete",
        linked_accounts.organization_delete,
        name="linked-organization-delete",
    ),
]

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
    # Buckets: protection, policy, read gate, scans of what they hold.
    path("buckets/", buckets.buckets, name="buckets"),
    path("buckets/<uuid:bucket_id>/", buckets.bucket_detail, name="bucket"),
    path("buckets/<uuid:bucket_id>/protect", buckets.bucket_protect, name="bucket-protect"),
    path("buckets/<uuid:bucket_id>/unprotect", buckets.bucket_unprotect, name="bucket-unprotect"),
    path("buckets/<uuid:bucket_id>/policy", buckets.bucket_policy, name="bucket-policy"),
    path("buckets/<uuid:bucket_id>/read-gate", buckets.bucket_read_gate, name="bucket-read-gate"),
    path("buckets/<uuid:bucket_id>/scan", buckets.bucket_scan, name="bucket-scan"),
    # Scans and their schedules.
    path("jobs/", jobs.job_list, name="jobs"),
    path("jobs/start", jobs.job_start, name="job-start"),
    path("jobs/<uuid:job_id>/progress", jobs.job_progress, name="job-progress"),
    path("jobs/<uuid:job_id>/cancel", jobs.job_cancel, name="job-cancel"),
    path("jobs/schedules/", schedules.schedule_list, name="schedules"),
    path("jobs/schedules/new", schedules.schedule_create, name="schedule-new"),
    path("jobs/schedules/<uuid:schedule_id>/", schedules.schedule_edit, name="schedule"),
    path("jobs/schedules/<uuid:schedule_id>/delete", schedules.schedule_delete, name="schedule-delete"),
    # Settings: scan policies and notification channels.
    path("settings/policies/", policies.policy_list, name="policies"),
    path("settings/policies/new", policies.policy_new, name="policy-new"),
    path("settings/policies/<uuid:policy_id>/", policies.policy_detail, name="policy"),
    path("settings/policies/<uuid:policy_id>/delete", policies.policy_delete, name="policy-delete"),
    path("settings/channels/", channels.channel_list, name="channels"),
    path("settings/channels/new", channels.channel_new, name="channel-new"),
    path("settings/channels/<uuid:channel_id>/", channels.channel_detail, name="channel"),
    path("settings/channels/<uuid:channel_id>/delete", channels.channel_delete, name="channel-delete"),
    path("settings/channels/<uuid:channel_id>/test", channels.channel_test, name="channel-test"),
    path("settings/usage", usage.usage, name="settings-usage"),
    path("linked-accounts/", include(linked_account_patterns)),
]

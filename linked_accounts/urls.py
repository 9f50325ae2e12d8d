"""Portal pages of linked accounts (included at /linked-accounts/)."""

from django.urls import path

from linked_accounts import views

urlpatterns = [
    path("", views.account_list, name="linked-accounts"),
    path("new", views.account_new, name="linked-account-new"),
    path("<uuid:account_id>/", views.account_detail, name="linked-account"),
    path("<uuid:account_id>/verify", views.account_verify, name="linked-account-verify"),
    path("<uuid:account_id>/discover", views.account_discover, name="linked-account-discover"),
    path("<uuid:account_id>/rename", views.account_rename, name="linked-account-rename"),
    path("<uuid:account_id>/remove", views.account_remove, name="linked-account-remove"),
    path(
        "<uuid:account_id>/template/<slug:kind>.<slug:syntax>",
        views.account_template,
        name="linked-account-template",
    ),
    path(
        "organizations/<uuid:organization_id>/template/<slug:kind>.<slug:syntax>",
        views.organization_template,
        name="linked-organization-template",
    ),
    path(
        "organizations/<uuid:organization_id>/delete",
        views.organization_delete,
        name="linked-organization-delete",
    ),
]

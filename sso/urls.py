from django.urls import path

from sso import views

urlpatterns = [
    path("start", views.start, name="sso-start"),
    path("settings", views.settings_page, name="sso-settings"),
    path("settings/delete", views.delete_page, name="sso-delete"),
    path("settings/require", views.require_page, name="sso-require"),
]

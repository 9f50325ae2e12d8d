from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from accounts import api as accounts_api
from accounts import views as accounts_views


class Router(SimpleRouter):
    """Accept ``/members/`` and ``/members``, ``/members/{id}`` and ``/members/{id}/`` alike."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = Router()
router.register("members", accounts_api.MemberViewSet, basename="member")
router.register("api-keys", accounts_api.ApiKeyViewSet, basename="api-key")
router.register("audit-events", accounts_api.AuditEventViewSet, basename="audit-event")

api_v1 = [
    path("me", accounts_api.MeView.as_view(), name="me"),
    path("tenant", accounts_api.TenantView.as_view(), name="tenant"),
    path(
        "schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="docs",
    ),
    *router.urls,
]

admin.site.site_header = "s3av support"

urlpatterns = [
    path("", accounts_views.home, name="home"),
    path("tenant/switch", accounts_views.switch_tenant, name="switch-tenant"),
    path("healthz", accounts_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
]

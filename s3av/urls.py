from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from accounts import views as accounts_views
from accounts.api import views as accounts_api
from linked_accounts.api import views as linked_accounts_api
from s3av import health
from s3av import middleware as api_answers
from scanning.api import agents as fleet_api
from scanning.api import buckets as buckets_api
from scanning.api import channels as channels_api
from scanning.api import jobs as jobs_api
from scanning.api import results as scanning_api
from scanning.api import scan as scan_api
from scanning.fleet import metrics
from sso.api import views as sso_api


class Router(SimpleRouter):
    """Accept ``/members/`` and ``/members``, ``/members/{id}`` and ``/members/{id}/`` alike."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = Router()
router.register("members", accounts_api.MemberViewSet, basename="member")
router.register("results", scanning_api.ScanResultViewSet, basename="result")
router.register("policies", scanning_api.ScanPolicyViewSet, basename="policy")
router.register("api-keys", accounts_api.ApiKeyViewSet, basename="api-key")
router.register("audit-events", accounts_api.AuditEventViewSet, basename="audit-event")
router.register("accounts", linked_accounts_api.AccountViewSet, basename="account")
router.register("accounts", buckets_api.AccountDiscoveryViewSet, basename="account-discovery")
router.register("organizations", linked_accounts_api.OrganizationViewSet, basename="organization")
router.register("buckets", buckets_api.BucketViewSet, basename="bucket")
router.register("jobs", jobs_api.ScanJobViewSet, basename="job")
router.register("schedules", jobs_api.ScheduleViewSet, basename="schedule")
router.register("channels", channels_api.ChannelViewSet, basename="channel")
router.register("agents", fleet_api.AgentViewSet, basename="agent")

api_v1 = [
    path("me", accounts_api.MeView.as_view(), name="me"),
    path("tenant", accounts_api.TenantView.as_view(), name="tenant"),
    path("usage", jobs_api.UsageView.as_view(), name="usage"),
    path("sso", sso_api.SsoView.as_view(), name="sso"),
    path("scan", scan_api.ScanUploadView.as_view(), name="scan"),
    path("scan/existing", scan_api.ScanExistingView.as_view(), name="scan-existing"),
    path(
        "schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="v1:schema", authentication_classes=[], permission_classes=[]
        ),
        name="docs",
    ),
    *router.urls,
]

admin.site.site_header = "s3av support"

urlpatterns = [
    # The home page is the dashboard (scanning/urls.py).
    path("tenant/switch", accounts_views.switch_tenant, name="switch-tenant"),
    # Answered by s3av.health.HealthCheckMiddleware before host checks; routed here for reverse().
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("", include("scanning.urls")),
    path("", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("sso/", include("sso.urls")),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    # Last: an unknown path under /api/ answers JSON 404, never an HTML page or the URL list.
    re_path(r"^api/", api_answers.api_not_found),
]

handler500 = "s3av.middleware.server_error"

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from console.health import healthz
from wecom.callback_views import wecom_callback

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    # Stable: pasted into WeCom's admin once per app.
    path("wecom/callback/<int:app_id>/", wecom_callback, name="wecom_callback"),
]

handler403 = "console.views.permission_denied"
handler404 = "console.views.page_not_found"

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from console.health import healthz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]

handler403 = "console.views.permission_denied"
handler404 = "console.views.page_not_found"

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _


class ConsoleAdminSite(admin.AdminSite):
    site_header = _("Customer tag console")
    site_title = _("Tag console")
    index_title = _("Dashboard")
    # The console has no public site: "View site" would only lead back here.
    site_url = None

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        # Every ModelAdmin, ours and third-party ones, checks ids and filters before it
        # queries (console/admin_guard.py).
        from django.contrib.admin import ModelAdmin

        from console.admin_guard import guarded

        super().register(model_or_iterable, guarded(admin_class or ModelAdmin), **options)

    @property
    def login_form(self) -> Any:  # type: ignore[override]
        # Imported late: the form reaches the audit log and the user model.
        from console.login_throttle import ThrottledAdminAuthenticationForm

        return ThrottledAdminAuthenticationForm

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        from console.dashboard import dashboard_panels

        context = {"dashboard_panels": dashboard_panels(request.user), **(extra_context or {})}
        return super().index(request, extra_context=context)

"""Error pages in the admin's frame: header, language switch and a way back, never a trace."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


def _page(request: HttpRequest, template: str, status: int) -> HttpResponse:
    context = admin.site.each_context(request)
    response = TemplateResponse(request, template, context, status=status)
    return response.render()


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _page(request, "403.html", 403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _page(request, "404.html", 404)

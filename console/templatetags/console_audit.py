from __future__ import annotations

from django import template
from django.contrib.admin.models import LogEntry

from console.audit import AuditContext, audit_context

register = template.Library()


@register.simple_tag
def audit_details(entry: LogEntry) -> AuditContext | None:
    return audit_context(entry)

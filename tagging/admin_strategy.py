"""Admin for WeCom strategy tags (placeholder, filled in below)."""

from django.contrib import admin

from console.admin import AuditedModelAdmin
from tagging.models import Strategy, Tag, TagGroup


@admin.register(Strategy)
class StrategyAdmin(AuditedModelAdmin):
    pass


@admin.register(TagGroup)
class TagGroupAdmin(AuditedModelAdmin):
    pass


@admin.register(Tag)
class TagAdmin(AuditedModelAdmin):
    pass

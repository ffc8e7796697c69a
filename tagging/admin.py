"""Admin of the tagging app; each feature keeps its admin in its own module."""

from tagging import admin_strategy  # noqa: F401  (WeCom strategy tags)

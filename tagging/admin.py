"""Admin of the tagging app; each feature registers its own in its module."""

# Issue 7: Official Account tags and bulk user-tag jobs.
from tagging import bulk_admin, oa_admin  # noqa: F401

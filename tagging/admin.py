"""Admin of the tagging app; each feature keeps its admin in its own module."""

from tagging import (  # noqa: F401  (Official Account tags, bulk jobs)
    admin_strategy,
    bulk_admin,
    oa_admin,
)

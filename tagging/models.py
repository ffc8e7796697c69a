"""Models of the tagging app.

Each feature keeps its models in its own module, imported here so that Django finds them.
"""

# Issue 7: Official Account tags and bulk user-tag jobs.
from tagging.bulk_models import BulkAudience, BulkAudienceMember, BulkAudienceRefusal  # noqa: F401
from tagging.oa_models import OfficialAccountTag  # noqa: F401

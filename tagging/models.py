"""The models Django loads for the tagging app: each feature keeps its own in its subpackage.

Import a model from its feature (``tagging.strategy.models``, ``tagging.official_account.models``,
``tagging.bulk.models``, ``tagging.customers.models``); this module exists because Django looks
for an app's models here.
"""

from tagging.bulk.models import (
    AudienceSource,
    BulkAudience,
    BulkAudienceMember,
    BulkAudienceRefusal,
)
from tagging.customers.models import (
    CustomerAudience,
    CustomerAudiencePair,
    CustomerAudienceRefusal,
    CustomerAudienceSource,
)
from tagging.official_account.models import OfficialAccountTag
from tagging.strategy.models import (
    OrderedItem,
    Strategy,
    StrategyPull,
    SyncedItem,
    SyncState,
    Tag,
    TagGroup,
)

__all__ = [
    "AudienceSource",
    "BulkAudience",
    "BulkAudienceMember",
    "BulkAudienceRefusal",
    "CustomerAudience",
    "CustomerAudiencePair",
    "CustomerAudienceRefusal",
    "CustomerAudienceSource",
    "OfficialAccountTag",
    "OrderedItem",
    "Strategy",
    "StrategyPull",
    "SyncState",
    "SyncedItem",
    "Tag",
    "TagGroup",
]

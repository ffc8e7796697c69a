"""The tagging app's admin: each feature registers its own in its subpackage."""

from tagging.bulk import admin as bulk_admin  # noqa: F401
from tagging.customers import admin as customers_admin  # noqa: F401
from tagging.official_account import admin as official_account_admin  # noqa: F401
from tagging.strategy import admin as strategy_admin  # noqa: F401

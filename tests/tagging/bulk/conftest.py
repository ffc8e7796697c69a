"""Fixtures the bulk tests share."""

from __future__ import annotations

import pytest

from tagging.official_account.models import OfficialAccountTag
from tagging.official_account.services import oa_tags_pull


@pytest.fixture
def tag(sandbox, account, actor) -> OfficialAccountTag:
    """The demo Official Account's tags pulled; its "新关注" tag."""
    oa_tags_pull(account=account, actor=actor)
    return OfficialAccountTag.objects.get(name="新关注")

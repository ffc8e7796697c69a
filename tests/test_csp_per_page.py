"""The policy is widened for one page only: remote pictures in the chatbot's phone preview."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD


def img_sources(response) -> list[str]:
    policy = response["Content-Security-Policy"]
    directive = next(part for part in policy.split("; ") if part.startswith("img-src "))
    return directive.split()[1:]


@pytest.mark.django_db
def test_only_the_reply_editor_loads_pictures_from_the_platform(client, editor):
    client.login(username=editor.username, password=PASSWORD)
    editor_page = client.get("/admin/chatbot/autoreply/add/")
    assert editor_page.status_code == 200
    assert {"https:", "http:"} <= set(img_sources(editor_page))
    for url in ("/admin/", "/admin/console/job/", "/admin/chatbot/autoreply/"):
        assert img_sources(client.get(url)) == ["'self'", "data:"], url

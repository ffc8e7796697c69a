"""Audiences of the customers who have, or lack, given tags (issue 21), read from WeCom."""

from __future__ import annotations

import pytest
from django.urls import reverse

from console.models import Job
from tagging.customers.audience import MEMBERS_READ_KIND, customer_audience_from_members
from tagging.customers.models import CustomerAudience
from tests.conftest import PASSWORD
from tests.tagging.customers.conftest import CORP, drain

pytestmark = pytest.mark.django_db


def pairs_of(audience: CustomerAudience) -> set[tuple[str, str]]:
    return set(audience.pairs.values_list("userid", "external_userid"))


@pytest.fixture
def marked(sandbox, strategy_tags) -> tuple[str, str, set[tuple[str, str]], set[tuple[str, str]]]:
    """Two tags on a few pairs of two members: (vip, churned, pairs with vip, pairs with both)."""
    vip, churned = strategy_tags[1][:2]
    customers = sandbox.state.customers
    with_vip: set[tuple[str, str]] = set()
    with_both: set[tuple[str, str]] = set()
    for userid in ("zhangsan", "lisi"):
        for number, ext in enumerate(customers.customers_of(CORP, userid)[:30]):
            tags = [vip, churned] if number % 3 == 0 else [vip]
            customers.put_tags(CORP, userid, ext, tags)
            with_vip.add((userid, ext))
            if number % 3 == 0:
                with_both.add((userid, ext))
    return vip, churned, with_vip, with_both


def test_the_customers_who_have_a_tag_over_every_member(sandbox, app, editor, marked):
    vip, _churned, with_vip, _both = marked

    audience = customer_audience_from_members(app=app, userids=[], user=editor, having=[vip])

    assert pairs_of(audience) == with_vip
    assert audience.accepted == 60
    assert vip in audience.source_label


def test_having_and_lacking_together(sandbox, app, editor, marked):
    vip, churned, with_vip, with_both = marked

    audience = customer_audience_from_members(
        app=app, userids=["lisi"], user=editor, having=[vip], lacking=[churned]
    )

    assert pairs_of(audience) == {p for p in with_vip - with_both if p[0] == "lisi"}


def test_the_customers_who_lack_a_tag(sandbox, app, editor, marked):
    vip, _churned, with_vip, _both = marked
    everyone = customer_audience_from_members(app=app, userids=["zhangsan"], user=editor)

    lacking = customer_audience_from_members(
        app=app, userids=["zhangsan"], user=editor, lacking=[vip]
    )

    assert pairs_of(lacking) == pairs_of(everyone) - with_vip
    assert lacking.accepted == everyone.accepted - 30


def test_the_form_takes_a_tag_condition_instead_of_members(client, sandbox, app, editor, marked):
    vip, churned, with_vip, _both = marked
    client.login(username=editor.username, password=PASSWORD)
    add_url = reverse("admin:tagging_customeraudience_add")
    form = {"app": app.pk, "add": churned, "remove": "", "source": "members", "members": ""}

    refused = client.post(add_url, {**form, "having": "", "lacking": ""}, HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 200
    assert "or a tag the customers have or lack" in refused.content.decode()
    both = client.post(add_url, {**form, "having": vip, "lacking": vip}, HTTP_ACCEPT_LANGUAGE="en")
    assert "cannot both have and lack" in both.content.decode()
    assert not CustomerAudience.objects.exists()

    answer = client.post(add_url, {**form, "having": vip, "lacking": ""})

    audience = CustomerAudience.objects.get()
    assert answer.status_code == 302 and f"/{audience.pk}/start/" in answer["Location"]
    drain(Job.objects.get(kind=MEMBERS_READ_KIND))
    assert pairs_of(audience) == with_vip

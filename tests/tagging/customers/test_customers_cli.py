"""tag_users --wecom: WeCom customers from a terminal."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from console.jobs.follow import JobFollower
from console.models import Job, JobItemFailure, JobStatus
from tests.tagging.customers.conftest import CORP, calls, drain
from wecom.sandbox.demo import demo_external_userid

pytestmark = pytest.mark.django_db


@pytest.fixture
def drained_wait(monkeypatch):
    """`--wait` with the test as the worker: each wait step runs the job's shards."""

    def step(self, seconds: float) -> None:
        for job in Job.objects.filter(status__in=("queued", "running")):
            drain(job)

    monkeypatch.setattr(JobFollower, "pause", step)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_tag_users_wecom_adds_and_removes_and_waits(
    tmp_path, app, sandbox, strategy_tags, drained_wait
):
    first, second = strategy_tags[1][:2]
    customers = sandbox.state.customers
    lisis = [demo_external_userid(n) for n in (1, 6, 11, 16)]
    for ext in lisis:
        customers.put_tags(CORP, "lisi", ext, [second])
    path = tmp_path / "客户.csv"
    lines = ["external_userid,userid", *[f"{e},lisi" for e in lisis], f"{lisis[0]},lisi", "x,lisi"]
    path.write_text("\n".join(lines), encoding="gb18030")

    with translation.override("en"):
        output = run(
            "tag_users",
            "--wecom",
            app.name,
            "--add",
            first,
            "--remove",
            second,
            "--file",
            str(path),
            "--wait",
        )

    assert "accepted: 4" in output and "duplicates dropped: 1" in output
    assert "values refused: 1" in output and "lisi (4)" in output
    job = Job.objects.get()
    assert job.status == JobStatus.DONE
    assert all(customers.tags_of(CORP, "lisi", e) == [first] for e in lisis)
    assert calls(sandbox) == 4


def test_tag_users_wecom_exits_1_when_a_pair_failed(
    tmp_path, app, sandbox, strategy_tags, drained_wait
):
    outside = sandbox.state.customers.customers_of(CORP, "sunqi")[0]
    path = tmp_path / "list.csv"
    path.write_text(f"userid,external_userid\nsunqi,{outside}\nlisi,{demo_external_userid(1)}\n")
    with pytest.raises(SystemExit) as exit_status:
        run(
            "tag_users",
            "--wecom",
            app.name,
            "--add",
            strategy_tags[1][0],
            "--file",
            str(path),
            "--wait",
        )
    assert exit_status.value.code == 1
    assert JobItemFailure.objects.get().item == f"sunqi/{outside}"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--wecom", "nobody", "--add", "etA1", "--file", "x.csv"], "no WeCom app"),
        (["--wecom", "演示企业", "--add", "etA1"], "needs --file"),
        (["--wecom", "演示企业", "--file", "FILE"], "--add or --remove"),
        (["--wecom", "演示企业", "--add", "134", "--file", "FILE"], "not a WeCom tag id"),
        (["--wecom", "演示企业", "--add", "etA1", "--file", "EMPTY"], "No (member, customer)"),
    ],
)
def test_tag_users_wecom_refusals_are_sentences(tmp_path, app, sandbox, args, words):
    good = tmp_path / "good.csv"
    good.write_text(f"userid,external_userid\nlisi,{demo_external_userid(1)}\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("external_userid\n\n")
    args = [str(good) if a == "FILE" else str(empty) if a == "EMPTY" else a for a in args]
    with translation.override("en"), pytest.raises(CommandError) as caught:
        run("tag_users", *args)
    assert words in str(caught.value)
    assert not Job.objects.exists()

"""The scheduled pull's interval, per WeCom app: the console's default, the app's own, or none."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from console.audit import AuditSource
from tagging.strategy.jobs import (
    SCHEDULE_PREFIX,
    strategy_pull_interval_set,
    strategy_pull_schedules_ensure,
)
from tagging.strategy.models import StrategyPull
from wecom.models import WeComApp


def schedule_of(app) -> Schedule | None:
    return Schedule.objects.filter(name=f"{SCHEDULE_PREFIX}{app.pk}").first()


@pytest.fixture
def second_app(db) -> WeComApp:
    return WeComApp.objects.create(
        name="第二企业", corp_id="ww00000000000000aa", secret="S" * 43, rate_limit=10
    )


def test_every_app_gets_a_settings_row_and_the_consoles_interval_by_default(
    app, second_app, settings
):
    settings.STRATEGY_PULL_MINUTES = 15
    strategy_pull_schedules_ensure()
    assert set(StrategyPull.objects.values_list("app_id", flat=True)) == {app.pk, second_app.pk}
    assert schedule_of(app).minutes == 15
    assert schedule_of(second_app).minutes == 15
    assert schedule_of(app).func == "tagging.strategy.jobs.strategy_pull_scheduled"
    assert schedule_of(app).args == repr((app.pk,))


def test_an_apps_own_interval_wins_and_zero_removes_its_schedule(app, second_app, actor, settings):
    settings.STRATEGY_PULL_MINUTES = 15
    strategy_pull_schedules_ensure()
    strategy_pull_interval_set(pull=app.strategy_pull, every_minutes=60, actor=actor)
    strategy_pull_interval_set(pull=second_app.strategy_pull, every_minutes=0, actor=actor)
    assert schedule_of(app).minutes == 60
    assert schedule_of(second_app) is None
    # Back to the default: the schedule returns, at the console's interval.
    strategy_pull_interval_set(pull=second_app.strategy_pull, every_minutes=None, actor=actor)
    assert schedule_of(second_app).minutes == 15


def test_the_console_default_off_leaves_only_apps_with_their_own_interval(
    app, second_app, actor, settings
):
    settings.STRATEGY_PULL_MINUTES = 0
    strategy_pull_schedules_ensure()
    assert Schedule.objects.filter(name__startswith=SCHEDULE_PREFIX).count() == 0
    strategy_pull_interval_set(pull=app.strategy_pull, every_minutes=30, actor=actor)
    assert list(
        Schedule.objects.filter(name__startswith=SCHEDULE_PREFIX).values_list("name", "minutes")
    ) == [(f"{SCHEDULE_PREFIX}{app.pk}", 30)]


def test_a_shorter_interval_takes_effect_now_and_an_unchanged_one_keeps_its_next_run(
    app, actor, settings
):
    settings.STRATEGY_PULL_MINUTES = 15
    strategy_pull_interval_set(pull=app.strategy_pull, every_minutes=600, actor=actor)
    far = timezone.now() + timedelta(minutes=590)
    Schedule.objects.filter(pk=schedule_of(app).pk).update(next_run=far)
    strategy_pull_schedules_ensure()  # nothing changed: the next run stays
    assert schedule_of(app).next_run == far
    strategy_pull_interval_set(pull=app.strategy_pull, every_minutes=5, actor=actor)
    assert schedule_of(app).next_run <= timezone.now() + timedelta(minutes=5)


def test_deleting_an_app_removes_its_schedule(app, second_app, settings):
    settings.STRATEGY_PULL_MINUTES = 15
    strategy_pull_schedules_ensure()
    second_app.delete()
    assert schedule_of(second_app) is None
    assert schedule_of(app) is not None


def test_the_interval_change_is_audited_with_old_and_new(app, actor):
    strategy_pull_schedules_ensure()
    strategy_pull_interval_set(pull=app.strategy_pull, every_minutes=45, actor=actor)
    strategy_pull_interval_set(pull=app.strategy_pull, every_minutes=45, actor=actor)  # no-op
    entries = LogEntry.objects.filter(object_id=str(app.strategy_pull.pk))
    assert entries.count() == 1
    console = json.loads(entries.get().change_message)[-1]["console"]
    assert console["values"][0][0] == "every_minutes"
    assert console["values"][0][2:4] == [None, "45"]
    assert entries.get().user_id == actor.user.pk


def test_an_interval_out_of_range_is_refused_by_the_service(app, actor):
    from django.core.exceptions import ValidationError

    strategy_pull_schedules_ensure()
    with pytest.raises(ValidationError) as refused:
        strategy_pull_interval_set(
            pull=app.strategy_pull, every_minutes=7 * 24 * 60 + 1, actor=actor
        )
    assert "every_minutes" in refused.value.message_dict
    assert StrategyPull.objects.get(app=app).every_minutes is None


def test_the_editor_changes_the_interval_in_the_admin(client, editor, app, settings):
    settings.STRATEGY_PULL_MINUTES = 15
    strategy_pull_schedules_ensure()
    client.force_login(editor)
    url = reverse("admin:tagging_strategypull_change", args=[app.strategy_pull.pk])
    page = client.get(url).content.decode()
    assert 'name="every_minutes"' in page
    response = client.post(url, {"every_minutes": "20"})
    assert response.status_code == 302
    assert schedule_of(app).minutes == 20
    entry = LogEntry.objects.get(object_id=str(app.strategy_pull.pk))
    assert json.loads(entry.change_message)[-1]["console"]["source"] == AuditSource.ADMIN
    history = client.get(reverse("admin:tagging_strategypull_history", args=[app.strategy_pull.pk]))
    assert "20" in history.content.decode()


def test_a_bad_interval_is_shown_beside_the_field_and_changes_nothing(
    client, editor, app, settings
):
    strategy_pull_schedules_ensure()
    client.force_login(editor)
    client.cookies["django_language"] = "en"
    url = reverse("admin:tagging_strategypull_change", args=[app.strategy_pull.pk])
    for value in ("-1", "99999", "soon"):
        response = client.post(url, {"every_minutes": value})
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert list(errors) == ["every_minutes"], value
    assert StrategyPull.objects.get(app=app).every_minutes is None
    assert not LogEntry.objects.filter(object_id=str(app.strategy_pull.pk)).exists()


def test_the_auditor_reads_the_interval_and_cannot_change_it(client, auditor, app):
    strategy_pull_schedules_ensure()
    client.force_login(auditor)
    url = reverse("admin:tagging_strategypull_change", args=[app.strategy_pull.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="every_minutes"' not in page.content.decode()
    assert client.post(url, {"every_minutes": "5"}).status_code == 403
    assert StrategyPull.objects.get(app=app).every_minutes is None


def test_the_tree_says_how_often_the_app_is_pulled(client, editor, imported, actor, settings):
    settings.STRATEGY_PULL_MINUTES = 15
    strategy_pull_schedules_ensure()
    client.force_login(editor)
    client.cookies["django_language"] = "en"
    url = reverse("admin:tagging_strategy_tree", args=[imported.pk])
    assert "every 15 minutes (console default)" in client.get(url).content.decode()
    strategy_pull_interval_set(pull=imported.strategy_pull, every_minutes=0, actor=actor)
    assert "no automatic pull" in client.get(url).content.decode()


def test_the_settings_row_goes_with_its_app_and_never_alone(client, superuser, app):
    strategy_pull_schedules_ensure()
    client.force_login(superuser)
    pull = app.strategy_pull
    change = client.get(reverse("admin:tagging_strategypull_change", args=[pull.pk]))
    assert (
        reverse("admin:tagging_strategypull_delete", args=[pull.pk]) not in change.content.decode()
    )
    assert (
        client.post(
            reverse("admin:tagging_strategypull_delete", args=[pull.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    response = client.post(reverse("admin:wecom_wecomapp_delete", args=[app.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not StrategyPull.objects.exists()
    assert schedule_of(app) is None


def test_the_interval_is_set_from_the_command_line_audited_and_refused_in_words(
    app, second_app, settings, monkeypatch
):
    import io

    from django.core.management import CommandError, call_command

    settings.STRATEGY_PULL_MINUTES = 15
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    out = io.StringIO()

    call_command("wecom_pull", "--app", app.name, "--every", "45", stdout=out)

    assert StrategyPull.objects.get(app=app).every_minutes == 45
    assert StrategyPull.objects.get(app=second_app).every_minutes is None
    assert schedule_of(app).minutes == 45
    assert out.getvalue().startswith(f"WeCom app “{app.name}”: automatic pull every 45 minutes (")
    entry = LogEntry.objects.get(object_id=str(StrategyPull.objects.get(app=app).pk))
    assert json.loads(entry.change_message)[-1]["console"]["source"] == AuditSource.CLI

    call_command("wecom_pull", "--every", "0", stdout=io.StringIO())  # every app
    assert schedule_of(app) is None and schedule_of(second_app) is None
    call_command("wecom_pull", "--app", app.name, "--every", "default", stdout=io.StringIO())
    assert StrategyPull.objects.get(app=app).every_minutes is None
    assert schedule_of(app).minutes == 15

    with pytest.raises(CommandError, match="minutes"):
        call_command("wecom_pull", "--every", "soon", stdout=io.StringIO())
    with pytest.raises(CommandError) as too_long:
        call_command("wecom_pull", "--every", str(8 * 24 * 60), stdout=io.StringIO())
    assert "10080" in str(too_long.value)
    assert StrategyPull.objects.get(app=second_app).every_minutes == 0  # unchanged

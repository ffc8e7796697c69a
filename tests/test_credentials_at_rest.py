"""Platform secrets are AES-GCM ciphertext in the database, bound to their model and field."""

from __future__ import annotations

import base64

import pytest
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from console.encryption import (
    ENVELOPE_RE,
    CredentialDecryptError,
    KeyRing,
    Secret,
    UnreadableSecret,
    key_ring,
    new_key_text,
    parse_key,
)
from wecom.models import ChatbotBot, OfficialAccount, WeComApp

SECRET = "Zx9-wecom-app-secret-0123456789abcdefghijkl"
OA_SECRET = "0123456789abcdef0123456789abcdef"


def raw_column(model, pk: int, column: str) -> str:
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


@pytest.fixture
def app(db) -> WeComApp:
    return WeComApp.objects.create(name="Main", corp_id="ww0123456789abcdef", secret=SECRET)


def test_the_database_holds_ciphertext_not_the_secret(app):
    stored = raw_column(WeComApp, app.pk, "secret")
    assert SECRET not in stored
    assert ENVELOPE_RE.match(stored)
    assert stored.split("$")[1] == key_ring().current.key_id


def test_reading_back_gives_a_secret_that_hides_itself(app):
    loaded = WeComApp.objects.get(pk=app.pk)
    assert isinstance(loaded.secret, Secret)
    assert loaded.secret.reveal() == SECRET
    assert str(loaded.secret) == "••••" + SECRET[-4:]
    assert SECRET not in repr(loaded.secret)
    assert SECRET not in f"{loaded.secret}"


def test_equal_secrets_encrypt_differently(db):
    first = WeComApp.objects.create(name="A", corp_id="ww0123456789abcdef", secret=SECRET)
    second = WeComApp.objects.create(name="B", corp_id="ww0123456789abcdef", secret=SECRET)
    assert raw_column(WeComApp, first.pk, "secret") != raw_column(WeComApp, second.pk, "secret")


def test_a_ciphertext_moved_to_another_model_does_not_decrypt(app):
    account = OfficialAccount.objects.create(
        name="OA", appid="wx0123456789abcdef", secret=OA_SECRET
    )
    stolen = raw_column(WeComApp, app.pk, "secret")
    OfficialAccount.objects.filter(pk=account.pk).update(secret=stolen)
    # update() passes the envelope through the field, which would re-encrypt a readable one
    # under the new context: write it raw instead, as an attacker with SQL access would.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE wecom_officialaccount SET secret = %s WHERE id = %s", [stolen, account.pk]
        )
    moved = OfficialAccount.objects.get(pk=account.pk).secret
    assert isinstance(moved, UnreadableSecret)
    with pytest.raises(CredentialDecryptError):
        moved.reveal()


def test_a_ciphertext_moved_to_another_field_does_not_decrypt(db):
    bot = ChatbotBot.objects.create(
        name="Bot",
        appid="botappid01",
        token="TokenValue0123456789",
        encoding_aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    )
    token_envelope = raw_column(ChatbotBot, bot.pk, "token")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE wecom_chatbotbot SET encoding_aes_key = %s WHERE id = %s",
            [token_envelope, bot.pk],
        )
    assert isinstance(ChatbotBot.objects.get(pk=bot.pk).encoding_aes_key, UnreadableSecret)


def test_a_tampered_ciphertext_does_not_decrypt(app):
    envelope = raw_column(WeComApp, app.pk, "secret")
    head, body = envelope.rsplit("$", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(CredentialDecryptError):
        key_ring().decrypt(f"{head}${flipped}", context="wecom.wecomapp.secret")


def test_an_unreadable_secret_survives_saving_the_row_unchanged(app, settings):
    envelope = raw_column(WeComApp, app.pk, "secret")
    settings.CREDENTIALS_KEY = new_key_text()
    loaded = WeComApp.objects.get(pk=app.pk)
    assert isinstance(loaded.secret, UnreadableSecret)
    loaded.name = "Renamed"
    loaded.save()
    assert raw_column(WeComApp, app.pk, "secret") == envelope


def test_secret_fields_refuse_lookups_other_than_isnull(app):
    with pytest.raises(FieldError):
        list(WeComApp.objects.filter(secret=SECRET))
    assert WeComApp.objects.filter(secret__isnull=False).count() == 1


def test_key_rotation_reencrypts_everything_under_the_new_key(app, settings):
    old_key = settings.CREDENTIALS_KEY
    old_id = parse_key(old_key).key_id
    settings.CREDENTIALS_KEY = new_key_text()
    settings.CREDENTIALS_OLD_KEYS = [old_key]
    new_id = key_ring().current.key_id
    assert raw_column(WeComApp, app.pk, "secret").split("$")[1] == old_id
    # Still readable while the old key is listed.
    assert WeComApp.objects.get(pk=app.pk).secret.reveal() == SECRET

    call_command("rotate_credentials_key", verbosity=0)

    assert raw_column(WeComApp, app.pk, "secret").split("$")[1] == new_id
    settings.CREDENTIALS_OLD_KEYS = []
    assert WeComApp.objects.get(pk=app.pk).secret.reveal() == SECRET


def test_key_rotation_is_recorded_in_the_history(app, settings):
    from django.contrib.admin.models import LogEntry

    old_key = settings.CREDENTIALS_KEY
    settings.CREDENTIALS_KEY = new_key_text()
    settings.CREDENTIALS_OLD_KEYS = [old_key]
    call_command("rotate_credentials_key", verbosity=0)
    entry = LogEntry.objects.get(object_id=str(app.pk))
    assert "re-encrypted" in entry.change_message
    assert SECRET not in entry.change_message


def test_key_rotation_dry_run_changes_nothing(app, settings):
    before = raw_column(WeComApp, app.pk, "secret")
    old_key = settings.CREDENTIALS_KEY
    settings.CREDENTIALS_KEY = new_key_text()
    settings.CREDENTIALS_OLD_KEYS = [old_key]
    call_command("rotate_credentials_key", "--dry-run", verbosity=0)
    assert raw_column(WeComApp, app.pk, "secret") == before


def test_key_rotation_without_the_old_key_says_so_and_keeps_the_data(app, settings):
    before = raw_column(WeComApp, app.pk, "secret")
    settings.CREDENTIALS_KEY = new_key_text()
    with pytest.raises(Exception, match="could not be decrypted"):
        call_command("rotate_credentials_key", verbosity=0)
    assert raw_column(WeComApp, app.pk, "secret") == before


@pytest.mark.parametrize(
    "text",
    ["", "short", base64.urlsafe_b64encode(b"x" * 31).decode(), "not base64 at all!!!"],
)
def test_a_malformed_key_is_refused_with_a_clear_message(text):
    with pytest.raises(ImproperlyConfigured, match="32 random bytes"):
        parse_key(text)


def test_key_ids_differ_between_keys():
    first, second = parse_key(new_key_text()), parse_key(new_key_text())
    assert first.key_id != second.key_id
    assert KeyRing(first, [second]).current is first


def test_short_secrets_show_no_characters():
    assert Secret("abc123").masked() == "••••"
    assert Secret("abcdefgh").masked() == "••••efgh"

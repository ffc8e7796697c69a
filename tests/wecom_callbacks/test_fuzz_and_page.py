"""Hostile requests never get a 5xx; the app's page shows the URL and the state; the CLI sets
the callback credentials write-only."""

from __future__ import annotations

import io
import string

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import translation
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from tests.wecom_callbacks.conftest import CALLBACK_KEY, CALLBACK_TOKEN, crypt, signed_query
from wecom.models import WeComApp, WeComCallbackEvent

pytestmark = pytest.mark.django_db

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
_params = st.dictionaries(
    st.sampled_from(["msg_signature", "timestamp", "nonce", "echostr", "x"]), _text, max_size=5
)


@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["get", "post"]),
    params=_params,
    body=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda inner: f"<xml><Encrypt>{inner}</Encrypt></xml>".encode(),
            st.text(alphabet=string.ascii_letters + string.digits + "+/=<>&", max_size=200),
        ),
    ),
    signed=st.booleans(),
)
def test_random_requests_get_only_2xx_or_4xx(configured_once, method, params, body, signed):
    client = Client(raise_request_exception=False)
    url = reverse("wecom_callback", args=[configured_once.pk])
    if signed:
        # Correctly signed garbage: gets past the signature, must fail at decryption or parsing.
        encrypted = crypt().encrypt(body.decode("utf-8", "replace"))
        params = signed_query(encrypted, echostr=encrypted)
        body = f"<xml><Encrypt>{encrypted}</Encrypt></xml>".encode()
    answer = (
        getattr(client, method)(
            url + "?" + "&".join(f"{k}={v}" for k, v in params.items()),
            data=body,
            content_type="text/xml",
        )
        if method == "post"
        else client.get(url, params)
    )
    assert answer.status_code < 500, answer.content
    assert not WeComCallbackEvent.objects.exists()


@pytest.fixture
def configured_once(db, settings) -> WeComApp:
    settings.WECOM_CALLBACK_RATE_PER_MINUTE = 10**9
    app = WeComApp.objects.filter(name="fuzz").first()
    if app is None:
        app = WeComApp.objects.create(
            name="fuzz",
            corp_id="ww0123456789abcdef",
            secret="s" * 32,
            callback_token=CALLBACK_TOKEN,
            callback_encoding_aes_key=CALLBACK_KEY,
        )
    return app


def test_the_page_shows_the_url_a_copy_button_and_the_state(superuser, configured_once):
    client = Client()
    client.force_login(superuser)
    with translation.override("en"):
        page = client.get(
            reverse("admin:wecom_wecomapp_change", args=[configured_once.pk]),
            HTTP_ACCEPT_LANGUAGE="en",
        )
    html = page.content.decode()
    assert page.status_code == 200
    assert f"/wecom/callback/{configured_once.pk}/" in html
    assert 'data-copy-target="wecom-callback-url"' in html
    assert 'id="wecom-callback-state"' in html
    # Write-only: neither the Token nor the key is on the page.
    assert CALLBACK_TOKEN not in html
    assert CALLBACK_KEY not in html


def test_the_credential_command_takes_the_callback_values(db, monkeypatch):
    monkeypatch.setenv("CB_TOKEN", CALLBACK_TOKEN)
    monkeypatch.setenv("CB_KEY", CALLBACK_KEY)
    call_command(
        "credential",
        "set",
        "wecom",
        "主企业",
        "corp_id=ww0123456789abcdef",
        "secret=" + "s" * 32,
        "callback_token=env:CB_TOKEN",
        "callback_encoding_aes_key=env:CB_KEY",
        stdout=io.StringIO(),
    )
    app = WeComApp.objects.get(name="主企业")
    assert app.callback_token.reveal() == CALLBACK_TOKEN
    assert app.callback_encoding_aes_key.reveal() == CALLBACK_KEY
    listing = io.StringIO()
    call_command("credential", "list", stdout=listing)
    assert CALLBACK_TOKEN not in listing.getvalue()
    assert CALLBACK_KEY not in listing.getvalue()

"""The callback URL of a WeCom app: no login, no CSRF token; every refusal is a 4xx sentence."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from wecom.callbacks import (
    MAX_BODY_BYTES,
    CallbackRefused,
    callback_app_get,
    callback_event_receive,
    callback_rate_check,
    callback_refusal_record,
    callback_url_verify,
)
from wecom.models import CallbackRefusal

logger = logging.getLogger("wecom.callbacks")


def _refusal(refused: CallbackRefused, app_id: int) -> HttpResponse:
    # One line, no traceback: a refusal is an expected answer to a stranger's request.
    logger.warning("WeCom callback for app %s refused: %s", app_id, refused.reason.value)
    return HttpResponse(
        refused.sentence, status=refused.status, content_type="text/plain; charset=utf-8"
    )


def _body(request: HttpRequest) -> bytes:
    """At most MAX_BODY_BYTES + 1 bytes: enough to refuse a larger body without reading it."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise CallbackRefused(CallbackRefusal.BAD_REQUEST) from None
    if declared > MAX_BODY_BYTES:
        raise CallbackRefused(CallbackRefusal.TOO_LARGE)
    return request.read(MAX_BODY_BYTES + 1)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def wecom_callback(request: HttpRequest, app_id: int) -> HttpResponse:
    try:
        app = callback_app_get(app_id)
    except CallbackRefused as refused:
        return _refusal(refused, app_id)
    try:
        callback_rate_check(app=app)
        body = _body(request) if request.method == "POST" else b""
    except CallbackRefused as refused:
        if not refused.counted:
            callback_refusal_record(app=app, reason=refused.reason)
        return _refusal(refused, app_id)
    # The services count their own refusals.
    try:
        if request.method == "GET":
            plain = callback_url_verify(app=app, query=request.GET)
            # WeCom compares the bytes: no quotes, no BOM, no newline.
            return HttpResponse(plain, content_type="text/plain; charset=utf-8")
        callback_event_receive(app=app, query=request.GET, body=body)
    except CallbackRefused as refused:
        return _refusal(refused, app_id)
    return HttpResponse(b"", content_type="text/plain; charset=utf-8")

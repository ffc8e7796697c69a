"""Keeps tokens and secrets out of log lines."""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"

# Query parameters and JSON keys that carry credentials on the Tencent platforms.
_QUERY_SECRET = re.compile(
    r"(?i)\b(access_token|corpsecret|secret|appsecret|token|encodingaeskey|encoding_aes_key)"
    r"=([^&\s\"']+)"
)
_JSON_SECRET = re.compile(
    r"(?i)([\"'](?:access_token|corpsecret|secret|appsecret|token|encoding_aes_key|encrypt)"
    r"[\"']\s*:\s*[\"'])([^\"']+)"
)
# The dialogue platform puts the bot's TOKEN in the path: /openapi/<endpoint>/<TOKEN>.
_CHATBOT_PATH_TOKEN = re.compile(r"(/openapi/(?:label/batchset|setautoreply)/)([^/?\s\"']+)")


def redact(text: str) -> str:
    text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _JSON_SECRET.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _CHATBOT_PATH_TOKEN.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


class RedactSecretsFilter(logging.Filter):
    """Rewrites a record's message with credentials replaced, before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True

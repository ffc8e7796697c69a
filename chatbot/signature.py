"""The signature the dialogue platform's ``aibot`` call carries: a JWT, HS256, keyed with the
bot's EncodingAESKey (PLATFORM.md section 4, "Going live"), with the claims ``userid``,
``username`` and ``avatar``. The same token the ``sign`` call returns, made here, so that
asking the bot costs one call and nothing of the key leaves the server.

Standard library only (like ``chatbot.crypto``), so the sandbox can check what clients send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

__all__ = ["SignatureError", "signature_make", "signature_read"]

_HEADER = {"alg": "HS256", "typ": "JWT"}


class SignatureError(ValueError):
    """Not a JWT this key signed, or one that has expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as error:
        raise SignatureError("not base64url") from error


def _mac(key: str, signing_input: str) -> bytes:
    return hmac.new(key.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()


def signature_make(
    *,
    key: str,
    userid: str,
    username: str = "",
    avatar: str = "",
    expires_in: int = 7200,
    now: float | None = None,
) -> str:
    """A JWT for ``userid`` valid ``expires_in`` seconds from ``now``."""
    if not userid:
        raise ValueError("userid is required")
    issued = int(time.time() if now is None else now)
    claims = {
        "userid": userid,
        "username": username,
        "avatar": avatar,
        "iat": issued,
        "exp": issued + expires_in,
    }
    signing_input = (
        _b64(json.dumps(_HEADER, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    )
    return signing_input + "." + _b64(_mac(key, signing_input))


def signature_read(token: str, *, key: str, now: float | None = None) -> dict[str, Any]:
    """The claims of ``token`` if ``key`` signed it with HS256 and it has not expired."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise SignatureError("not a JWT")
    header_part, claims_part, mac_part = token.split(".")
    if not hmac.compare_digest(_unb64(mac_part), _mac(key, f"{header_part}.{claims_part}")):
        raise SignatureError("signature mismatch")
    try:
        header = json.loads(_unb64(header_part))
        claims = json.loads(_unb64(claims_part))
    except ValueError as error:
        raise SignatureError("not JSON") from error
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise SignatureError("not HS256")
    if not isinstance(claims, dict) or not claims.get("userid"):
        raise SignatureError("no userid")
    expires = claims.get("exp")
    if isinstance(expires, int) and expires <= (time.time() if now is None else now):
        raise SignatureError("expired")
    return claims

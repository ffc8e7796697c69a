"""Content-Security-Policy for every response, with a per-request nonce for inline scripts.

Django 5.2 has no CSP support of its own (6.0 adds it); this is the small middleware the console
needs. The policy allows what our pages and the admin use: scripts, styles, images and fonts
from our own origin (vendored libraries in static/ included), inline ``style="…"`` attributes
(the admin sets some), and inline ``<script>`` or ``<style>`` elements only when they carry the
request's nonce::

    <script nonce="{{ request.csp_nonce }}">…</script>

Everything else (inline event handlers such as ``onclick=``, ``javascript:`` URLs, ``eval``,
other origins, being framed) is refused by the browser. ``CONSOLE_CSP_EXTRA`` adds sources per
directive without editing this file.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"

BASE_POLICY: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'", "'nonce-{nonce}'"],
    "style-src": ["'self'", "'nonce-{nonce}'"],
    # The admin's templates and widgets set a few style attributes.
    "style-src-attr": ["'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    # Previews (the chatbot's answers, say) are framed from our own origin only.
    "frame-src": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
    "base-uri": ["'none'"],
    "object-src": ["'none'"],
}


@cache
def _error_page_style_hashes() -> tuple[str, ...]:
    """Hashes of the inline <style> of templates/500.html.

    The server-error page renders without a request context, so it cannot carry a nonce; it
    must not depend on static files either. Its fixed style block is allowed by its hash.
    """
    path = settings.BASE_DIR / "templates" / "500.html"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ()
    return tuple(
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"
        for block in re.findall(r"<style>(.*?)</style>", text, flags=re.DOTALL)
    )


def allow_for_this_page(request: HttpRequest, directive: str, *sources: str) -> None:
    """Widen the policy of one response only, e.g. remote images on a preview page."""
    extra = getattr(request, "csp_extra", None)
    if extra is None:
        extra = request.csp_extra = {}  # type: ignore[attr-defined]
    extra.setdefault(directive, []).extend(sources)


def content_security_policy(nonce: str, extra: dict[str, list[str]] | None = None) -> str:
    policy = {name: list(sources) for name, sources in BASE_POLICY.items()}
    policy["style-src"].extend(_error_page_style_hashes())
    for name, sources in getattr(settings, "CONSOLE_CSP_EXTRA", {}).items():
        policy.setdefault(name, []).extend(sources)
    for name, sources in (extra or {}).items():
        policy.setdefault(name, []).extend(sources)
    return "; ".join(
        " ".join([name, *(source.format(nonce=nonce) for source in sources)])
        for name, sources in policy.items()
    )


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(18)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        if HEADER not in response:
            response[HEADER] = content_security_policy(nonce, getattr(request, "csp_extra", None))
        return response

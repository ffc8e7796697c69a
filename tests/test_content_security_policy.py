"""Every response carries the policy; templates read the nonce from the request."""

from __future__ import annotations

import re

import pytest
from django.template import engines
from django.test import RequestFactory

from console.csp import ContentSecurityPolicyMiddleware


@pytest.mark.parametrize("url", ["/admin/login/", "/healthz", "/admin/no-such-page/"])
def test_every_response_has_the_policy(client, db, url):
    header = client.get(url)["Content-Security-Policy"]
    assert re.search(r"script-src 'self' 'nonce-[\w-]{20,}'(;|$)", header)
    assert "'unsafe-inline'" not in header.replace("style-src-attr 'unsafe-inline'", "")
    assert "'unsafe-eval'" not in header


def test_a_template_puts_the_request_nonce_on_its_script():
    template = engines["django"].from_string(
        '<script nonce="{{ request.csp_nonce }}">go()</script>'
    )
    seen = {}

    def view(request):
        from django.http import HttpResponse

        seen["html"] = template.render({"request": request})
        return HttpResponse(seen["html"])

    response = ContentSecurityPolicyMiddleware(view)(RequestFactory().get("/"))
    nonce = re.search(r"'nonce-([\w-]+)'", response["Content-Security-Policy"]).group(1)
    assert f'nonce="{nonce}"' in seen["html"]


def test_the_server_error_page_style_is_allowed_by_its_hash():
    from console.csp import _error_page_style_hashes, content_security_policy

    hashes = _error_page_style_hashes()
    assert len(hashes) == 1
    assert hashes[0] in content_security_policy("n")


def test_the_rendered_server_error_page_matches_the_allowed_hash():
    import base64
    import hashlib

    from django.template import loader

    from console.csp import content_security_policy

    html = loader.get_template("500.html").render({})
    block = re.search(r"<style>(.*?)</style>", html, flags=re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in content_security_policy("n")

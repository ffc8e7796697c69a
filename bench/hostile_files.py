"""What each hostile file of the tests costs the web process before it is refused.

    .venv/bin/python bench/hostile_files.py

Posts each file (tests/hostile_files.py) to the page that takes it (the bulk upload or the
chatbot import), through Django's test client on a throwaway SQLite database (an upload is then
read by its job's shard, in the same process, as a worker reads it, and its refusal taken from
the list's page), and prints per file: the time to the refusal, the peak of the process's
resident memory above what it used just before the request (VmHWM, reset through
/proc/self/clear_refs before each request), the peak of Python's allocations (tracemalloc, in
a second run: tracing makes it slower), and the first words of the sentence shown. A plain
100,000-row XLSX and a 20,000-reply import are the reference.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
os.environ.pop("REDIS_URL", None)

import django

django.setup()

from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402


def _kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def main() -> None:
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0)
    from django.contrib.auth.models import Group, User

    from console.roles import MARKETING_EDITOR
    from tagging.official_account.models import OfficialAccountTag
    from tests.hostile_files import HOSTILE_IMPORTS, HOSTILE_XLSX, OPENID, _inline, _sheet, xlsx
    from wecom.models import ChatbotBot, OfficialAccount

    password = secrets.token_urlsafe(12)
    user = User.objects.create_user("bench", password=password, is_staff=True)
    user.groups.add(Group.objects.get(name=MARKETING_EDITOR.group_name))
    account = OfficialAccount.objects.create(name="号", appid="wx0123456789abcdef", secret="s" * 32)
    tag = OfficialAccountTag.objects.create(account=account, tag_id=100, name="新关注")
    bot = ChatbotBot.objects.create(
        name="机器人", appid="bot01", token="T" * 16, encoding_aes_key="Q" * 43
    )
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.login(username="bench", password=password)

    def reference_xlsx() -> bytes:
        rows = (_inline(n, f"{OPENID[:-6]}{n:06d}") for n in range(1, 100_001))
        return xlsx(_sheet(rows))

    def reference_import() -> bytes:
        """10,000 replies (the most a file may hold) of about 1 KB each: 10 MB, the limit."""
        answer = "回答" * 150
        rows = ",".join(
            f'{{"skillname":"技能{n % 50}","title":"问题{n}","questions":["相似{n}"],'
            f'"content":"{answer}{n}"}}'
            for n in range(10_000)
        )
        return f"[{rows}]".encode()

    cases = [("xlsx", name, f"{name}.xlsx", make) for name, make in HOSTILE_XLSX.items()]
    cases += [
        ("import", name, filename, make) for name, (filename, make) in HOSTILE_IMPORTS.items()
    ]
    cases += [
        ("xlsx", "(reference) 100,000 OpenIDs", "ok.xlsx", reference_xlsx),
        ("import", "(reference) 10,000 replies, 10 MB", "ok.json", reference_import),
    ]

    def post(kind: str, filename: str, data: bytes) -> str:
        upload = SimpleUploadedFile(filename, data)
        if kind == "xlsx":
            form = {"target_kind": "oa", "oa_tag": tag.pk, "operation": "tag", "source": "file"}
            response = client.post("/admin/tagging/bulkaudience/add/", {**form, "file": upload})
            if response.status_code == 302:
                # The upload answers at once and a worker reads the file (its job's shard, run
                # here as a worker's task runs it): the refusal is on the list's page.
                from console.jobs.services import job_run_shards
                from tagging.bulk.models import BulkAudience
                from tagging.bulk.reading import audience_read_job

                job = audience_read_job(BulkAudience.objects.latest("pk"))
                job_run_shards(shard_id=job.shards.get().pk)
                response = client.get(response["Location"])
        else:
            response = client.post(
                "/admin/chatbot/autoreply/import/", {"bot": bot.pk, "file": upload}
            )
        html = response.content.decode()
        found = re.search(
            r'<div class="errornote" role="alert"[^>]*>(.*?)</div>'
            r'|<ul class="errorlist[^"]*"[^>]*><li>(.*?)</li>',
            html,
            re.S,
        )
        if found:
            return (found.group(1) or found.group(2)).strip()[:70]
        return f"HTTP {response.status_code}"

    idle = _kb("VmRSS")
    print(f"idle process: {idle / 1024:.0f} MB resident")
    print(f"{'file':34} {'size':>9} {'time':>7} {'RSS peak':>9} {'py peak':>8}  answer")
    for kind, name, filename, make in cases:
        data = make()
        post(kind, filename, data)  # warm: templates and translations loaded once
        before = _kb("VmRSS")
        _reset_peak()
        started = time.monotonic()
        answer = post(kind, filename, data)
        elapsed = time.monotonic() - started
        rss_peak = max(0, _kb("VmHWM") - before)
        tracemalloc.start()
        post(kind, filename, data)
        python_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(
            f"{name:34} {len(data) / 1024:7.0f}KB {elapsed:6.2f}s {rss_peak / 1024:7.1f}MB "
            f"{python_peak / 1048576:6.1f}MB  {answer}"
        )
        from tagging.bulk.models import BulkAudience

        BulkAudience.objects.all().delete()


if __name__ == "__main__":
    main()

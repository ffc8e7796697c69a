"""The loops a user without the console would write, as a script of their own.

    python bench/reference_loops.py wechatpy --file F --wechat BASE --tag-id N [--batch 20]
    python bench/reference_loops.py lean     --file F --wechat BASE --tag-id N [--batch 20]

bench/bulk_whole_path.py runs it as a process and times it from its start to its exit, as it
times ``manage.py tag_users --wait``: both sides pay their interpreter's start and their imports.
So this file imports only what such a script would (the standard library, then wechatpy or
requests); it prints one JSON line: the loop's own seconds (from opening the file to the last
answer), the reading part of them, its CPU seconds and the number of calls.

wechatpy  ``wechatpy.WeChatClient`` with ``API_BASE_URL`` (and its token URL) on the sandbox:
          ``csv.reader`` over the file, header and blank lines skipped, duplicates dropped
          (``dict.fromkeys``, so that every variant sends the same calls), then
          ``client.tag.tag_user(tag_id, batch)`` over batches of ``--batch``.
lean      the same reading, then one keep-alive ``requests.Session`` posting each batch to
          ``/cgi-bin/tags/members/batchtagging`` with a token fetched once.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from typing import Any

# The sandbox's demo Official Account (fake credentials).
OA_APPID = "wx0118deba10ef81d4"
OA_SECRET = "71e8c3dd8fa2d111f78059039c0c842b"  # noqa: S105


def read_openids(path: str) -> list[str]:
    """What a user's script does: csv over the file, the header and blanks skipped, each
    OpenID once, in the file's order."""
    with open(path, newline="", encoding="utf-8") as stream:  # noqa: PTH123 - as a user writes it
        reader = csv.reader(stream)
        next(reader, None)
        return list(dict.fromkeys(row[0].strip() for row in reader if row and row[0].strip()))


def wechatpy_loop(options: argparse.Namespace) -> dict[str, Any]:
    from wechatpy import WeChatClient

    base = options.wechat

    class SandboxClient(WeChatClient):
        # wechatpy builds every call from API_BASE_URL but fetches its token from a fixed
        # https://api.weixin.qq.com/cgi-bin/token: both pointed at the sandbox.
        API_BASE_URL = f"{base}/cgi-bin/"

        def fetch_access_token(self) -> dict:
            return self._fetch_access_token(
                url=f"{base}/cgi-bin/token",
                params={
                    "grant_type": "client_credential",
                    "appid": self.appid,
                    "secret": self.secret,
                },
            )

    started = time.perf_counter()
    cpu = time.process_time()
    openids = read_openids(options.file)
    read = time.perf_counter() - started
    client = SandboxClient(OA_APPID, OA_SECRET, timeout=20)
    calls = 0
    for start in range(0, len(openids), options.batch):
        client.tag.tag_user(options.tag_id, openids[start : start + options.batch])
        calls += 1
    return {
        "seconds": time.perf_counter() - started,
        "read": read,
        "cpu": time.process_time() - cpu,
        "calls": calls,
    }


def lean_loop(options: argparse.Namespace) -> dict[str, Any]:
    import requests

    base = options.wechat
    started = time.perf_counter()
    cpu = time.process_time()
    openids = read_openids(options.file)
    read = time.perf_counter() - started
    session = requests.Session()
    token = session.get(
        f"{base}/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": OA_APPID, "secret": OA_SECRET},
        timeout=20,
    ).json()["access_token"]
    url = f"{base}/cgi-bin/tags/members/batchtagging"
    calls = 0
    for start in range(0, len(openids), options.batch):
        answer = session.post(
            url,
            params={"access_token": token},
            json={"openid_list": openids[start : start + options.batch], "tagid": options.tag_id},
            timeout=20,
        ).json()
        if answer.get("errcode"):
            raise SystemExit(f"lean loop: {answer}")
        calls += 1
    return {
        "seconds": time.perf_counter() - started,
        "read": read,
        "cpu": time.process_time() - cpu,
        "calls": calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("loop", choices=("wechatpy", "lean"))
    parser.add_argument("--file", required=True)
    parser.add_argument("--wechat", required=True)
    parser.add_argument("--tag-id", type=int, required=True)
    parser.add_argument("--batch", type=int, default=20)
    options = parser.parse_args()
    loop = wechatpy_loop if options.loop == "wechatpy" else lean_loop
    sys.stdout.write(json.dumps(loop(options)) + "\n")


if __name__ == "__main__":
    main()

"""Throughput of chatbot.crypto.WXBizMsgCrypt against wechatpy's BasePrpCrypto.

Run from the project root (Django is not needed):

    .venv/bin/python bench/crypto_throughput.py                  # ~1 KB and ~50 KB payloads
    .venv/bin/python bench/crypto_throughput.py --seconds 20     # longer, steadier figures
    .venv/bin/python bench/crypto_throughput.py --size 4096      # one payload size only

How to read it: wechatpy is the reference (it runs on `cryptography`, i.e. OpenSSL; ours on
pycryptodome). The two run side by side in short interleaved rounds, alternating which one
goes first, because the machine is shared and its speed drifts: a ratio taken within one round
compares the two under the same conditions, a ratio of two long separate runs would not.

    ratio = ours / reference in messages per second; > 1 means ours is faster.
    median is the median of the per-round ratios; min..max shows how noisy the rounds were.
    msg/s columns are the median absolute rates over the rounds.

Payload: a setautoreply body as the console sends it (XML, every value in CDATA, Chinese text,
<question> elements inside <list>), grown with more questions to the requested size in UTF-8 bytes.
"""

from __future__ import annotations

import argparse
import base64
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Run as a script, sys.path[0] is bench/; the project root holds the chatbot package.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import Crypto  # noqa: E402
import cryptography  # noqa: E402
from cryptography.hazmat.backends.openssl import backend as openssl_backend  # noqa: E402
from wechatpy.crypto.base import BasePrpCrypto  # noqa: E402

from chatbot.crypto import WXBizMsgCrypt  # noqa: E402

TOKEN = "benchtoken"  # noqa: S105 - signatures are not measured; any token does
ENCODING_AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
APPID = "wx8c631f7e9f2465e1"
DEFAULT_SIZES = (1024, 50 * 1024)
# One timed batch should take long enough for perf_counter overhead to vanish, short enough
# that a round holds many batches.
BATCH_SECONDS = 0.005


def chatbot_xml(size: int) -> str:
    """A setautoreply body of about `size` UTF-8 bytes (never below the fixed fields)."""
    head = (
        "<xml><managerid><![CDATA[admin-0001]]></managerid>"
        "<skillname><![CDATA[售后服务]]></skillname>"
        "<title><![CDATA[怎么申请退货？]]></title>"
        '<content><![CDATA[请前往<a href="https://chatbot.weixin.qq.com/">openai</a>'
        "配置，或在订单页面点击“申请售后”。]]></content><list>"
    )
    tail = "</list></xml>"
    parts = [head]
    used = len(head.encode()) + len(tail)
    n = 0
    while True:
        n += 1
        question = f"<question><![CDATA[相似问题 {n}：退货流程是什么？]]></question>"
        cost = len(question.encode())
        if used + cost > size:
            break
        parts.append(question)
        used += cost
    parts.append(tail)
    return "".join(parts)


@dataclass
class Row:
    size: int
    op: str
    ours: list[float]
    reference: list[float]

    @property
    def ratios(self) -> list[float]:
        return [o / r for o, r in zip(self.ours, self.reference, strict=True)]


def _rate(fn: Callable[[], object], seconds: float, batch: int) -> float:
    """Messages per second of fn over at least `seconds`, timed in whole batches."""
    gc.collect()
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        for _ in range(batch):
            fn()
        done += batch
        now = time.perf_counter()
    return done / (now - start)


def _batch_size(fn: Callable[[], object]) -> int:
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - start >= BATCH_SECONDS:
            return n
        n *= 2


def measure(
    size: int,
    op: str,
    ours: Callable[[], object],
    ref: Callable[[], object],
    args: argparse.Namespace,
) -> Row:
    # Warm both up (allocator, caches) before the first timed round.
    batch = {"ours": _batch_size(ours), "ref": _batch_size(ref)}
    per_slice = args.seconds / (2 * args.rounds)
    row = Row(size, op, [], [])
    for i in range(args.rounds):
        # Alternate who goes first so that a drift within a round favours neither.
        if i % 2 == 0:
            o = _rate(ours, per_slice, batch["ours"])
            r = _rate(ref, per_slice, batch["ref"])
        else:
            r = _rate(ref, per_slice, batch["ref"])
            o = _rate(ours, per_slice, batch["ours"])
        row.ours.append(o)
        row.reference.append(r)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=4.0,
        help="time budget per payload size and operation, both implementations (default 4)",
    )
    parser.add_argument(
        "--size", type=int, help="payload size in UTF-8 bytes (default: 1024 and 51200)"
    )
    parser.add_argument(
        "--rounds", type=int, default=9, help="interleaved rounds (default 9; odd keeps a median)"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or (args.size is not None and args.size < 1):
        parser.error("--seconds, --rounds and --size must be positive")

    ours = WXBizMsgCrypt(TOKEN, ENCODING_AES_KEY, APPID)
    reference = BasePrpCrypto(base64.b64decode(ENCODING_AES_KEY + "="))

    rows = []
    for size in (args.size,) if args.size else DEFAULT_SIZES:
        text = chatbot_xml(size)
        encrypted = ours.encrypt(text)
        # Both must read the same ciphertext, or the comparison is meaningless.
        if (
            reference._decrypt(encrypted, APPID) != text
            or ours.decrypt(reference._encrypt(text, APPID).decode()) != text
        ):
            print("implementations disagree; not benchmarking", file=sys.stderr)
            return 1
        actual = len(text.encode())
        rows.append(
            measure(
                actual,
                "encrypt",
                lambda text=text: ours.encrypt(text),
                lambda text=text: reference._encrypt(text, APPID),
                args,
            )
        )
        rows.append(
            measure(
                actual,
                "decrypt",
                lambda e=encrypted: ours.decrypt(e),
                lambda e=encrypted: reference._decrypt(e, APPID),
                args,
            )
        )

    print(
        f"python {sys.version.split()[0]}, pycryptodome {Crypto.__version__} (ours), "
        f"cryptography {cryptography.__version__} / {openssl_backend.openssl_version_text()} "
        f"(reference: wechatpy BasePrpCrypto)"
    )
    print(f"{args.rounds} interleaved rounds, {args.seconds:g} s per row; ratio = ours / reference")
    print()
    header = (
        f"{'payload':>9}  {'op':<7}  {'ours msg/s':>11}  {'ref msg/s':>11}  "
        f"{'ours MB/s':>9}  {'ratio':>6}  {'min..max':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        o = statistics.median(row.ours)
        r = statistics.median(row.reference)
        ratios = row.ratios
        print(
            f"{row.size:>7} B  {row.op:<7}  {o:>11,.0f}  {r:>11,.0f}  "
            f"{o * row.size / 1e6:>9.1f}  {statistics.median(ratios):>6.2f}  "
            f"{min(ratios):>5.2f}..{max(ratios):<5.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

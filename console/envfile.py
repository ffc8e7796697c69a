"""Writes `.env` for a first `make run`: fresh random keys, plain HTTP on localhost, the sandbox.

Runs before Django is configured (settings refuse to load without keys), so it uses only the
standard library. An existing `.env` is never touched.

    python -m console.envfile            # write .env unless it exists
    python -m console.envfile --new-key  # print a fresh CREDENTIALS_KEY (for rotation)
"""

from __future__ import annotations

import argparse
import base64
import re
import secrets
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# The API bases are left empty: with SANDBOX on, the settings point them at the sandbox on
# SANDBOX_PORT, so `SANDBOX_PORT=18390 make run` moves the calls with the sandbox instead of
# sending them (secrets included) to whatever listens on the port written here once.
LOCAL_RUN = {
    "SECURE_HTTPS": "false",
    "SANDBOX": "true",
    "WECOM_API_BASE": "",
    "WECHAT_API_BASE": "",
    "CHATBOT_API_BASE": "",
}


def new_credentials_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def new_secret_key() -> str:
    return secrets.token_urlsafe(50)


def render(example: str) -> str:
    values = {
        "SECRET_KEY": new_secret_key(),
        "CREDENTIALS_KEY": new_credentials_key(),
        **LOCAL_RUN,
    }
    lines = []
    for line in example.splitlines():
        match = re.match(r"^([A-Z0-9_]+)=", line)
        if match and match.group(1) in values:
            line = f"{match.group(1)}={values[match.group(1)]}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-key", action="store_true", help="print a new CREDENTIALS_KEY")
    parser.add_argument("--path", type=Path, default=BASE_DIR / ".env")
    args = parser.parse_args(argv)
    if args.new_key:
        sys.stdout.write(new_credentials_key() + "\n")
        return 0
    if args.path.exists():
        sys.stdout.write(f"Using the existing {args.path.name}.\n")
        return 0
    example = (BASE_DIR / ".env.example").read_text(encoding="utf-8")
    args.path.write_text(render(example), encoding="utf-8")
    args.path.chmod(0o600)
    sys.stdout.write(f"Wrote {args.path.name} with fresh random keys (local run, sandbox on).\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The HTTP side of the sandbox: requests to the routes (routes.py), faults, statistics and the
control API.

Layout of the URL space (one port):

    /wecom/...          WeCom server API            (qyapi.weixin.qq.com)
    /wechat/...         Official Account API        (api.weixin.qq.com)
    /chatbot/...        dialogue platform open API  (chatbot.weixin.qq.com)
    /__sandbox__/...    control API (stats, faults, tokens, reset, state); never counted

Standard library only. Every answer carries Content-Length and is written with one send, so
keep-alive clients never wait on Nagle/delayed-ACK.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .faults import FaultRule, FaultSet
from .routes import CHATBOT_ENDPOINTS, ROUTES, Call, chatbot_decrypt
from .shared import CHATBOT, PLATFORMS, WECHAT, WECOM, PlatformError
from .state import SandboxState

__all__ = ["RecordedRequest", "SandboxServer"]

CONTROL_PREFIX = "/__sandbox__/"
_MAX_BODY = 16 * 1024 * 1024
_CONTENT_TYPES = {
    WECOM: "application/json; charset=UTF-8",
    # The Official Account API really says "encoding", not "charset".
    WECHAT: "application/json; encoding=utf-8",
    CHATBOT: "application/json; charset=utf-8",
}
# errmsg of common errcodes, for fault answers.
_FAULT_MESSAGES = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    42001: "access_token expired",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit, mustslower retry next minute",
    45033: "api concurrent out of limit",
    45159: "invalid tag id",
    45169: "openid much req",
}


# Keys whose values the request log and the verbose log never keep: what the console sends as
# secrets (a real secret typed into the console may reach the sandbox by mistake).
_SECRET_KEYS = frozenset(
    {"secret", "corpsecret", "appsecret", "access_token", "token", "encoding_aes_key", "password"}
)
_SECRET_IN_QUERY = re.compile(
    r"((?:" + "|".join(sorted(_SECRET_KEYS)) + r")=)[^&\s]*", flags=re.IGNORECASE
)
REDACTED = "••••"
PORT_RANGE = (0, 65535)
# 0: every token expires at once (tests of expiry).
TOKEN_TTL_RANGE = (0, 7 * 24 * 3600)


def redact(value: Any) -> Any:
    """``value`` (parsed JSON or XML fields) with the values of secret keys replaced."""
    if isinstance(value, dict):
        return {
            key: REDACTED if str(key).lower() in _SECRET_KEYS else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def redact_query(text: str) -> str:
    return _SECRET_IN_QUERY.sub(r"\1" + REDACTED, text)


@dataclass(frozen=True)
class RecordedRequest:
    """One platform call as the sandbox saw it (``server.requests`` keeps the last 1000)."""

    platform: str
    endpoint: str
    method: str
    body: Any  # parsed JSON, or None
    xml: dict[str, Any] | None  # decrypted chatbot XML fields (openid/question as lists)
    errcode: int | None  # None when no JSON answer was sent (HTTP fault, drop)
    at: float
    status: int = 200  # HTTP status sent (0 for a dropped connection)
    fault: str | None = None  # "errcode", "http_status", "body", "latency", "drop" or None


def _decorate_errmsg(platform: str, errcode: int, errmsg: str) -> str:
    """Errmsg in each platform's own style (hint / rid), as the console will see them."""
    if platform == WECOM:
        return (
            f"{errmsg}, hint: [{int(time.time())}_sandbox_{secrets.token_hex(4)}], "
            f"more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
        )
    if platform == WECHAT:
        return f"{errmsg} rid: {secrets.token_hex(4)}-{secrets.token_hex(4)}"
    return errmsg


# ---- the HTTP machinery ----------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TencentSandbox/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox.verbose:
            # The request line carries ?corpsecret= and ?access_token=.
            super().log_message(format, *(redact_query(str(arg)) for arg in args))

    # -- plumbing

    def _read_body(self) -> bytes | None:
        """The body, or None when it is too large / malformed (the answer is then sent)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, size = [], 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    length = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self._send(400, b"bad chunked encoding\n", "text/plain; charset=utf-8")
                    return None
                if length == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += length
                if size > _MAX_BODY:
                    self._send(413, b"body too large\n", "text/plain; charset=utf-8")
                    return None
                chunks.append(self.rfile.read(length))
                self.rfile.readline(3)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_BODY:
            self._send(413 if length > 0 else 400, b"bad Content-Length\n", "text/plain")
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Status"
        head = [
            f"HTTP/1.1 {status} {reason}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
        ]
        if self.close_connection:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        with contextlib.suppress(OSError):
            self.wfile.write(data)
        if self.server.sandbox.verbose:
            self.log_request(status, len(body))

    def _send_json(self, status: int, payload: Any, content_type: str) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._send(status, body, content_type)

    def _dispatch(self, method: str) -> None:
        try:
            raw = self._read_body()
            if raw is None:
                self.close_connection = True
                return
            path, _, query = self.path.partition("?")
            if path.startswith(CONTROL_PREFIX):
                self._control(method, path[len(CONTROL_PREFIX) :], query, raw)
            else:
                self._platform(method, path, query, raw)
        except Exception:  # a sandbox bug must answer 500, not hang the client
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            self._send_json(
                500,
                {"errcode": -1, "errmsg": "sandbox internal error (see the sandbox's stderr)"},
                "application/json; charset=utf-8",
            )

    # -- platform calls

    def _platform(self, method: str, path: str, query_string: str, raw: bytes) -> None:
        sandbox = self.server.sandbox
        first, sep, tail = path[1:].partition("/")
        platform, rest = first, "/" + tail if sep else "/"
        if platform not in PLATFORMS:
            self._send_json(
                404,
                {
                    "errcode": 404,
                    "errmsg": f"no such platform prefix {first!r}; use /wecom, /wechat or /chatbot",
                },
                "application/json; charset=utf-8",
            )
            return
        query = dict(parse_qsl(query_string, keep_blank_values=True)) if query_string else {}
        endpoint = rest
        call = Call(platform, endpoint, method, query)
        call.raw = raw
        if platform == CHATBOT:
            for known in CHATBOT_ENDPOINTS:
                if rest == known or rest.startswith(known + "/"):
                    call.endpoint = known
                    call.bot_token = unquote(rest[len(known) + 1 :])
                    break
        if raw:
            try:
                call.body = json.loads(raw)
            except ValueError:  # UnicodeDecodeError is a ValueError too
                call.body_ok = False
        if platform == CHATBOT:
            call.content_type = self.headers.get("Content-Type", "")
            chatbot_decrypt(sandbox.state, call)

        rule = sandbox.faults.pick(platform, call.endpoint)
        spoil_after = rule if rule is not None and rule.after else None
        if spoil_after is not None:
            rule = None
        if rule is not None and rule.latency_ms:
            time.sleep(rule.latency_ms / 1000)
        if rule is not None and rule.kind != "latency":
            self._apply_fault(call, rule)
            return

        status, answer = 200, None
        route = ROUTES[platform].get(call.endpoint)
        try:
            if route is None:
                status = 404
                raise PlatformError(404, f"the sandbox has no endpoint {path}")
            wanted, handler = route
            if method != wanted:
                raise PlatformError(43001 if wanted == "GET" else 43002, f"require {wanted} method")
            answer = handler(sandbox, call)
        except PlatformError as exc:
            answer = {
                "errcode": exc.errcode,
                "errmsg": _decorate_errmsg(platform, exc.errcode, exc.errmsg),
            }
        errcode = answer.get("errcode", answer.get("code", 0))
        if spoil_after is not None:
            # The work is done; the answer is delayed past the client's patience or lost.
            if spoil_after.kind == "latency":
                sandbox._record(call, errcode, status, "latency")
                time.sleep(spoil_after.latency_ms / 1000)
                self._send_json(status, answer, _CONTENT_TYPES[platform])
                return
            if spoil_after.latency_ms:
                time.sleep(spoil_after.latency_ms / 1000)
            self._apply_fault(call, spoil_after)
            return
        sandbox._record(call, errcode, status, "latency" if rule is not None else None)
        self._send_json(status, answer, _CONTENT_TYPES[platform])

    def _apply_fault(self, call: Call, rule: FaultRule) -> None:
        sandbox = self.server.sandbox
        if rule.drop:
            sandbox._record(call, None, 0, "drop")
            self.close_connection = True
            with contextlib.suppress(OSError):
                # RST rather than FIN: nothing of an answer may reach the client.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            return
        if rule.http_status is not None:
            status = rule.http_status
            sandbox._record(call, None, status, "http_status")
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Error"
            self._send(status, f"{status} {phrase}\n".encode(), "text/plain; charset=utf-8")
            return
        if rule.body is not None:
            sandbox._record(call, None, 200, "body")
            self._send(200, rule.body.encode(), _CONTENT_TYPES[call.platform])
            return
        errcode = rule.errcode
        assert errcode is not None
        message = _FAULT_MESSAGES.get(errcode, "sandbox fault")
        answer = {
            "errcode": errcode,
            "errmsg": _decorate_errmsg(call.platform, errcode, message),
        }
        sandbox._record(call, errcode, 200, "errcode")
        self._send_json(200, answer, _CONTENT_TYPES[call.platform])

    # -- control API

    def _cross_origin(self) -> bool:
        """A request a web page of another origin made: browsers say so in these headers."""
        if self.headers.get("Sec-Fetch-Site", "") in ("cross-site", "same-site"):
            return True
        origin = self.headers.get("Origin")
        if origin is None:
            return False  # not from a browser page: sandbox_ctl, curl, tests
        try:
            origin_host = urlsplit(origin).netloc.lower()
        except ValueError:
            return True
        return origin_host != self.headers.get("Host", "").lower()

    def _control(self, method: str, name: str, query_string: str, raw: bytes) -> None:
        sandbox = self.server.sandbox
        ctype = "application/json; charset=utf-8"
        if self._cross_origin():
            # A page the developer opens elsewhere could otherwise reset state, add faults or
            # read the request log through the developer's browser.
            self._send_json(
                403,
                {"error": "the control API refuses requests from web pages of other origins"},
                ctype,
            )
            return
        try:
            body = json.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            status, answer = 200, sandbox._control(method, name, body, query_string)
        except LookupError as exc:
            status, answer = 404, {"error": str(exc.args[0] if exc.args else exc)}
        except (ValueError, TypeError) as exc:
            status, answer = 400, {"error": str(exc)}
        self._send_json(status, answer, ctype)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall on a
        # machine without DNS; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class SandboxServer:
    """The three platforms on one local port. ``start()`` serves in a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state: SandboxState | None = None,
        *,
        token_ttl: int = 7200,
        seed: int | None = None,
        verbose: bool = False,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int):
            raise ValueError("the port must be a whole number")
        if not PORT_RANGE[0] <= port <= PORT_RANGE[1]:
            raise ValueError(f"the port must be from 1 to 65535 (0 picks a free port), not {port}")
        if isinstance(token_ttl, bool) or not isinstance(token_ttl, int):
            raise ValueError("the token lifetime must be a whole number of seconds")
        if not TOKEN_TTL_RANGE[0] <= token_ttl <= TOKEN_TTL_RANGE[1]:
            raise ValueError(
                f"the token lifetime must be from {TOKEN_TTL_RANGE[0]} to {TOKEN_TTL_RANGE[1]} "
                f"seconds, not {token_ttl}"
            )
        self.host = host
        self.port = port
        self.state = state if state is not None else SandboxState(seed=seed)
        self.token_ttl = token_ttl
        self.seed = seed
        self.verbose = verbose
        self.faults = FaultSet(seed=seed)
        # corp id -> CallbackConfig: where "WeCom" sends tag-change events.
        self.callbacks: dict[str, Any] = {}
        self.requests: deque[RecordedRequest] = deque(maxlen=1000)
        self._stats: Counter[tuple[str, str]] = Counter()
        self._stats_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            raise RuntimeError("the sandbox is running already")
        httpd = _HTTPServer((self.host, self.port), self)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.5},
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        stopper = threading.Thread(target=httpd.shutdown, daemon=True)
        stopper.start()
        # Wake the accept loop at once instead of after its poll interval.
        while stopper.is_alive():
            with contextlib.suppress(OSError):
                socket.create_connection(self._connect_address(), timeout=0.5).close()
            stopper.join(0.05)
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(5)

    def _connect_address(self) -> tuple[str, int]:
        host = self.host
        if host in ("", "0.0.0.0"):  # noqa: S104 - mapping the wildcard to loopback
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return host, self.port

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    # -- addresses

    @property
    def url(self) -> str:
        host, port = self._connect_address()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def wecom_base(self) -> str:
        return self.url + "/wecom"

    @property
    def wechat_base(self) -> str:
        return self.url + "/wechat"

    @property
    def chatbot_base(self) -> str:
        return self.url + "/chatbot"

    # -- tokens, stats

    def invalidate_tokens(self, platform: str | None = None) -> int:
        """Every issued token (of ``platform``, or all) stops working now (42001)."""
        return self.state.invalidate_tokens(platform)

    def _record(self, call: Call, errcode: int | None, status: int, fault: str | None) -> None:
        key = (call.platform, call.endpoint)
        with self._stats_lock:
            self._stats[key] += 1
        self.requests.append(
            RecordedRequest(
                platform=call.platform,
                endpoint=call.endpoint,
                method=call.method,
                body=redact(call.body) if call.body_ok else None,
                xml=redact(call.xml),
                errcode=errcode,
                at=time.time(),
                status=status,
                fault=fault,
            )
        )
        if self.verbose:
            sys.stderr.write(
                f"sandbox: {call.platform} {call.method} {call.endpoint} -> "
                f"{fault or status} errcode={errcode}\n"
            )

    def calls(self, platform: str, endpoint: str) -> int:
        with self._stats_lock:
            return self._stats[(platform, endpoint)]

    def total_calls(self) -> int:
        with self._stats_lock:
            return sum(self._stats.values())

    def stats(self) -> dict[str, int]:
        with self._stats_lock:
            return {f"{p} {e}": n for (p, e), n in sorted(self._stats.items())}

    def reset_stats(self) -> None:
        """Zero the call counters and forget the recorded requests."""
        with self._stats_lock:
            self._stats.clear()
            self.requests.clear()

    def reset(self, *, demo: bool = True) -> None:
        """Empty state (tokens included), demo data again if ``demo``; counters zeroed."""
        from .demo import seed_demo

        with self.state.lock:
            self.state.reset()
            if demo:
                seed_demo(self.state)
        self.reset_stats()

    # -- WeCom callbacks (see callbacks.py)

    def _callback_configure(self, body: dict[str, Any]) -> dict[str, Any]:
        """Set a corp's callback URL, Token and EncodingAESKey, and verify the URL as WeCom
        does when the settings are saved."""
        from .callbacks import CallbackConfig, callback_verify

        corp_id = str(body.get("corp_id") or "")
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("url must be an http(s) URL")
        config = CallbackConfig(
            url=url,
            token=str(body.get("token") or ""),
            encoding_aes_key=str(body.get("encoding_aes_key") or ""),
            agent_id=int(body.get("agent_id") or 0),
        )
        self.callbacks[corp_id] = config
        return callback_verify(corp_id, config)

    def _admin_change(self, body: dict[str, Any]) -> dict[str, Any]:
        """A change "by a person in WeCom's admin": applied, then its events POSTed to the
        corp's callback URL (``delivery``: normal, duplicate, lost, bad_signature,
        out_of_order)."""
        from .callbacks import DELIVERIES, admin_change, deliver

        corp_id = str(body.get("corp_id") or "")
        delivery = body.get("delivery", "normal")
        if delivery not in DELIVERIES:
            raise ValueError(f"delivery must be one of {', '.join(DELIVERIES)}")
        change_body = body.get("body")
        if not isinstance(change_body, dict):
            raise ValueError('{"body": {...}} is required')
        try:
            answer, events = admin_change(
                self.state, corp_id, str(body.get("change") or ""), change_body
            )
        except PlatformError as error:
            return {"errcode": error.errcode, "errmsg": error.errmsg, "events": []}
        config = self.callbacks.get(corp_id)
        ordered = list(reversed(events)) if delivery == "out_of_order" else events
        statuses = [
            deliver(corp_id, config, event, delivery=delivery) if config else []
            for event in ordered
        ]
        return {**answer, "events": events, "deliveries": statuses}

    def _customers_add(self, body: dict[str, Any]) -> dict[str, Any]:
        """Members and customers added in bulk (a bench's corp of 100,000 pairs), with the
        set-up helpers' checks; the demo data is left as it is. Not atomic: what came before
        a refused entry stays."""
        corp_id = body.get("corp_id")
        members = body.get("members", [])
        customers = body.get("customers", [])
        if not isinstance(corp_id, str) or not corp_id:
            raise ValueError('{"corp_id": ...} is required')
        if not isinstance(members, list) or not isinstance(customers, list):
            raise ValueError('"members" and "customers" must be lists')
        platform = self.state.customers
        for member in members:
            if not isinstance(member, dict) or not isinstance(member.get("userid"), str):
                raise ValueError('each member must be {"userid": ..., "strategies": [...]}')
            platform.add_member(
                corp_id,
                member["userid"],
                name=str(member.get("name", "")),
                strategies=[int(s) for s in member.get("strategies", [])],
            )
        for customer in customers:
            followers = customer.get("followers", []) if isinstance(customer, dict) else None
            if not isinstance(followers, list) or not isinstance(
                customer.get("external_userid"), str
            ):
                raise ValueError(
                    'each customer must be {"external_userid": ..., "followers": [...]}'
                )
            platform.add_customer(
                corp_id,
                customer["external_userid"],
                name=str(customer.get("name", "")),
                followers=[str(userid) for userid in followers],
            )
        return {"members": len(members), "customers": len(customers)}

    # -- control API (over HTTP, see _Handler._control)

    def _control(
        self, method: str, name: str, body: dict[str, Any], query_string: str
    ) -> dict[str, Any]:
        query = dict(parse_qsl(query_string)) if query_string else {}
        route = (method, name.strip("/"))
        if route == ("GET", "health"):
            return {
                "ok": True,
                "url": self.url,
                "wecom_base": self.wecom_base,
                "wechat_base": self.wechat_base,
                "chatbot_base": self.chatbot_base,
            }
        if route == ("GET", "stats"):
            return {"calls": self.stats(), "total": self.total_calls()}
        if route == ("POST", "stats/reset"):
            self.reset_stats()
            return {"ok": True}
        if route == ("GET", "faults"):
            return {"rules": self.faults.describe()}
        if route == ("POST", "faults"):
            rules = body.get("rules")
            if not isinstance(rules, list):
                raise ValueError('{"rules": [...]} is required')
            parsed = [FaultRule.from_dict(rule) for rule in rules]
            self.faults.extend(parsed, replace=bool(body.get("replace", False)))
            return {"rules": self.faults.describe()}
        if route == ("DELETE", "faults"):
            self.faults.clear()
            return {"rules": []}
        if route == ("POST", "tokens/invalidate"):
            platform = body.get("platform")
            if platform is not None and platform not in PLATFORMS:
                raise ValueError(
                    f"platform must be one of {', '.join(PLATFORMS)}, not {platform!r}"
                )
            return {"invalidated": self.invalidate_tokens(platform)}
        if route == ("POST", "chatbot/publish_behaviour"):
            appid = body.pop("appid", None)
            if not isinstance(appid, str):
                raise ValueError('{"appid": ...} is required')
            self.state.chatbot.set_publish_behaviour(appid, **body)
            return {"ok": True}
        if route == ("POST", "reset"):
            self.reset(demo=bool(body.get("demo", True)))
            return {"ok": True, "demo": bool(body.get("demo", True))}
        if route == ("GET", "state"):
            return self.state.snapshot()
        if route == ("POST", "wecom/callback"):
            return self._callback_configure(body)
        if route == ("POST", "wecom/admin_change"):
            return self._admin_change(body)
        if route == ("POST", "wecom/customers"):
            return self._customers_add(body)
        if route == ("GET", "requests"):
            try:
                limit = int(query.get("limit", "100"))
            except ValueError:
                raise ValueError("limit must be a whole number") from None
            recent = list(self.requests)[-limit:] if limit > 0 else []
            return {
                "requests": [
                    {
                        "platform": r.platform,
                        "endpoint": r.endpoint,
                        "method": r.method,
                        "body": r.body,
                        "xml": r.xml,
                        "errcode": r.errcode,
                        "status": r.status,
                        "fault": r.fault,
                        "at": r.at,
                    }
                    for r in recent
                ]
            }
        raise LookupError(f"no control endpoint {method} {CONTROL_PREFIX}{name}")

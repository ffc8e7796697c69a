"""How every platform call travels: session, timeouts, rate limit, retries, token renewal, log.

A platform client describes its endpoints (:class:`Endpoint`) and subclasses
:class:`PlatformClient`; :meth:`PlatformClient._call` does the rest:

* one ``requests.Session`` per process (connection pooling, keep-alive), explicit timeouts;
  requests prepares each request and picks the pool, proxy and TLS settings; the request is
  sent on that pool directly (:func:`_send_on_pool`);
* the credential's rate limit, shared by all processes (:mod:`wecom.clients.ratelimit`);
* retries with exponential backoff and jitter on busy errcodes, HTTP 5xx, connection errors
  and timeouts, bounded in attempts and in total time; never on a daily quota or on errors that
  another attempt cannot fix; a timeout on a call that is not idempotent is not resent, since
  the platform may have done it already;
* on a token errcode, the token is dropped (if still the failed one) and the call retried once;
* a call that timed out after it was sent may still be running on the platform: it is not
  sent again before it has had as long again to finish (``PLATFORM_READ_TIMEOUT`` more, see
  :attr:`PlatformError.settle_until`), so that one item is never in flight twice at once;
* one log line per HTTP attempt: platform, endpoint, errcode, latency, attempt. URLs, tokens
  and bodies are never logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict, TypeVar, Unpack

import requests
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, Timeout
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from console.callfence import check_before_call
from console.logging import redact
from wecom.clients.errors import (
    PlatformAPIError,
    PlatformError,
    PlatformInputError,
    PlatformTransportError,
)
from wecom.clients.ratelimit import RateLimiter
from wecom.clients.tokens import FetchedToken, TokenStore, TokenUnavailable

logger = logging.getLogger("wecom.platform")

T = TypeVar("T")


def text_field(answer: dict[str, Any], key: str) -> str:
    """A field that must be a non-empty string (an id, a token)."""
    value = answer[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is not a non-empty string")
    return value


@dataclass(frozen=True)
class Endpoint:
    path: str
    method: str = "POST"
    # Safe to send again after a timeout that may have reached the platform.
    idempotent: bool = True
    # Carries ?access_token=.
    authed: bool = True


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    budget: float
    backoff_base: float
    backoff_cap: float

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(
            max_attempts=max(1, settings.PLATFORM_MAX_ATTEMPTS),
            budget=settings.PLATFORM_RETRY_BUDGET,
            backoff_base=settings.PLATFORM_BACKOFF_BASE,
            backoff_cap=settings.PLATFORM_BACKOFF_CAP,
        )

    def backoff(self, attempt: int, jitter: float) -> float:
        """Pause after failed attempt number ``attempt`` (1-based), for ``jitter`` in [0, 1).

        Half of the exponential step is fixed and half random ("equal jitter"): the pause
        always grows, and workers that failed together do not retry together.
        """
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + jitter * ceiling / 2


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float

    @classmethod
    def from_settings(cls) -> Timeouts:
        return cls(connect=settings.PLATFORM_CONNECT_TIMEOUT, read=settings.PLATFORM_READ_TIMEOUT)


@dataclass
class Clock:
    """Time as the transport sees it; tests pass one that records pauses instead of sleeping."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = field(default=random.random)


# Checks made before every request leaves, with the platform and endpoint: the suite's guard
# against platform calls inside a database transaction (tests/conftest.py) adds one.
before_send: list[Callable[[str, str], None]] = []

_session: requests.Session | None = None
_session_pid: int | None = None
_session_guard = threading.Lock()


def http_session() -> requests.Session:
    """The process's session. A forked worker makes its own: sockets must not be shared."""
    global _session, _session_pid
    pid = os.getpid()
    if _session is None or _session_pid != pid:
        with _session_guard:
            if _session is None or _session_pid != pid:
                session = requests.Session()
                adapter = HTTPAdapter(pool_connections=8, pool_maxsize=32, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                session.headers["User-Agent"] = "tag-console/1"
                # Proxies and CA bundle from the environment are read once per base URL
                # (environment_settings), not on every request: requests scans the whole
                # environment twice per call, a quarter of the client's CPU time per call.
                session.trust_env = False
                _session, _session_pid = session, pid
                _environment.clear()
                _routes.clear()
    return _session


_environment: dict[str, dict[str, Any]] = {}


# Requests prepared by requests once, without a body, per (method, URL, query, headers): each
# call sends the prepared request line and headers with its own body and length. Preparing a
# request (parsing and quoting the URL, merging headers, cookies) costs ~150 µs, a copy of a
# prepared one ~17 µs, these two lookups ~1 µs. The query holds the access token, so entries go
# stale as tokens are renewed: the cache is bounded and starts again when full.
@dataclass(frozen=True)
class _Template:
    prepared: requests.PreparedRequest
    headers: dict[str, str]


_templates: dict[tuple[Any, ...], _Template] = {}
_TEMPLATES_MAX = 256


def _request_template(
    method: str, url: str, query: dict[str, Any], headers: dict[str, str]
) -> _Template:
    key = (method, url, tuple(query.items()), tuple(headers.items()))
    template = _templates.get(key)
    if template is None:
        if len(_templates) >= _TEMPLATES_MAX:
            _templates.clear()
        prepared = requests.Request(method, url, params=query or None, headers=headers).prepare()
        template = _Template(prepared=prepared, headers=dict(prepared.headers))
        _templates[key] = template
    return template


def environment_settings(base_url: str) -> dict[str, Any]:
    """What requests would take from the environment for ``base_url``: proxies (HTTPS_PROXY,
    NO_PROXY…), the CA bundle (REQUESTS_CA_BUNDLE), a client certificate; once per process."""
    found = _environment.get(base_url)
    if found is None:
        probe = requests.Session()
        merged = probe.merge_environment_settings(base_url + "/", {}, None, None, None)
        probe.close()
        found = {key: merged[key] for key in ("proxies", "verify", "cert")}
        _environment[base_url] = found
    return found


def forget_environment_settings() -> None:
    """Read the environment again at the next call (tests that change it)."""
    _environment.clear()
    _routes.clear()


@dataclass(frozen=True)
class _Route:
    """How calls to one base URL leave: the session's urllib3 pool for it (proxy and TLS
    settings as requests chose them), and whether the request line carries the whole URL (a
    plain-HTTP proxy) or only the path."""

    pool: HTTPConnectionPool
    whole_url: bool
    timeout: Timeout


_routes: dict[tuple[str, Timeouts], _Route] = {}


def _send_on_pool(
    session: requests.Session,
    template: _Template,
    data: bytes | None,
    base_url: str,
    timeouts: Timeouts,
) -> tuple[int, bytes]:
    """Send ``template``'s request with ``data`` as its body on the session's pool for
    ``base_url``; the answer's status and body.

    Below requests' ``Session.send``: its hooks, cookie jars, redirect handling and Response
    object (none of which these APIs use) cost ~60 µs of a ~380 µs call on a sandbox, a sixth
    of a bulk job's time (bench/README.md). The pool, the proxy and the TLS settings are
    still the session's, chosen by requests once per base URL. urllib3's errors are raised as
    they are (no retries here: :meth:`PlatformClient._send_with_retries` decides)."""
    prepared = template.prepared
    key = (base_url, timeouts)
    route = _routes.get(key)
    if route is None or route.pool.pool is None:  # none yet, or closed by the pool manager
        environment = environment_settings(base_url)
        adapter = session.get_adapter(prepared.url)
        pool = adapter.get_connection_with_tls_context(
            prepared,
            environment["verify"],
            proxies=environment["proxies"],
            cert=environment["cert"],
        )
        adapter.cert_verify(pool, prepared.url, environment["verify"], environment["cert"])
        route = _Route(
            pool=pool,
            whole_url=adapter.request_url(prepared, environment["proxies"]) != prepared.path_url,
            timeout=Timeout(connect=timeouts.connect, read=timeouts.read),
        )
        _routes[key] = route
    headers = template.headers
    if data is not None:
        headers = {**headers, "Content-Length": str(len(data))}
    response = route.pool.urlopen(
        method=prepared.method,
        url=prepared.url if route.whole_url else prepared.path_url,
        body=data,
        headers=headers,
        redirect=False,
        assert_same_host=False,
        retries=False,
        timeout=route.timeout,
        preload_content=True,
        decode_content=True,
    )
    return response.status, response.data


def read_errcode(answer: dict[str, Any]) -> int:
    """The errcode of an answer. The dialogue platform sometimes says ``code`` instead."""
    for key in ("errcode", "code"):
        if key in answer and answer[key] is not None:
            return int(answer[key])
    return 0


_CONNECT_FAILED = _(
    "Could not connect to %(platform)s. The console tried %(attempts)s time(s); check the "
    "network and try again later."
)
_TIMED_OUT = _(
    "%(Platform)s did not answer within %(seconds)s seconds. The console tried %(attempts)s "
    "time(s); try again later."
)
_TIMED_OUT_MAYBE_DONE = _(
    "%(Platform)s did not answer within %(seconds)s seconds. The change may have been made "
    "anyway: pull again to check before repeating it."
)
_SERVER_ERROR = _("%(Platform)s answered with a server error (HTTP %(status)s). Try again later.")
_UNREADABLE = _("%(Platform)s gave an answer the console cannot read.")
_TOKEN_BUSY = _(
    "Another part of the console is fetching the access token for %(platform)s and has not "
    "finished. Try again in a minute."
)


class TransportOptions(TypedDict, total=False):
    """How a client reaches its platform; every option defaults from the settings."""

    base_url: str | None
    rate_limit: float | None
    retry: RetryPolicy | None
    timeouts: Timeouts | None
    clock: Clock | None


class PlatformClient:
    """Base of the platform clients. Subclasses set ``platform`` and, when their endpoints need
    an access token, override :meth:`_access_token` and :meth:`_drop_access_token`."""

    platform: ClassVar[str]
    # The setting that names the platform's base URL (production host by default).
    base_url_setting: ClassVar[str]

    def __init__(self, *, credential_key: str, **options: Unpack[TransportOptions]) -> None:
        self.base_url = (
            options.get("base_url") or getattr(settings, self.base_url_setting)
        ).rstrip("/")
        self.credential_key = credential_key
        self.retry = options.get("retry") or RetryPolicy.from_settings()
        self.timeouts = options.get("timeouts") or Timeouts.from_settings()
        self.clock = options.get("clock") or Clock()
        self.cache = caches[settings.SHARED_CACHE_ALIAS]
        self.limiter = RateLimiter(
            cache=self.cache,
            key=f"platform-rate:{credential_key}",
            rate=options.get("rate_limit") or settings.PLATFORM_RATE_LIMIT,
            clock=self.clock.wall,
            sleep=self.clock.sleep,
        )

    # -- tokens (overridden by clients whose endpoints are authed) ------------------------------

    def _access_token(self) -> str:
        raise NotImplementedError

    def _drop_access_token(self, value: str) -> None:
        raise NotImplementedError

    def verify_connection(self) -> None:
        """Make an authenticated call that changes nothing; a token is fetched only if needed.

        Raises PlatformError with what the platform (or the network) answered.
        """
        raise NotImplementedError

    def _check(self, validator: Callable[[Any], None], value: Any, endpoint: Endpoint) -> None:
        """Refuse before sending what the platform would refuse; the rule lives in wecom.rules."""
        try:
            validator(value)
        except ValidationError as error:
            raise PlatformInputError(
                platform=self.platform, endpoint=endpoint.path, explanation=" ".join(error.messages)
            ) from None

    # -- calls --------------------------------------------------------------------------------

    def _call(
        self,
        endpoint: Endpoint,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        path_suffix: str = "",
        read: Callable[[dict[str, Any]], T] | None = None,
    ) -> Any:
        """Send one logical call, with retries; return what ``read`` makes of the answer.

        ``read`` turns the answer's JSON into the client's typed result. An answer it cannot
        read (a field missing or of the wrong type) is a transport error, not a crash.
        """
        answer, attempts = self._send_with_retries(endpoint, params, body, path_suffix)
        if read is None:
            return answer
        try:
            return read(answer)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            logger.warning(
                "platform=%s endpoint=%s answer unreadable: %s",
                self.platform,
                endpoint.path,
                type(exc).__name__,
            )
            raise self._transport_error(endpoint, _UNREADABLE, attempts, False, cause=exc) from None

    def _send_with_retries(
        self,
        endpoint: Endpoint,
        params: dict[str, Any] | None,
        body: Any,
        path_suffix: str,
    ) -> tuple[dict[str, Any], int]:
        started = self.clock.monotonic()
        attempt = 0
        token_renewed = False
        while True:
            attempt += 1
            token = self._access_token() if endpoint.authed else None
            try:
                return self._send(endpoint, token, params, body, path_suffix, attempt), attempt
            except PlatformError as error:
                if error.token_problem and token is not None and not token_renewed:
                    token_renewed = True
                    self._drop_access_token(token)
                    continue
                if not error.retryable or attempt >= self.retry.max_attempts:
                    raise
                pause = max(
                    self.retry.backoff(attempt, self.clock.random()),
                    error.settle_until - self.clock.monotonic(),
                )
                if self.clock.monotonic() - started + pause > self.retry.budget:
                    raise
                self.clock.sleep(pause)

    def _send(
        self,
        endpoint: Endpoint,
        token: str | None,
        params: dict[str, Any] | None,
        body: Any,
        path_suffix: str,
        attempt: int,
    ) -> dict[str, Any]:
        for check in before_send:
            check(self.platform, endpoint.path)
        self.limiter.acquire()
        # After the limiter's wait and any pause between attempts, right before the request: a
        # job's shard checks here that its lease still holds (console/callfence.py).
        check_before_call()
        query = dict(params or {})
        if token is not None:
            query["access_token"] = token
        data = None
        headers = {}
        if body is not None:
            # UTF-8, not \\u escapes: the platforms count name lengths on what they receive.
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json; charset=utf-8"
        outcome = "ok"
        errcode: int | None = None
        began = time.perf_counter()
        try:
            try:
                session = http_session()
                # Session.request would merge the session's cookies, auth, params and
                # environment into every request (cookie jars built and merged twice): a fifth
                # of the client's own time per call. These APIs use none of them, so the request
                # is prepared with the session's headers alone and sent on the session's pool.
                template = _request_template(
                    endpoint.method,
                    f"{self.base_url}{endpoint.path}{path_suffix}",
                    query,
                    {**session.headers, **headers},
                )
                status, content = _send_on_pool(
                    session, template, data, self.base_url, self.timeouts
                )
            except NewConnectionError as exc:
                # Before ConnectTimeoutError, its base class in urllib3 2: no connection was
                # made, nothing was sent, so it is always safe to retry.
                outcome = "connection-error"
                raise self._transport_error(
                    endpoint, _CONNECT_FAILED, attempt, True, cause=exc
                ) from None
            except ConnectTimeoutError as exc:
                outcome = "connect-timeout"
                raise self._transport_error(
                    endpoint, _CONNECT_FAILED, attempt, True, cause=exc
                ) from None
            except ReadTimeoutError as exc:
                outcome = "timeout"
                message = _TIMED_OUT if endpoint.idempotent else _TIMED_OUT_MAYBE_DONE
                error = self._transport_error(
                    endpoint, message, attempt, endpoint.idempotent, cause=exc
                )
                # Sent, not answered: the platform may still be working on it.
                error.settle_until = self.clock.monotonic() + self.timeouts.read
                raise error from None
            except requests.RequestException as exc:
                # requests' own refusals (a base URL it cannot prepare). Before OSError: they
                # are OSErrors too, and no attempt can do better.
                outcome = "request-error"
                raise self._transport_error(
                    endpoint, _CONNECT_FAILED, attempt, False, cause=exc
                ) from None
            except (ProtocolError, ProxyError, SSLError, ClosedPoolError, OSError) as exc:
                # A connection dropped after sending may have reached the platform.
                outcome = "connection-error"
                raise self._transport_error(
                    endpoint, _CONNECT_FAILED, attempt, endpoint.idempotent, cause=exc
                ) from None
            except HTTPError as exc:
                outcome = "request-error"
                raise self._transport_error(
                    endpoint, _CONNECT_FAILED, attempt, False, cause=exc
                ) from None
            if status >= 500:
                outcome = f"http-{status}"
                raise self._transport_error(
                    endpoint, _SERVER_ERROR, attempt, endpoint.idempotent, status=status
                )
            try:
                answer = json.loads(content)
                if not isinstance(answer, dict):
                    raise ValueError("not an object")
                errcode = read_errcode(answer)
            except ValueError as exc:
                outcome = f"unreadable-http-{status}"
                raise self._transport_error(endpoint, _UNREADABLE, attempt, False) from exc
            if errcode != 0:
                outcome = "error"
                raise PlatformAPIError.from_answer(
                    platform=self.platform,
                    endpoint=endpoint.path,
                    errcode=errcode,
                    errmsg=str(answer.get("errmsg") or answer.get("msg") or ""),
                )
            return answer
        finally:
            logger.log(
                logging.INFO if outcome == "ok" else logging.WARNING,
                "platform=%s endpoint=%s errcode=%s latency_ms=%.1f attempt=%d outcome=%s",
                self.platform,
                endpoint.path,
                "-" if errcode is None else errcode,
                (time.perf_counter() - began) * 1000,
                attempt,
                outcome,
            )

    def _transport_error(
        self,
        endpoint: Endpoint,
        message: Any,
        attempt: int,
        retryable: bool,
        *,
        status: int | None = None,
        cause: Exception | None = None,
    ) -> PlatformTransportError:
        # Raised "from None" with the cause only described: requests quotes the URL in its
        # messages, and the query string holds the token or the secret.
        if cause is not None:
            detail = redact(f"{type(cause).__name__}: {cause}")[:300]
        else:
            detail = f"HTTP {status}" if status else ""
        return PlatformTransportError(
            platform=self.platform,
            endpoint=endpoint.path,
            errmsg=detail,
            explanation=message,
            explanation_params={
                "attempts": attempt,
                "seconds": f"{self.timeouts.read:g}",
                "status": status or "",
            },
            retryable=retryable,
        )


def credential_key(platform: str, *parts: str) -> str:
    """A cache slot name per credential: a new secret gets a new slot (and a new token)."""
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]
    return f"{platform}:{digest}"


class TokenAuthenticatedClient(PlatformClient):
    """A client whose endpoints carry ``?access_token=`` from a shared :class:`TokenStore`."""

    def __init__(self, *, credential_key: str, **options: Unpack[TransportOptions]) -> None:
        super().__init__(credential_key=credential_key, **options)
        self.tokens = TokenStore(
            cache=self.cache,
            key=f"platform-token:{self.credential_key}",
            fetch=self._fetch_token,
            refresh_margin=settings.PLATFORM_TOKEN_REFRESH_MARGIN,
            # The refresher's fetch may spend the whole retry budget; the lock outlives it.
            lock_timeout=int(self.retry.budget + self.timeouts.connect + self.timeouts.read) + 1,
            clock=self.clock.wall,
            sleep=self.clock.sleep,
        )

    def _fetch_token(self) -> FetchedToken:
        raise NotImplementedError

    def _access_token(self) -> str:
        try:
            return self.tokens.get()
        except TokenUnavailable:
            # Another worker holds the refresh lock and has not produced a token in time.
            raise PlatformTransportError(
                platform=self.platform,
                endpoint="access_token",
                errmsg="token refresh by another worker did not finish",
                explanation=_TOKEN_BUSY,
                retryable=False,
            ) from None

    def _drop_access_token(self, value: str) -> None:
        self.tokens.invalidate(value)

    def check_connection(self) -> None:
        """Have an access token (cached or fetched): raises PlatformError when none can be had.

        A cached token proves nothing about the platform now: the connection test calls
        :meth:`verify_connection`.
        """
        self._access_token()

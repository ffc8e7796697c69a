"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.db import DatabaseCache

from console.roles import AUDITOR, CREDENTIAL_ADMIN, MARKETING_EDITOR, Role
from wecom.sandbox import SandboxServer, SandboxState, seed_demo

PASSWORD = "correct horse battery staple 42"

# The slow groups, left out of `make test-fast` (the inner loop) and run by `make test` and CI:
# processes started and killed for real, the chaos run, the fuzzers and the hostile files. A
# test is listed by its file, or by file and function where the rest of the file is quick.
SLOW_TESTS = (
    "tests/test_runconsole.py",
    "tests/test_worker_liveness.py",
    "tests/test_settings_sentences.py",
    "tests/test_fuzz_admin.py",
    "tests/test_validators_fuzz.py",
    "tests/tagging/bulk/test_bulk_chaos.py",
    "tests/tagging/customers/test_customers_chaos.py::test_a_customers_job_under_chaos",
    "tests/test_view_only.py::test_no_role_changes_anything_outside_its_apps",
    "tests/test_hostile_input.py::test_each_hostile_xlsx_is_refused_quickly_and_in_little_memory",
    "tests/test_hostile_input.py::test_the_bulk_upload_refuses_each_hostile_xlsx_in_words",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # tests/browser/conftest.py marks the browser journeys
        if item.nodeid.startswith(SLOW_TESTS):
            item.add_marker(pytest.mark.slow)


def shared_cache_across_threads(settings, location: str) -> BaseCache:
    """The shared cache, emptied, and reachable from the other threads of this process (the
    sandbox's, a job's workers).

    On SQLite the shared cache is a table in the test database, which other threads cannot see
    inside the test's transaction: a local-memory cache stands in (one process is all these
    tests run in); tests/test_shared_cache_database.py covers the table. On the PostgreSQL +
    Redis run it stays Redis, shared for real.
    """
    if isinstance(caches["shared"], DatabaseCache):
        settings.CACHES = {
            **settings.CACHES,
            "shared": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": location,
            },
        }
    caches["shared"].clear()
    return caches["shared"]


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test starts with empty caches: tokens and rate counters must not leak between tests."""
    for alias in ("default", "shared"):
        # The database cache lives in the test database, which each test rolls back anyway.
        if not isinstance(caches[alias], DatabaseCache):
            caches[alias].clear()
    from wecom.clients.ratelimit import forget_local_leases
    from wecom.clients.tokens import forget_local_tokens

    forget_local_tokens()
    forget_local_leases()
    yield


@pytest.fixture
def job_kinds(monkeypatch) -> Callable[..., None]:
    """Register job kinds of a test's own for that test only: they are taken out of the
    registry afterwards, so no other test sees them."""
    from console.jobs import JobKind, registry

    def register(*kinds: JobKind) -> None:
        for kind in kinds:
            monkeypatch.setitem(registry._KINDS, kind.name, kind)

    return register


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    def make(username: str, *, role: Role | None = None, superuser: bool = False) -> User:
        if superuser:
            return User.objects.create_superuser(username, f"{username}@example.com", PASSWORD)
        user = User.objects.create_user(
            username, f"{username}@example.com", PASSWORD, is_staff=True
        )
        if role is not None:
            user.groups.add(Group.objects.get(name=role.group_name))
        return user

    return make


@pytest.fixture
def editor(make_user) -> User:
    return make_user("editor", role=MARKETING_EDITOR)


@pytest.fixture
def credential_admin(make_user) -> User:
    return make_user("keyholder", role=CREDENTIAL_ADMIN)


@pytest.fixture
def auditor(make_user) -> User:
    return make_user("auditor", role=AUDITOR)


@pytest.fixture
def superuser(make_user) -> User:
    return make_user("root", superuser=True)


@pytest.fixture
def sandbox(settings) -> Iterator[SandboxServer]:
    """The platforms, emulated with demo data over real HTTP; the console's clients point at it."""
    state = SandboxState(seed=7)
    seed_demo(state)
    with SandboxServer(state=state, seed=7) as server:
        settings.WECOM_API_BASE = server.wecom_base
        settings.WECHAT_API_BASE = server.wechat_base
        settings.CHATBOT_API_BASE = server.chatbot_base
        yield server


@pytest.fixture(autouse=True)
def _no_platform_call_inside_a_transaction() -> Iterator[None]:
    """Fails any test in which a platform client sends a request while this thread holds a
    database transaction open (docs/write-path.md). The test's own atomic blocks (pytest-django's
    ``db``) are not counted: see ``console.transactions``."""
    from console.transactions import transaction_open
    from wecom.clients import transport

    offences: list[str] = []

    def check(platform: str, endpoint: str) -> None:
        if transaction_open():
            offences.append(f"{platform} {endpoint}")
            raise AssertionError(f"{platform} {endpoint} was called inside a database transaction")

    transport.before_send.append(check)
    try:
        yield
    finally:
        transport.before_send.remove(check)
    if offences:
        pytest.fail("platform calls inside a database transaction: " + ", ".join(offences))


@pytest.fixture(autouse=True)
def _language_as_configured() -> Iterator[None]:
    """A page requested in English (the test client runs in the test's thread) leaves English
    active; the next test starts in the configured language again."""
    yield
    from django.utils import translation

    translation.deactivate()

"""Is a database transaction open? The write path's one question (docs/write-path.md).

A platform call must never run inside a database transaction: it would hold row locks (and a
connection) through an HTTP call that may last the whole retry budget, and a rollback after the
call would leave the platform changed and the console not. Services that call a platform start
with :func:`require_no_transaction`; the transport asks :func:`transaction_open` before each
request when the suite's guard is on (``tests/conftest.py``).

"Open" means an ``atomic`` block of our own code, or autocommit turned off. Django's test cases
(and pytest-django's ``db`` fixture) wrap each test in atomic blocks of their own; those are
marked ``_from_testcase`` by Django and are not counted, so the answer in a test is the answer
the same code gets in production.
"""

from __future__ import annotations

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper


class TransactionOpen(RuntimeError):
    """A service that calls a platform was called inside a database transaction."""


def _open_on(connection: BaseDatabaseWrapper) -> bool:
    # Django's own check for ``atomic(durable=True)`` uses the same marker.
    if connection.in_atomic_block:
        return any(not block._from_testcase for block in connection.atomic_blocks)
    # Autocommit turned off by hand (``set_autocommit(False)``) holds a transaction open too.
    # The attribute, not get_autocommit(): that would open a connection to answer.
    return connection.connection is not None and not connection.autocommit


def transaction_open() -> bool:
    """True if this thread holds a database transaction open on any connection."""
    return any(_open_on(connection) for connection in connections.all(initialized_only=True))


def require_no_transaction(what: str) -> None:
    """Refuse to go on inside a transaction: ``what`` calls a platform (a programming error)."""
    if transaction_open():
        raise TransactionOpen(
            f"{what} calls a platform and must not run inside a database transaction: "
            "record the intent, call, then record the outcome (docs/write-path.md)."
        )

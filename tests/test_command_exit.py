"""How a ``manage.py`` command ends: connections closed, then no collections at exit.

Python's last collections walk every object of a loaded Django as its modules are torn down,
0.3 to 0.8 s after every command (``console.cli.end_without_final_collections``).
"""

from __future__ import annotations

import pytest

from tests.test_configuration import clean_env, run

# Registered after manage.py's code ran: atexit handlers run once main() has returned.
AT_EXIT = """
import atexit, gc, sys
from django.db import connection
connection.ensure_connection()
atexit.register(
    lambda: print("frozen", gc.get_freeze_count() > 0, "closed", connection.connection is None)
)
sys.exit({status})
"""


@pytest.mark.parametrize("status", [0, 3])
def test_a_command_closes_its_connections_and_freezes_the_collector_as_it_ends(tmp_path, status):
    result = run(
        ["manage.py", "shell", "-c", AT_EXIT.format(status=status)],
        env=clean_env(DEBUG="true", DATABASE_URL=f"sqlite:///{tmp_path / 'exit.sqlite3'}"),
    )
    assert result.returncode == status, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "frozen True closed True"

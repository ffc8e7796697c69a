"""Many rows into one table at once, at the database's speed.

For writes of thousands of rows (a first pull's tags and their History entries), where building
a model instance per row costs more than the writing: PostgreSQL takes them with one COPY,
SQLite with ``executemany`` (in-process), other databases in multi-row INSERTs.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, models


def rows_insert(model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple]) -> None:
    """Insert ``rows`` (tuples of database values, in the order of ``columns``, which are field
    names) into ``model``'s table. Nothing is validated and no signal is sent."""
    if not rows:
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    names = ", ".join(quote(model._meta.get_field(column).column) for column in columns)
    row_marks = "(" + ", ".join(["%s"] * len(columns)) + ")"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        if connection.vendor == "sqlite":
            cursor.executemany(
                f"INSERT INTO {table} ({names}) VALUES {row_marks}",  # noqa: S608 - model names
                rows,
            )
            return
        limit = connection.features.max_query_params or 65_535
        size = max(1, min(1000, limit // len(columns)))
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            values = ", ".join([row_marks] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {values}",  # noqa: S608 - model names
                [value for row in chunk for value in row],
            )

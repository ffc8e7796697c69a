"""JSON from people (imports, the answer editor's post) read with limits, refused in words.

``json.loads`` has no limit of its own: 100,000 nested brackets end in a RecursionError (a 500),
and 20 MB of ``[{},{},…]`` become millions of objects (gigabytes). The counts below are taken on
the text before it is parsed (``str.count`` runs at memory speed), the depth after.
"""

from __future__ import annotations

import json
from typing import Any

from django.utils.translation import gettext


class JsonRefused(ValueError):
    """The text is not JSON the console reads; ``str()`` is the sentence to show."""


class JsonSyntaxRefused(JsonRefused):
    """Not JSON at all; ``lineno`` says where (callers may word it for their page)."""

    def __init__(self, message: str, lineno: Any) -> None:
        super().__init__(message)
        self.lineno = lineno


def _too_deep(max_depth: int) -> JsonRefused:
    return JsonRefused(
        gettext("The JSON is nested more than %(depth)d levels deep.") % {"depth": max_depth}
    )


def json_depth_check(value: Any, *, max_depth: int) -> None:
    """Refuse ``value`` if its lists and objects nest deeper than ``max_depth`` (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise _too_deep(max_depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def json_loads_bounded(
    text: str, *, max_depth: int = 20, max_containers: int = 200_000, max_values: int = 1_000_000
) -> Any:
    """``json.loads(text)`` within the limits; a refusal is a :class:`JsonRefused` sentence.

    Counting brackets and commas inside strings too only makes the counts larger: a file
    near the limits may be refused, never one past them read.
    """
    containers = text.count("{") + text.count("[")
    if containers > max_containers or text.count(",") + 1 > max_values:
        raise JsonRefused(
            gettext(
                "The JSON holds too many values to be read here (at most %(values)s values "
                "in %(containers)s lists or objects)."
            )
            % {"values": f"{max_values:,}", "containers": f"{max_containers:,}"}
        )
    try:
        value = json.loads(text)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except ValueError as error:
        line = getattr(error, "lineno", "?")
        raise JsonSyntaxRefused(
            gettext("The text is not valid JSON (line %(line)s).") % {"line": line}, line
        ) from None
    json_depth_check(value, max_depth=max_depth)
    return value

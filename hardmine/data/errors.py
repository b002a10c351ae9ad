"""The one error for unusable input data, and how its messages list rows."""
from __future__ import annotations

#: how many rows (or values) a message lists before "and N more"
MAX_LISTED = 10


class DataError(ValueError):
    """The input data is not usable as given; the message names the rows and the fix."""


def listed(labels: list, ids: list | None = None) -> str:
    shown = labels[:MAX_LISTED]
    if ids is not None:
        shown = [f"{r} (id={i})" for r, i in zip(shown, ids[:MAX_LISTED])]
    more = f" and {len(labels) - MAX_LISTED} more" if len(labels) > MAX_LISTED else ""
    return ", ".join(map(str, shown)) + more


def plural(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"

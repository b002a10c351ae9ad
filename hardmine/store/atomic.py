"""Atomic replacement of a local file: write to a temporary name next to it, then rename.

:class:`~hardmine.store.RunStore` writes a run's artifacts this way on any filesystem;
:func:`atomic_file` is the same for a plain local file outside a run (an export, a plot, a
generated data set), so a reader never sees a half-written file.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temp_name(name: str) -> str:
    """The temporary name a file or directory ``name`` is written under before its rename (hidden: leading dot)."""
    return f".tmp-{uuid.uuid4().hex[:8]}-{name.replace('/', '_')}"


@contextmanager
def atomic_file(path: str | os.PathLike, durable: bool = False) -> Iterator[str]:
    """Yield a temporary path next to the local file ``path`` (same name ending, so writers that
    infer the format from it still do); when the block succeeds it replaces ``path``, else it is
    removed. The parent directory is created.

    ``durable``: the data is fsynced before the rename, and the rename after it (best effort), so
    a power loss never leaves an empty file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temp_name(path.name))
    try:
        yield str(tmp)
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        try:
            _fsync(path.parent)
        except OSError:
            pass


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

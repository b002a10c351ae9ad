"""The analysis on disk (analysis/: one parquet file per table and analysis.json), and
:func:`atomic_write`, which the plots use too."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from hardmine.store import atomic_file


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> str:
    """Create the local file ``path`` atomically (:func:`hardmine.store.atomic_file`): ``write(tmp)``
    fills a temp file beside it, which then replaces ``path``; on any error ``path`` is untouched.
    Returns ``str(path)``."""
    with atomic_file(path) as tmp:
        write(tmp)
    return str(path)


def to_jsonable(result: dict) -> dict:
    """The result with every table turned into a list of row dicts."""
    return {k: (v.to_pylist() if isinstance(v, pa.Table) else v) for k, v in result.items()}


def write_analysis(result: dict, out_dir: str | os.PathLike) -> dict[str, str]:
    """Write each table of an :func:`~hardmine.analysis.analyze` result as ``<name>.parquet`` and
    everything as ``analysis.json`` (atomic); returns the paths by name (``analysis``: the JSON)."""
    out = Path(out_dir)
    paths: dict[str, str] = {}
    for name, value in result.items():
        if isinstance(value, pa.Table):  # per_class, confusion_pairs, distinctive_tokens (and any table a caller added)
            paths[name] = atomic_write(out / f"{name}.parquet", lambda tmp, v=value: pq.write_table(v, tmp))
    text = json.dumps(to_jsonable(result), ensure_ascii=False, indent=2, allow_nan=False)

    def write_json(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    paths["analysis"] = atomic_write(out / "analysis.json", write_json)
    return paths

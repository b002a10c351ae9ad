"""The analysis on disk (analysis/: one parquet file per table and analysis.json), each file
written atomically (:func:`hardmine.store.atomic_file`)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hardmine.store import atomic_file


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
            with atomic_file(out / f"{name}.parquet") as tmp:
                pq.write_table(value, tmp)
            paths[name] = str(out / f"{name}.parquet")
    text = json.dumps(to_jsonable(result), ensure_ascii=False, indent=2, allow_nan=False)
    with atomic_file(out / "analysis.json") as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    paths["analysis"] = str(out / "analysis.json")
    return paths

"""A run's ``manifest.json``: read with fallback to its backup or a rebuild, written with a backup.

Reading never raises ``JSONDecodeError``: a damaged manifest falls back to ``manifest.json.bak``
(the previous good version), else a minimal manifest is rebuilt from the artifacts (no stage
done; ``labels`` and ``dataset_version`` recovered). Writing keeps the current manifest as the
backup when it is good, else aside as ``manifest.json.corrupt``, then replaces it durably.
See :mod:`hardmine.store` for the whole contract.
"""
from __future__ import annotations

import json
import platform
import re
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hardmine.store.errors import RunStoreError
from hardmine.store.json_io import json_bytes, utc_now

if TYPE_CHECKING:
    from hardmine.store.run_store import RunStore

MANIFEST = "manifest.json"
MANIFEST_BAK = "manifest.json.bak"
MANIFEST_CORRUPT = "manifest.json.corrupt"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("hardmine", "ray", "torch", "transformers", "cleanlab", "pyarrow"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional module is just not recorded
            pass
    return out


def parse_manifest(raw: bytes | None) -> tuple[dict | None, str]:
    """(manifest, "") when ``raw`` is a valid manifest, else (None, why not)."""
    if raw is None:
        return None, "missing"
    if not raw.strip():
        return None, "empty"
    try:
        m = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        return None, f"not valid JSON ({type(e).__name__}: {e}; {len(raw)} bytes, truncated?)"
    if not isinstance(m, dict):
        return None, f"not a JSON object (a {type(m).__name__})"
    if not isinstance(m.setdefault("stages", {}), dict):
        return None, f"its 'stages' is not an object (a {type(m['stages']).__name__})"
    return m, ""


class Manifest:
    """The manifest of one run store: :meth:`read` (repairing in memory) and :meth:`write`."""

    def __init__(self, store: "RunStore"):
        self.store = store
        self._rebuilt_cache: tuple[Any, dict] | None = None

    def forget_rebuilt(self) -> None:
        """The artifacts changed: a manifest rebuilt from them is stale."""
        self._rebuilt_cache = None

    def read(self) -> dict:
        store = self.store
        raw = store.read_raw(MANIFEST)
        m, why = parse_manifest(raw)
        if m is not None:
            return m
        try:
            bak_raw = store.read_raw(MANIFEST_BAK)
        except RunStoreError:
            bak_raw = None
        bak, bak_why = parse_manifest(bak_raw)
        if bak is not None:
            if raw is not None:
                store.note(f"{store.display(MANIFEST)} is damaged ({why}): using {MANIFEST_BAK}, the previous good version "
                           f"(written {bak.get('written', 'at an unknown time')}); stages it does not record as done re-run")
            else:
                store.note(f"{store.display(MANIFEST)} is missing: using {MANIFEST_BAK}, the previous good version")
            return bak
        if raw is None:
            return {"stages": {}}  # a new run (or its manifest deleted on purpose: every stage re-runs)
        key = (raw, bak_raw)
        if self._rebuilt_cache is not None and self._rebuilt_cache[0] == key:
            return json.loads(json.dumps(self._rebuilt_cache[1]))
        reason = f"{MANIFEST} {why}; {MANIFEST_BAK} {bak_why}"
        try:
            rebuilt = self._rebuild(reason)
        except Exception as e:  # noqa: BLE001 - any failure to rebuild is reported as one clear error
            raise RunStoreError(
                f"{store.display(MANIFEST)} is unusable ({why}), so is {MANIFEST_BAK} ({bak_why}), and rebuilding it from the "
                f"artifacts failed ({type(e).__name__}: {e}): delete {store.display(MANIFEST)} and {store.display(MANIFEST_BAK)} "
                "(every stage re-runs; human review versions under review/ are kept)"
            ) from e
        recovered = ", ".join(k for k in ("labels", "dataset_version") if k in rebuilt) or "nothing"
        store.note(f"{store.display(MANIFEST)} is unusable ({why}) and so is its backup ({bak_why}): rebuilt a minimal "
                   f"manifest from the artifacts (recovered: {recovered}); every stage re-runs")
        self._rebuilt_cache = (key, rebuilt)
        return json.loads(json.dumps(rebuilt))

    def _rebuild(self, reason: str) -> dict:
        """A minimal manifest from the artifacts present: no stage done; labels and dataset_version when recoverable."""
        fs = self.store.fs
        m: dict[str, Any] = {"stages": {}, "rebuilt": {"at": utc_now(), "reason": reason}}
        labels = self._labels_from("dataset.parquet")
        if labels:
            m["labels"] = labels
        versions_dir = self.store.path("review/versions")
        if fs.get_file_info(versions_dir).type == pafs.FileType.Directory:
            found = [int(g.group(1)) for i in fs.get_file_info(pafs.FileSelector(versions_dir))
                     if i.type == pafs.FileType.File and (g := re.fullmatch(r"v(\d+)\.parquet", i.base_name))]
            if found:
                m["dataset_version"] = max(found)
        return m

    def _labels_from(self, name: str) -> list[str] | None:
        """The label names, index = label id, from a canonical table's label/label_name columns (None if not recoverable)."""
        try:
            t = pq.read_table(self.store.path(name), columns=["label", "label_name"], filesystem=self.store.fs)
        except Exception:  # noqa: BLE001 - missing, damaged or another schema: not recoverable from it
            return None
        pairs = t.group_by(["label", "label_name"]).aggregate([])
        ids, names = pairs.column("label").to_pylist(), pairs.column("label_name").to_pylist()
        if not ids or len(set(ids)) != len(ids) or len(set(names)) != len(names) or sorted(ids) != list(range(len(ids))):
            return None
        out = [""] * len(ids)
        for i, n in zip(ids, names):
            out[i] = n
        return out

    def write(self, m: dict) -> None:
        """Back up the current manifest if it is good (else keep it aside as .corrupt), then replace it atomically."""
        store = self.store
        try:
            raw = store.read_raw(MANIFEST)
        except RunStoreError:
            raw = None
        if raw is not None:
            good, _ = parse_manifest(raw)
            store.write_durable(MANIFEST_CORRUPT if good is None else MANIFEST_BAK, raw)
        m["written"] = utc_now()
        store.write_durable(MANIFEST, json_bytes(m))
        self._rebuilt_cache = None

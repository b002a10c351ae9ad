"""What the report reads: a read-only view of a run directory (missing artifacts -> None)."""
from __future__ import annotations

from html import escape
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from hardmine.report.columns import lookup
from hardmine.report.html import Html
from hardmine.store import RunStore
from hardmine.summaries import read_label_quality

#: what a section says when the stage that writes its artifacts has not run
NOT_RUN = "not run yet"


class RunArtifacts:
    """The manifest, stage summaries, tables, JSON and PNG files of the run in ``store``."""

    def __init__(self, store: RunStore):
        self.store = store
        self.manifest = store.manifest()
        self.stages = self.manifest.get("stages") or {}
        self.labels = [str(x) for x in (self.manifest.get("labels") or [])]

    def has(self, name: str) -> bool:
        return self.store.exists(name)

    def summary(self, stage: str) -> dict | None:
        """The manifest's summary of ``stage`` when the stage is done, else None."""
        rec = self.stages.get(stage) or {}
        s = rec.get("summary")
        return s if isinstance(s, dict) and rec.get("status") == "done" else None

    def schema(self, name: str) -> pa.Schema:
        with self.store.fs.open_input_file(self.store.path(name)) as f:
            return pq.read_schema(f)

    def table(self, name: str, columns: Sequence[str] | None = None) -> pa.Table | None:
        """The Parquet file ``name`` (only those of ``columns`` it has), or None when it is absent."""
        if not self.has(name):
            return None
        if columns is not None:
            have = set(self.schema(name).names)
            columns = [c for c in columns if c in have]
        return self.store.read_table(name, columns=list(columns) if columns is not None else None)

    def json(self, name: str) -> Any:
        return self.store.read_json(name) if self.has(name) else None

    def png(self, name: str) -> bytes | None:
        return self.store.read_bytes(name) if self.has(name) else None

    def texts(self, ids: Sequence[str]) -> dict[str, Any]:
        """id -> text from dataset.parquet for the given ids (missing ids are absent)."""
        dataset = self.table("dataset.parquet", columns=["id", "text"])
        if dataset is None or not {"id", "text"} <= set(dataset.column_names) or not len(ids):
            return {}
        texts, found = lookup(pa.array(list(ids), pa.string()), dataset, "id", "text")
        return {i: t for i, t, v in zip(ids, texts, found) if v}

    def signals(self) -> dict:
        """The ``signals`` entry of label_quality.json (validated; empty when absent)."""
        raw = self.json("label_quality.json")
        if raw is None:
            return {}
        return dict(read_label_quality(raw).get("signals") or {})

    def missing(self, artifacts: str, stage: str) -> Html:
        """The "not run yet" note, with the stage's failure or state when the manifest has one."""
        rec = self.stages.get(stage) or {}
        status = rec.get("status")
        note = (
            f'<p class=missing><b>{NOT_RUN}</b>: {escape(artifacts)} is missing; '
            f"run <code>hardmine {escape(stage)} CONFIG</code> (or <code>hardmine run CONFIG</code>).</p>"
        )
        if status == "failed":
            note += f"<p class=error>The {escape(stage)} stage failed: {escape(str(rec.get('error', '')))}</p>"
        elif status == "running":
            note += f"<p class=muted>The {escape(stage)} stage is running (or was interrupted).</p>"
        return Html(note)

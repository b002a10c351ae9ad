"""``RunStore``: the artifacts, manifest and lock of one run directory (local path or URI).

Every artifact is written to a temporary name and renamed into place; a stage is done when its
fingerprint is unchanged and its outputs are intact (see :mod:`hardmine.store`).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hardmine.store.atomic import atomic_file, temp_name
from hardmine.store.errors import RunStoreError, RunStoreWarning
from hardmine.store.json_io import json_bytes, utc_now
from hardmine.store.lock import RunLock
from hardmine.store.manifest import MANIFEST, Manifest, versions
from hardmine.store.uri import split_uri


class RunStore:
    """Artifacts and manifest of one run directory."""

    def __init__(self, run_dir: str, log: Callable[[str], None] | None = None):
        self.uri = run_dir
        self.fs, self.root = split_uri(run_dir)
        self.fs.create_dir(self.root, recursive=True)
        self.reads: list[str] = []  # artifacts read since the last reset (recorded per stage: leakage guard)
        self.log = log  # where repairs are reported ("warning: ..."); None: warnings.warn(RunStoreWarning)
        self._noted: set[str] = set()
        self._manifest = Manifest(self)
        self._lock = RunLock(self)

    def note(self, msg: str, once: bool = True) -> None:
        """Report a repair (a damaged manifest, a stale lock): to ``log``, else as a :class:`RunStoreWarning`."""
        if once and msg in self._noted:
            return
        self._noted.add(msg)
        if self.log is not None:
            self.log(f"warning: {msg}")
        else:
            warnings.warn(msg, RunStoreWarning, stacklevel=3)

    def display(self, name: str = "") -> str:
        """How the run (or a file in it) is named in messages: as the user gave it."""
        base = self.uri.rstrip("/")
        return f"{base}/{name}" if name else base

    # ------------------------------------------------------------------ paths
    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def uri_of(self, name: str) -> str:
        """Path usable by other libraries (local path or URI)."""
        if "://" in self.uri:
            return self.uri.rstrip("/") + "/" + name
        return self.path(name)

    def exists(self, name: str) -> bool:
        return self.fs.get_file_info(self.path(name)).type != pafs.FileType.NotFound

    def delete(self, name: str) -> None:
        info = self.fs.get_file_info(self.path(name))
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(info.path)
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(info.path)

    # ------------------------------------------------------------------ atomic writes
    @contextmanager
    def atomic_path(self, name: str) -> Iterator[str]:
        """Yield a temporary path; on success it is renamed to ``name`` (file or directory)."""
        tmp = self.path(temp_name(name))
        try:
            yield tmp
            self._manifest.forget_rebuilt()
            self.delete(name)
            parent = os.path.dirname(self.path(name))
            self.fs.create_dir(parent, recursive=True)
            self.fs.move(tmp, self.path(name))
        finally:
            info = self.fs.get_file_info(tmp)
            if info.type == pafs.FileType.Directory:
                self.fs.delete_dir(tmp)
            elif info.type == pafs.FileType.File:
                self.fs.delete_file(tmp)

    @contextmanager
    def local_dir(self, name: str) -> Iterator[str]:
        """Yield a local scratch directory; on success it replaces the directory ``name`` atomically."""
        local = tempfile.mkdtemp(prefix="hardmine-out-")
        try:
            yield local
            self.put_dir(local, name)
        finally:
            shutil.rmtree(local, ignore_errors=True)

    def put_file(self, local_path: str, name: str) -> str:
        """Copy a local file into the run atomically (streamed, never loaded into memory)."""
        with self.atomic_path(name) as tmp:
            pafs.copy_files(local_path, tmp, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs)
        return self.path(name)

    def put_dir(self, local_dir: str, name: str) -> str:
        """Copy a local directory into the run atomically: it replaces the directory ``name``."""
        with self.atomic_path(name) as tmp:
            self.fs.create_dir(tmp, recursive=True)
            pafs.copy_files(local_dir, tmp, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs)
        return self.path(name)

    def is_local_fs(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def write_table(self, name: str, table: pa.Table) -> str:
        with self.atomic_path(name) as tmp:
            pq.write_table(table, tmp, filesystem=self.fs)
        return self.path(name)

    def read_table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        if not self.exists(name):
            raise FileNotFoundError(f"{self.uri_of(name)} is missing: run the stage that writes it first")
        self.reads.append(name)
        return pq.read_table(self.path(name), columns=columns, filesystem=self.fs)

    def write_bytes(self, name: str, data: bytes) -> str:
        with self.atomic_path(name) as tmp:
            with self.fs.open_output_stream(tmp) as f:
                f.write(data)
        return self.path(name)

    def read_bytes(self, name: str) -> bytes:
        if name != MANIFEST:
            self.reads.append(name)
        with self.fs.open_input_stream(self.path(name)) as f:
            return f.read()

    def write_json(self, name: str, obj: Any) -> str:
        return self.write_bytes(name, json_bytes(obj))

    def read_json(self, name: str) -> Any:
        return json.loads(self.read_bytes(name))

    # ------------------------------------------------------------------ bookkeeping files (manifest, lock)
    def read_raw(self, name: str) -> bytes | None:
        """The bytes of ``name``; None when it does not exist. Raises RunStoreError when it cannot be read."""
        info = self.fs.get_file_info(self.path(name))
        if info.type == pafs.FileType.NotFound:
            return None
        if info.type != pafs.FileType.File:
            raise RunStoreError(
                f"{self.display(name)} is not a file: delete it (the run's stages re-run; their outputs are kept)"
            )
        try:
            with self.fs.open_input_stream(self.path(name)) as f:
                return f.read()
        except OSError as e:
            raise RunStoreError(f"cannot read {self.display(name)} ({e}): fix its permissions or delete it") from e

    def write_durable(self, name: str, data: bytes) -> None:
        """Atomic replace; on a local disk the data is fsynced before the rename (no empty file after a power loss)."""
        if not self.is_local_fs():
            self.write_bytes(name, data)
            return
        with atomic_file(self.path(name), durable=True) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)

    # ------------------------------------------------------------------ manifest
    def manifest(self) -> dict:
        """The run's manifest; a damaged one is repaired in memory (see :mod:`hardmine.store.manifest`)."""
        return self._manifest.read()

    def update_manifest(self, **fields: Any) -> dict:
        m = self.manifest()
        m.update(fields)
        m["versions"] = versions()
        self._manifest.write(m)
        return m

    def stage_fingerprint(self, stage: str) -> str | None:
        return self.manifest().get("stages", {}).get(stage, {}).get("fingerprint")

    # ------------------------------------------------------------------ stage outputs
    def signature(self, name: str) -> dict | None:
        """Cheap signature of an output: {size[, rows]} for a file (rows: a Parquet file's footer),
        {files, size} for a directory; None when it does not exist. Raises ValueError for an unreadable Parquet footer."""
        name = name.rstrip("/")
        info = self.fs.get_file_info(self.path(name))
        if info.type == pafs.FileType.File:
            sig: dict[str, Any] = {"size": info.size}
            if name.endswith(".parquet"):
                sig["rows"] = self.parquet_rows(name)
            return sig
        if info.type == pafs.FileType.Directory:
            files = [i for i in self.fs.get_file_info(pafs.FileSelector(info.path, recursive=True)) if i.type == pafs.FileType.File]
            return {"files": len(files), "size": sum(i.size or 0 for i in files)}
        return None

    def parquet_rows(self, name: str) -> int:
        """Row count from the Parquet footer (no data read). ValueError when the footer is unreadable (truncated file)."""
        try:
            with self.fs.open_input_file(self.path(name)) as f:
                return pq.ParquetFile(f).metadata.num_rows
        except (pa.ArrowException, OSError) as e:
            raise ValueError(f"{name} is not a readable Parquet file ({type(e).__name__}: {e})") from e

    def signatures(self, outputs: list[str]) -> dict[str, dict]:
        """Signatures of the outputs that exist and are readable (recorded by :meth:`mark` at completion)."""
        out = {}
        for o in outputs:
            try:
                sig = self.signature(o)
            except ValueError:
                continue
            if sig is not None:
                out[o] = sig
        return out

    def why_not_done(self, stage: str, fingerprint: str, outputs: list[str]) -> str | None:
        """None when the stage is up to date; else why not (never recorded, other fingerprint, an output damaged)."""
        rec = self.manifest().get("stages", {}).get(stage) or {}
        if not rec:
            return "not run yet"
        if rec.get("status") != "done":
            return f"last recorded as {rec.get('status')!r}"
        if rec.get("fingerprint") != fingerprint:
            return "its config or inputs changed"
        return self.output_problem(rec, outputs)

    def output_problem(self, rec: dict, outputs: list[str]) -> str | None:
        """What is wrong with a done stage's outputs (missing, empty directory, unreadable or changed Parquet), or None."""
        rows = rec.get("rows") or {}
        sigs = rec.get("signatures") or {}
        for o in outputs:
            try:
                sig = self.signature(o)
            except ValueError as e:
                return str(e)
            if sig is None:
                return f"{o} is missing"
            if "files" in sig and sig["files"] == 0:
                return f"{o.rstrip('/')}/ is empty"
            if isinstance(rows.get(o), int) and sig.get("rows") != rows[o]:
                return f"{o} has {sig.get('rows')} rows, {rows[o]} when the stage completed"
            want = sigs.get(o)
            if isinstance(want, dict):
                for k in ("rows", "files", "size"):
                    if k in want and sig.get(k) != want[k]:
                        return f"{o} changed since the stage completed ({k} {sig.get(k)}, was {want[k]})"
        return None

    def is_done(self, stage: str, fingerprint: str, outputs: list[str]) -> bool:
        return self.why_not_done(stage, fingerprint, outputs) is None

    def mark(self, stage: str, status: str, **info: Any) -> None:
        """Record a stage's status. ``status="done"`` with ``outputs=[...]`` also records their signatures."""
        m = self.manifest()
        if status == "done" and info.get("outputs") and "signatures" not in info:
            info["signatures"] = self.signatures(list(info["outputs"]))
        rec = m.setdefault("stages", {}).setdefault(stage, {})
        if status != "done":
            rec.pop("signatures", None)
        rec.update(info)
        rec["status"] = status
        rec["updated"] = utc_now()
        m["versions"] = versions()
        self._manifest.write(m)

    # ------------------------------------------------------------------ lock
    def lock_holder(self) -> dict | None:
        """The JSON of ``<run>/.lock`` ({pid, host, started, command}), {} when unreadable, None when unlocked."""
        return self._lock.holder()

    def holds_lock(self) -> bool:
        """Whether this process holds the run's lock."""
        return self._lock.held()

    @contextmanager
    def lock(self, command: str | None = None) -> Iterator["RunStore"]:
        """Hold ``<run>/.lock`` for the block: re-entrant in this process, released on exit (exceptions too).

        Raises :class:`RunLockedError` when another live process holds it. ``command``: what is
        recorded as using the run (default: this process's command line).
        """
        with self._lock.hold(command):
            yield self

"""Run directory: stage artifacts, manifest, atomic writes, resume.

A run lives at ``<run_root>/<name>/`` — a local path or any URI pyarrow's filesystem layer
understands (``s3://``, ``gs://``, ``file://``). Each stage writes its outputs to a temporary
name and renames them into place, then records itself in ``manifest.json`` with a fingerprint
of its config and inputs. A re-run skips a stage whose fingerprint is unchanged and whose
outputs exist; anything missing or stale is recomputed.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

MANIFEST = "manifest.json"


def split_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) for a local path or a URI."""
    if "://" in uri:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def fingerprint_bytes(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:16]


def fingerprint_path(path: str) -> str:
    """Content hash of a file, or of every file under a directory (names + bytes)."""
    fs, p = split_uri(path)
    info = fs.get_file_info(p)
    h = hashlib.sha256()
    if info.type == pafs.FileType.Directory:
        files = sorted(
            (i for i in fs.get_file_info(pafs.FileSelector(p, recursive=True)) if i.type == pafs.FileType.File),
            key=lambda i: i.path,
        )
    elif info.type == pafs.FileType.File:
        files = [info]
    else:
        raise FileNotFoundError(f"{path!r} does not exist")
    for f in files:
        h.update(os.path.relpath(f.path, p).encode())
        with fs.open_input_stream(f.path) as s:
            while chunk := s.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:16]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("hardmine", "ray", "torch", "transformers", "cleanlab", "pyarrow"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional module is just not recorded
            pass
    return out


class RunStore:
    """Artifacts and manifest of one run directory."""

    def __init__(self, run_dir: str):
        self.uri = run_dir
        self.fs, self.root = split_uri(run_dir)
        self.fs.create_dir(self.root, recursive=True)
        self.reads: list[str] = []  # artifacts read since the last reset (recorded per stage: leakage guard)

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
        tmp = self.path(f".tmp-{uuid.uuid4().hex[:8]}-{name.replace('/', '_')}")
        try:
            yield tmp
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
        import shutil
        import tempfile

        local = tempfile.mkdtemp(prefix="hardmine-out-")
        try:
            yield local
            with self.atomic_path(name) as tmp:
                self.fs.create_dir(tmp, recursive=True)
                pafs.copy_files(local, tmp, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs)
        finally:
            shutil.rmtree(local, ignore_errors=True)

    def put_file(self, local_path: str, name: str) -> str:
        """Copy a local file into the run atomically (streamed, never loaded into memory)."""
        with self.atomic_path(name) as tmp:
            pafs.copy_files(local_path, tmp, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs)
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
        return self.write_bytes(name, json.dumps(obj, indent=2, sort_keys=True, default=_json_default).encode())

    def read_json(self, name: str) -> Any:
        return json.loads(self.read_bytes(name))

    # ------------------------------------------------------------------ manifest
    def manifest(self) -> dict:
        if not self.exists(MANIFEST):
            return {"stages": {}}
        return self.read_json(MANIFEST)

    def update_manifest(self, **fields: Any) -> dict:
        m = self.manifest()
        m.update(fields)
        m["versions"] = versions()
        self.write_json(MANIFEST, m)
        return m

    def stage_fingerprint(self, stage: str) -> str | None:
        return self.manifest().get("stages", {}).get(stage, {}).get("fingerprint")

    def is_done(self, stage: str, fingerprint: str, outputs: list[str]) -> bool:
        rec = self.manifest().get("stages", {}).get(stage, {})
        return (
            rec.get("status") == "done"
            and rec.get("fingerprint") == fingerprint
            and all(self.exists(o) for o in outputs)
        )

    def mark(self, stage: str, status: str, **info: Any) -> None:
        m = self.manifest()
        rec = m.setdefault("stages", {}).setdefault(stage, {})
        rec.update(info)
        rec["status"] = status
        rec["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        m["versions"] = versions()
        self.write_json(MANIFEST, m)


def _json_default(o: Any):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, io.IOBase):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")

"""Run directory: stage artifacts, manifest, atomic writes, resume, and the run lock.

A run lives at ``<run_root>/<name>/`` — a local path or any URI pyarrow's filesystem layer
understands (``s3://``, ``gs://``, ``file://``). Each stage writes its outputs to a temporary
name and renames them into place, then records itself in ``manifest.json`` with a fingerprint
of its config and inputs. A re-run skips a stage whose fingerprint is unchanged and whose
outputs are intact; anything missing, damaged or stale is recomputed.

The run store repairs itself
----------------------------
* **Manifest.** ``manifest.json`` is replaced atomically (write to a temporary name, fsync on a
  local disk, rename). Before each write, the current manifest, if it parses, is copied to
  ``manifest.json.bak``: the backup is always the previous good version. Reading a manifest that
  is empty, truncated, not JSON or not a JSON object never raises ``JSONDecodeError``:

  1. the backup is used when it is valid (a warning says so, once per store);
  2. otherwise a minimal manifest is rebuilt from the artifacts present: **no stage is
     considered done** (every stage re-runs), but the facts that can be recovered are kept:
     ``labels`` (from ``dataset.parquet``'s ``label``/``label_name`` columns) and
     ``dataset_version`` (the newest ``review/versions/v<N>.parquet``). The record says
     ``rebuilt: {at, reason}``.

  A *missing* manifest with a valid backup uses the backup; with neither, the run starts afresh
  (``{"stages": {}}``, as for a new run: deleting ``manifest.json`` and its backup is how to
  reset a run's bookkeeping while keeping its artifacts). Nothing is written while reading: the
  next write replaces the damaged file and keeps it as ``manifest.json.corrupt`` for inspection
  (it never overwrites a good backup). When even a rebuild is impossible (``manifest.json`` is a
  directory or cannot be read at all, or the rebuild itself fails), :class:`RunStoreError`
  names the file to delete.
* **Stage outputs.** An output may be a file or a directory. :meth:`RunStore.is_done` checks that
  every output exists, that directories are not empty, that a Parquet output's footer is readable
  and its row count equals the one recorded at completion, and that the cheap signature recorded
  by :meth:`RunStore.mark` (``status="done"`` with ``outputs=...``) still matches: the byte size
  of a file (plus rows for Parquet), file count and total bytes of a directory. Modification
  times are deliberately not part of it, so a run directory copied or synced elsewhere
  (``cp -r``, ``aws s3 sync``) still resumes. :meth:`RunStore.why_not_done` says why a stage is
  not up to date.
* **Lock.** :meth:`RunStore.lock` holds ``<run>/.lock`` (JSON: ``pid``, ``host``, ``started``,
  ``command``) for as long as one process uses the run; a second process gets
  :class:`RunLockedError` saying who holds it and which file to delete if that process is gone.
  On a local disk (``file://`` included) the lock is created atomically (``O_CREAT|O_EXCL``); a
  lock left by a process that no longer runs on this host (or whose pid now belongs to another
  process) is taken over with a note. On object stores (``s3://``, ``gs://``) there is no atomic
  create-if-absent in pyarrow's filesystem layer: the lock is best effort (check, write, read
  back), and a lock held from another host can not be checked for staleness. The lock is
  re-entrant within a process and released on exit, exceptions included.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import socket
import sys
import threading
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
MANIFEST_BAK = "manifest.json.bak"
MANIFEST_CORRUPT = "manifest.json.corrupt"
LOCK = ".lock"


class RunStoreError(ValueError):
    """A run directory's bookkeeping is unusable; the message says which file to delete or fix."""


class RunLockedError(RunStoreError):
    """Another process holds the run's lock (``<run>/.lock``).

    ``holder``: the lock's JSON (pid, host, started, command), or None when it is unreadable;
    ``lock_path``: the lock file to delete if that process is gone.
    """

    def __init__(self, message: str, holder: dict | None = None, lock_path: str | None = None):
        super().__init__(message)
        self.holder = holder
        self.lock_path = lock_path


class RunStoreWarning(UserWarning):
    """A run store repaired itself (damaged manifest, stale lock): emitted when the store has no ``log``."""


# locks held by this process: lock key -> [count, token] (re-entrant, threads included)
_HELD: dict[str, list] = {}
_HELD_GUARD = threading.Lock()


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

    def __init__(self, run_dir: str, log: Callable[[str], None] | None = None):
        self.uri = run_dir
        self.fs, self.root = split_uri(run_dir)
        self.fs.create_dir(self.root, recursive=True)
        self.reads: list[str] = []  # artifacts read since the last reset (recorded per stage: leakage guard)
        self.log = log  # where repairs are reported ("warning: ..."); None: warnings.warn(RunStoreWarning)
        self._noted: set[str] = set()
        self._rebuilt_cache: tuple[Any, dict] | None = None

    def _note(self, msg: str, once: bool = True) -> None:
        if once and msg in self._noted:
            return
        self._noted.add(msg)
        if self.log is not None:
            self.log(f"warning: {msg}")
        else:
            warnings.warn(msg, RunStoreWarning, stacklevel=3)

    def _display(self, name: str = "") -> str:
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
        tmp = self.path(f".tmp-{uuid.uuid4().hex[:8]}-{name.replace('/', '_')}")
        try:
            yield tmp
            self._rebuilt_cache = None  # artifacts changed: a manifest rebuilt from them is stale
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
    def _read_raw(self, name: str) -> bytes | None:
        """The bytes of ``name``; None when it does not exist. Raises RunStoreError when it cannot be read."""
        info = self.fs.get_file_info(self.path(name))
        if info.type == pafs.FileType.NotFound:
            return None
        if info.type != pafs.FileType.File:
            raise RunStoreError(
                f"{self._display(name)} is not a file: delete it (the run's stages re-run; their outputs are kept)"
            )
        try:
            with self.fs.open_input_stream(self.path(name)) as f:
                return f.read()
        except OSError as e:
            raise RunStoreError(f"cannot read {self._display(name)} ({e}): fix its permissions or delete it") from e

    @staticmethod
    def _parse_manifest(raw: bytes | None) -> tuple[dict | None, str]:
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

    def manifest(self) -> dict:
        raw = self._read_raw(MANIFEST)
        m, why = self._parse_manifest(raw)
        if m is not None:
            return m
        try:
            bak_raw = self._read_raw(MANIFEST_BAK)
        except RunStoreError:
            bak_raw = None
        bak, bak_why = self._parse_manifest(bak_raw)
        if bak is not None:
            if raw is not None:
                self._note(f"{self._display(MANIFEST)} is damaged ({why}): using {MANIFEST_BAK}, the previous good version "
                           f"(written {bak.get('written', 'at an unknown time')}); stages it does not record as done re-run")
            else:
                self._note(f"{self._display(MANIFEST)} is missing: using {MANIFEST_BAK}, the previous good version")
            return bak
        if raw is None:
            return {"stages": {}}  # a new run (or its manifest deleted on purpose: every stage re-runs)
        key = (raw, bak_raw)
        if self._rebuilt_cache is not None and self._rebuilt_cache[0] == key:
            return json.loads(json.dumps(self._rebuilt_cache[1]))
        reason = f"{MANIFEST} {why}; {MANIFEST_BAK} {bak_why}"
        try:
            rebuilt = self._rebuild_manifest(reason)
        except Exception as e:  # noqa: BLE001 - any failure to rebuild is reported as one clear error
            raise RunStoreError(
                f"{self._display(MANIFEST)} is unusable ({why}), so is {MANIFEST_BAK} ({bak_why}), and rebuilding it from the "
                f"artifacts failed ({type(e).__name__}: {e}): delete {self._display(MANIFEST)} and {self._display(MANIFEST_BAK)} "
                "(every stage re-runs; human review versions under review/ are kept)"
            ) from e
        recovered = ", ".join(k for k in ("labels", "dataset_version") if k in rebuilt) or "nothing"
        self._note(f"{self._display(MANIFEST)} is unusable ({why}) and so is its backup ({bak_why}): rebuilt a minimal "
                   f"manifest from the artifacts (recovered: {recovered}); every stage re-runs")
        self._rebuilt_cache = (key, rebuilt)
        return json.loads(json.dumps(rebuilt))

    def _rebuild_manifest(self, reason: str) -> dict:
        """A minimal manifest from the artifacts present: no stage done; labels and dataset_version when recoverable."""
        m: dict[str, Any] = {"stages": {}, "rebuilt": {"at": _now(), "reason": reason}}
        labels = self._labels_from("dataset.parquet")
        if labels:
            m["labels"] = labels
        versions_dir = self.path("review/versions")
        if self.fs.get_file_info(versions_dir).type == pafs.FileType.Directory:
            found = [int(g.group(1)) for i in self.fs.get_file_info(pafs.FileSelector(versions_dir))
                     if i.type == pafs.FileType.File and (g := re.fullmatch(r"v(\d+)\.parquet", i.base_name))]
            if found:
                m["dataset_version"] = max(found)
        return m

    def _labels_from(self, name: str) -> list[str] | None:
        """The label names, index = label id, from a canonical table's label/label_name columns (None if not recoverable)."""
        try:
            t = pq.read_table(self.path(name), columns=["label", "label_name"], filesystem=self.fs)
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

    def _write_manifest(self, m: dict) -> None:
        """Back up the current manifest if it is good (else keep it aside as .corrupt), then replace it atomically."""
        try:
            raw = self._read_raw(MANIFEST)
        except RunStoreError:
            raw = None
        if raw is not None:
            good, _ = self._parse_manifest(raw)
            self._write_durable(MANIFEST_CORRUPT if good is None else MANIFEST_BAK, raw)
        m["written"] = _now()
        self._write_durable(MANIFEST, json.dumps(m, indent=2, sort_keys=True, default=_json_default).encode())
        self._rebuilt_cache = None

    def _write_durable(self, name: str, data: bytes) -> None:
        """Atomic replace; on a local disk the data is fsynced before the rename (no empty file after a power loss)."""
        if not self.is_local_fs():
            self.write_bytes(name, data)
            return
        final = self.path(name)
        tmp = self.path(f".tmp-{uuid.uuid4().hex[:8]}-{name}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        try:  # the rename itself, best effort
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass

    def update_manifest(self, **fields: Any) -> dict:
        m = self.manifest()
        m.update(fields)
        m["versions"] = versions()
        self._write_manifest(m)
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
        rec["updated"] = _now()
        m["versions"] = versions()
        self._write_manifest(m)

    # ------------------------------------------------------------------ lock
    def _lock_key(self) -> str:
        return f"{type(self.fs).__name__}:{self.path(LOCK)}"

    def lock_holder(self) -> dict | None:
        """The JSON of ``<run>/.lock`` ({pid, host, started, command}), {} when unreadable, None when unlocked."""
        try:
            raw = self._read_raw(LOCK)
        except RunStoreError:
            return {}
        if raw is None:
            return None
        return _parse_lock(raw) or {}

    def holds_lock(self) -> bool:
        """Whether this process holds the run's lock."""
        with _HELD_GUARD:
            return self._lock_key() in _HELD

    @contextmanager
    def lock(self, command: str | None = None) -> Iterator["RunStore"]:
        """Hold ``<run>/.lock`` for the block: re-entrant in this process, released on exit (exceptions too).

        Raises :class:`RunLockedError` when another live process holds it. ``command``: what is
        recorded as using the run (default: this process's command line).
        """
        key = self._lock_key()
        with _HELD_GUARD:  # acquired under the guard: threads of this process never race each other for the file
            if key in _HELD:
                _HELD[key][0] += 1
            else:
                _HELD[key] = [1, self._acquire_lock(command)]
        try:
            yield self
        finally:
            with _HELD_GUARD:
                held = _HELD[key]
                held[0] -= 1
                if held[0] == 0:
                    del _HELD[key]
                    self._release_lock(held[1])

    def _lock_record(self, command: str | None) -> dict:
        rec = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _now(),
            "command": (command if command is not None else " ".join([os.path.basename(sys.executable), *sys.argv]))[:500],
            "token": uuid.uuid4().hex,
        }
        created = _process_started(os.getpid())
        if created is not None:
            rec["pid_started"] = created
        return rec

    def _locked_error(self, holder: dict | None, why: str | None = None) -> RunLockedError:
        path = self._display(LOCK)
        if not holder:
            return RunLockedError(
                f"run {self._display()} is locked: {path} exists but cannot be read ({why or 'not JSON'}). If no other hardmine "
                f"process uses this run, delete {path}", holder, path,
            )
        return RunLockedError(
            f"run {self._display()} is in use by pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('started')} "
            f"(command: {holder.get('command')}). Wait for it to finish, or if that process is gone, delete {path}",
            holder, path,
        )

    def _acquire_lock(self, command: str | None) -> str:
        rec = self._lock_record(command)
        data = json.dumps(rec, indent=2).encode()
        if not self.is_local_fs():
            return self._acquire_lock_remote(rec, data)
        path = self.path(LOCK)
        deadline = time.time() + 5.0
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pass
            else:
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                return rec["token"]
            try:
                with open(path, "rb") as f:
                    raw = f.read()
                age = time.time() - os.stat(path).st_mtime
            except FileNotFoundError:
                continue  # released meanwhile: try again
            holder = _parse_lock(raw)
            if holder is None and age < 2.0 and time.time() < deadline:
                time.sleep(0.05)  # being written by its owner this instant
                continue
            stale = _stale_reason(holder, age)
            if stale is None:
                raise self._locked_error(holder)
            if self._take_over_local(path, raw):
                self._note(f"took over the lock of run {self._display()} ({_describe(holder)}): {stale}", once=False)
            if time.time() > deadline:
                raise self._locked_error(_parse_lock(raw), "could not replace the stale lock")

    def _take_over_local(self, path: str, raw: bytes) -> bool:
        """Move the stale lock aside; True when what was moved is the one judged stale (a racer's fresh lock is put back)."""
        aside = f"{path}.stale-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        with open(aside, "rb") as f:
            moved = f.read()
        if moved == raw:
            os.unlink(aside)
            return True
        try:  # another process replaced the stale lock first: give its lock back
            os.link(aside, path)
        except OSError:
            pass
        os.unlink(aside)
        return False

    def _acquire_lock_remote(self, rec: dict, data: bytes) -> str:
        """Best effort on object stores: no atomic create-if-absent, so check, write, read back."""
        raw = self._read_raw(LOCK)
        if raw is not None:
            holder = _parse_lock(raw)
            stale = _stale_reason(holder, age=None)
            if stale is None:
                raise self._locked_error(holder)
            self._note(f"took over the lock of run {self._display()} ({_describe(holder)}): {stale}", once=False)
        self.write_bytes(LOCK, data)
        back = _parse_lock(self._read_raw(LOCK) or b"")
        if not back or back.get("token") != rec["token"]:
            raise self._locked_error(back)
        return rec["token"]

    def _release_lock(self, token: str) -> None:
        try:
            raw = self._read_raw(LOCK)
        except RunStoreError:
            raw = None
        holder = _parse_lock(raw) if raw is not None else None
        if holder is None or holder.get("token") != token:
            self._note(f"the lock of run {self._display()} was removed or taken by another process while this one held it: "
                       "left as it is", once=False)
            return
        try:
            if self.is_local_fs():
                os.unlink(self.path(LOCK))
            else:
                self.fs.delete_file(self.path(LOCK))
        except (FileNotFoundError, OSError):
            pass


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _parse_lock(raw: bytes) -> dict | None:
    try:
        rec = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("pid"), int) and rec.get("host") else None


def _describe(holder: dict | None) -> str:
    if not holder:
        return "unreadable lock file"
    return f"pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('started')}, command: {holder.get('command')}"


def _process_started(pid: int) -> float | None:
    try:
        import psutil

        return round(psutil.Process(pid).create_time(), 2)
    except Exception:  # noqa: BLE001 - psutil missing or the process gone
        return None


def _stale_reason(holder: dict | None, age: float | None) -> str | None:
    """Why a lock is stale (its process is gone), or None when it may be alive (or cannot be checked)."""
    if holder is None:
        if age is not None and age >= 2.0:
            return f"the lock file is unreadable and {age:.0f}s old (its writer died while writing it)"
        return None
    if holder.get("host") != socket.gethostname():
        return None  # another machine's process: cannot check it from here
    pid = holder["pid"]
    if pid == os.getpid():
        return "left by this process, which no longer holds it"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"pid {pid} is no longer running"
    except PermissionError:
        pass  # alive, another user's
    except OSError:
        return None
    try:
        import psutil
    except ImportError:
        return None
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return f"pid {pid} has exited"
        started = holder.get("pid_started")
        if isinstance(started, (int, float)) and abs(p.create_time() - started) > 1.0:
            return f"pid {pid} now belongs to another process"
    except psutil.NoSuchProcess:
        return f"pid {pid} is no longer running"
    except psutil.Error:
        pass  # e.g. access denied: alive
    return None


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

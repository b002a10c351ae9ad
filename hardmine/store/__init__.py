"""The run store: stage artifacts, manifest, atomic writes, resume, and the run lock of a run directory.

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

Modules: :mod:`.run_store` (:class:`RunStore`), :mod:`.manifest` (read, backup, repair),
:mod:`.lock` (the run lock), :mod:`.atomic` (:func:`atomic_file`, atomic replacement of a plain
local file), :mod:`.fingerprint`, :mod:`.uri` (paths and URIs as pyarrow filesystems),
:mod:`.json_io` (JSON encoding), :mod:`.errors`.
"""
from hardmine.store.atomic import atomic_file
from hardmine.store.errors import RunLockedError, RunStoreError, RunStoreWarning
from hardmine.store.fingerprint import fingerprint_bytes, fingerprint_path
from hardmine.store.json_io import json_default
from hardmine.store.lock import LOCK
from hardmine.store.manifest import MANIFEST, MANIFEST_BAK, MANIFEST_CORRUPT
from hardmine.store.run_store import RunStore
from hardmine.store.uri import is_local, split_uri

__all__ = [
    "LOCK",
    "MANIFEST",
    "MANIFEST_BAK",
    "MANIFEST_CORRUPT",
    "RunLockedError",
    "RunStore",
    "RunStoreError",
    "RunStoreWarning",
    "atomic_file",
    "fingerprint_bytes",
    "fingerprint_path",
    "is_local",
    "json_default",
    "split_uri",
]

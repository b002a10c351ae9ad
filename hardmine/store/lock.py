"""The run lock: ``<run>/.lock`` held by one process at a time.

The lock's JSON says who holds it (``pid``, ``host``, ``started``, ``command``); a second process
gets :class:`~hardmine.store.RunLockedError` naming the file to delete if that process is gone.
On a local disk (``file://`` included) it is created atomically (``O_CREAT|O_EXCL``) and a lock
left by a process that no longer runs on this host is taken over with a note; on object stores
it is best effort (check, write, read back). Re-entrant within a process, released on exit.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from hardmine.store.errors import RunLockedError, RunStoreError
from hardmine.store.json_io import utc_now

if TYPE_CHECKING:
    from hardmine.store.run_store import RunStore

LOCK = ".lock"

# locks held by this process: lock key -> [count, token] (re-entrant, threads included)
_HELD: dict[str, list] = {}
_HELD_GUARD = threading.Lock()


class RunLock:
    """The lock of one run store."""

    def __init__(self, store: "RunStore"):
        self.store = store

    def _key(self) -> str:
        return f"{type(self.store.fs).__name__}:{self.store.path(LOCK)}"

    def holder(self) -> dict | None:
        """The JSON of ``<run>/.lock`` ({pid, host, started, command}), {} when unreadable, None when unlocked."""
        try:
            raw = self.store.read_raw(LOCK)
        except RunStoreError:
            return {}
        if raw is None:
            return None
        return _parse_lock(raw) or {}

    def held(self) -> bool:
        """Whether this process holds the run's lock."""
        with _HELD_GUARD:
            return self._key() in _HELD

    @contextmanager
    def hold(self, command: str | None = None) -> Iterator[None]:
        """Hold ``<run>/.lock`` for the block: re-entrant in this process, released on exit (exceptions too).

        Raises :class:`RunLockedError` when another live process holds it. ``command``: what is
        recorded as using the run (default: this process's command line).
        """
        key = self._key()
        with _HELD_GUARD:  # acquired under the guard: threads of this process never race each other for the file
            if key in _HELD:
                _HELD[key][0] += 1
            else:
                _HELD[key] = [1, self._acquire(command)]
        try:
            yield
        finally:
            with _HELD_GUARD:
                held = _HELD[key]
                held[0] -= 1
                if held[0] == 0:
                    del _HELD[key]
                    self._release(held[1])

    def _record(self, command: str | None) -> dict:
        rec = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": utc_now(),
            "command": (command if command is not None else " ".join([os.path.basename(sys.executable), *sys.argv]))[:500],
            "token": uuid.uuid4().hex,
        }
        created = _process_started(os.getpid())
        if created is not None:
            rec["pid_started"] = created
        return rec

    def _locked_error(self, holder: dict | None, why: str | None = None) -> RunLockedError:
        path = self.store.display(LOCK)
        if not holder:
            return RunLockedError(
                f"run {self.store.display()} is locked: {path} exists but cannot be read ({why or 'not JSON'}). If no other hardmine "
                f"process uses this run, delete {path}", holder, path,
            )
        return RunLockedError(
            f"run {self.store.display()} is in use by pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('started')} "
            f"(command: {holder.get('command')}). Wait for it to finish, or if that process is gone, delete {path}",
            holder, path,
        )

    def _acquire(self, command: str | None) -> str:
        rec = self._record(command)
        data = json.dumps(rec, indent=2).encode()
        if not self.store.is_local_fs():
            return self._acquire_remote(rec, data)
        path = self.store.path(LOCK)
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
                self.store.note(f"took over the lock of run {self.store.display()} ({_describe(holder)}): {stale}", once=False)
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

    def _acquire_remote(self, rec: dict, data: bytes) -> str:
        """Best effort on object stores: no atomic create-if-absent, so check, write, read back."""
        raw = self.store.read_raw(LOCK)
        if raw is not None:
            holder = _parse_lock(raw)
            stale = _stale_reason(holder, age=None)
            if stale is None:
                raise self._locked_error(holder)
            self.store.note(f"took over the lock of run {self.store.display()} ({_describe(holder)}): {stale}", once=False)
        self.store.write_bytes(LOCK, data)
        back = _parse_lock(self.store.read_raw(LOCK) or b"")
        if not back or back.get("token") != rec["token"]:
            raise self._locked_error(back)
        return rec["token"]

    def _release(self, token: str) -> None:
        try:
            raw = self.store.read_raw(LOCK)
        except RunStoreError:
            raw = None
        holder = _parse_lock(raw) if raw is not None else None
        if holder is None or holder.get("token") != token:
            self.store.note(f"the lock of run {self.store.display()} was removed or taken by another process while this one held it: "
                            "left as it is", once=False)
            return
        try:
            if self.store.is_local_fs():
                os.unlink(self.store.path(LOCK))
            else:
                self.store.fs.delete_file(self.store.path(LOCK))
        except (FileNotFoundError, OSError):
            pass


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

"""What a person sees: a few lines per stage on the console, everything in ``RUN/logs/``.

One console per process. The command line configures it once (:func:`setup`); library code
writes through :func:`say` (a line the user should read), :func:`detail` (tables and
diagnostics: the log file always, the console only with ``-v``) and :func:`progress` (a bar
for long work, shown on a terminal only). Ray's, Ray Data's, transformers' and Python's
warnings go to ``logs/hardmine.log`` instead of the console; repeated warnings are counted and
summarised once at the end (:func:`warning_summary`).
"""
from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

# loggers of the libraries hardmine drives: their console handlers are silenced unless -v
LIBRARY_LOGGERS = (
    "ray", "ray.data", "ray.train", "ray.tune", "ray.serve", "ray.llm", "ray.air",
    "transformers", "sentence_transformers", "torch", "datasets", "filelock", "urllib3", "vllm",
    "py.warnings", "sklearn", "cleanlab",
)
# environment for this process and Ray's workers: no library progress bars or banners on the console
QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "RAY_DEDUP_LOGS": "1",
    "TQDM_DISABLE": "1",  # library tqdm bars inside Ray workers (hardmine's own bars are made here, on the driver)
}


class _WarningCounter(logging.Handler):
    """Counts library warnings by message (first line) so the console can summarise them once."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage().strip().splitlines()[0][:160] if record.getMessage().strip() else record.name
        except Exception:  # noqa: BLE001 - a malformed record must never break the run
            msg = record.name
        self.counts[msg] += 1


class _CaptureBuffer(io.TextIOBase):
    """What :meth:`Console.captured` puts in place of ``sys.stdout`` / ``sys.stderr``: writes from any thread are
    kept in order until drained into the log."""

    def __init__(self):
        super().__init__()
        self._parts: list[str] = []
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        with self._lock:
            self._parts.append(s)
        return len(s)

    def drain(self) -> str:
        with self._lock:
            text, self._parts = "".join(self._parts), []
        return text


class Console:
    def __init__(self, verbose: bool = False, stream=None):
        self.verbose = verbose
        self.stream = stream
        self.log_path: str | None = None
        self._file: logging.Handler | None = None
        self._counter = _WarningCounter()
        self._logger = logging.getLogger("hardmine")
        self._logger.propagate = False
        self._logger.setLevel(logging.DEBUG)
        self._capture_lock = threading.Lock()
        self._capture_depth = 0
        self._capture_saved: tuple | None = None
        self._capture_buf: _CaptureBuffer | None = None

    # --------------------------------------------------------------- writing
    def _out(self):
        return self.stream or sys.stdout

    def say(self, msg: str = "") -> None:
        print(msg, file=self._out(), flush=True)
        self._logger.info(msg)

    def detail(self, msg: str) -> None:
        if self.verbose:
            print(msg, file=self._out(), flush=True)
        self._logger.info(msg)

    # --------------------------------------------------------------- log files
    def attach(self, log_dir: str) -> str:
        """Send hardmine's own lines and the libraries' logs to ``log_dir/hardmine.log``."""
        os.makedirs(log_dir, exist_ok=True)
        path = os.path.join(log_dir, "hardmine.log")
        if self.log_path == path:
            return path
        self.detach()
        fh = logging.FileHandler(path, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh.setLevel(logging.DEBUG)
        self._file, self.log_path = fh, path
        self._logger.addHandler(fh)
        self.quiet_libraries()
        return path

    def detach(self) -> None:
        if self._file is not None:
            for name in ("hardmine", *LIBRARY_LOGGERS):
                logging.getLogger(name).removeHandler(self._file)
            self._file.close()
            self._file, self.log_path = None, None

    def quiet_libraries(self) -> None:
        """Libraries' console handlers off (unless -v), their records to the log file and the counter.

        Called again after ``ray.init`` and after ``ray.data`` is imported: both install their own handlers.
        """
        logging.captureWarnings(True)
        for name in LIBRARY_LOGGERS:
            lg = logging.getLogger(name)
            for h in lg.handlers:
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) and not self.verbose:
                    h.setLevel(logging.CRITICAL + 1)
            if self._file is not None and self._file not in lg.handlers:
                lg.addHandler(self._file)
            if self._counter not in lg.handlers:
                lg.addHandler(self._counter)
            if not self.verbose:
                lg.propagate = False  # never to the root logger's console handler

    # --------------------------------------------------------------- progress
    @contextmanager
    def progress(self, total: int | None, desc: str, unit: str = "it") -> Iterator:
        """A tqdm bar on a terminal (stderr), nothing otherwise; yields an object with ``update(n)``."""
        from tqdm.auto import tqdm

        show = bool(desc) and (sys.stderr.isatty() or os.environ.get("HARDMINE_PROGRESS") == "1")
        bar = tqdm(total=total, desc=desc, unit=unit, disable=not show, leave=False, file=sys.stderr, dynamic_ncols=True)
        try:
            yield bar
        finally:
            bar.close()

    @contextmanager
    def captured(self, what: str) -> Iterator[None]:
        """Send a library's direct prints (Tune's banner and trial tables, Train's reports) to the log file.

        Python-level only (``sys.stdout`` / ``sys.stderr``); with ``-v`` nothing is redirected. Blocks may overlap
        in threads (the fold and retrain trainers are fitted from driver threads, two or more at once): the streams
        are process-wide, so the first block to enter redirects them, the last to leave restores them, and each
        block writes what was captured to the log as it leaves. (Nested ``contextlib.redirect_stdout`` blocks left
        in another order than entered restore a stale stream: the console then wrote into a buffer nobody read.)
        """
        if self.verbose:
            yield
            return
        with self._capture_lock:
            if self._capture_depth == 0:
                self._capture_saved = (sys.stdout, sys.stderr)
                self._capture_buf = _CaptureBuffer()
                sys.stdout = sys.stderr = self._capture_buf
            self._capture_depth += 1
            buf = self._capture_buf
        try:
            yield
        finally:
            with self._capture_lock:
                text = buf.drain().strip()
                self._capture_depth -= 1
                if self._capture_depth == 0:
                    sys.stdout, sys.stderr = self._capture_saved
                    self._capture_saved = self._capture_buf = None
            if text:
                self._logger.info(f"[{what}] output:\n{text}")

    # --------------------------------------------------------------- summary
    def warning_summary(self) -> str | None:
        """One line for the library warnings of this run (None when there were none)."""
        c = self._counter.counts
        if not c:
            return None
        n, distinct = sum(c.values()), len(c)
        where = f" (see {self.log_path})" if self.log_path else ""
        top, times = c.most_common(1)[0]
        return (f"{n} library warning(s), {distinct} distinct{where}; most frequent ({times}x): {top}")

    def reset_counts(self) -> None:
        self._counter.counts.clear()


CONSOLE = Console()


def setup(verbose: bool = False, stream=None) -> Console:
    """Configure the process's console (the command line calls this once, before anything else)."""
    for k, v in QUIET_ENV.items():
        if not (verbose and k == "TQDM_DISABLE"):
            os.environ.setdefault(k, v)
    CONSOLE.verbose = verbose
    CONSOLE.stream = stream
    CONSOLE.reset_counts()  # one command, one warning summary (several commands may run in one process)
    CONSOLE.quiet_libraries()
    return CONSOLE


def say(msg: str = "") -> None:
    CONSOLE.say(msg)


def detail(msg: str) -> None:
    CONSOLE.detail(msg)


def progress(total: int | None, desc: str, unit: str = "it"):
    return CONSOLE.progress(total, desc, unit)


def captured(what: str):
    return CONSOLE.captured(what)


def verbose() -> bool:
    return CONSOLE.verbose

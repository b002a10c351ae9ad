"""Test-only fault injection, in one place: production code calls these hooks by name, and they do
nothing unless a test asked for a crash (``oof.fault`` in the config, or a marker path in an
augmentation generator's spec). Each crash happens once: its marker file records it, so the
retried worker runs normally -- which is what the fault tests check (a re-run resumes)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def crash_once(marker: str | os.PathLike | None, message: str, code: int = 17) -> None:
    """Kill this process (``os._exit(code)``) unless ``marker`` is None or exists; write it first."""
    if not marker:
        return
    path = Path(marker)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(message + "\n")
    os._exit(code)


def fold_fault(cfg: dict[str, Any], epoch: int, step: int, n_steps: int) -> None:
    """The fold loop's hook: ``cfg["fault"]`` = {fold, epoch} crashes that fold once, mid-epoch."""
    fault = cfg.get("fault")
    if not fault or fault["fold"] != cfg["fold"] or fault["epoch"] != epoch or step != n_steps // 2:
        return
    crash_once(cfg["fault_marker"], f"crashed fold {cfg['fold']} epoch {epoch} step {step} pid {os.getpid()}")

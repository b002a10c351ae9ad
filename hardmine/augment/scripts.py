"""Unicode scripts of texts, counted vectorised over code points.

:func:`script_counts` and :func:`dominant_script` serve the ``script`` filter
(:func:`hardmine.augment.filters.script_reject`), language detection
(:mod:`hardmine.augment.language`) and the offline back-translator
(:mod:`hardmine.augment.offline_bt`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: (first code point, last code point, script) — sorted, non-overlapping.
_SCRIPT_RANGES = [
    (0x0041, 0x005A, "Latin"),
    (0x0061, 0x007A, "Latin"),
    (0x00C0, 0x00D6, "Latin"),
    (0x00D8, 0x00F6, "Latin"),
    (0x00F8, 0x024F, "Latin"),
    (0x0370, 0x03FF, "Greek"),
    (0x0400, 0x052F, "Cyrillic"),
    (0x0590, 0x05FF, "Hebrew"),
    (0x0600, 0x06FF, "Arabic"),
    (0x0750, 0x077F, "Arabic"),
    (0x0900, 0x097F, "Devanagari"),
    (0x0E00, 0x0E7F, "Thai"),
    (0x1100, 0x11FF, "Hangul"),
    (0x1E00, 0x1EFF, "Latin"),
    (0x3040, 0x30FF, "Kana"),
    (0x3130, 0x318F, "Hangul"),
    (0x3400, 0x4DBF, "Han"),
    (0x4E00, 0x9FFF, "Han"),
    (0xAC00, 0xD7AF, "Hangul"),
    (0xF900, 0xFAFF, "Han"),
]
SCRIPTS = ("none",) + tuple(dict.fromkeys(s for _, _, s in _SCRIPT_RANGES))
_STARTS = np.array([a for a, _, _ in _SCRIPT_RANGES], dtype=np.int64)
_ENDS = np.array([b for _, b, _ in _SCRIPT_RANGES], dtype=np.int64)
_IDS = np.array([SCRIPTS.index(s) for _, _, s in _SCRIPT_RANGES], dtype=np.int64)


def _codepoints(texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """All code points of a batch, concatenated, and the owning text index of each."""
    texts = [t or "" for t in texts]
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    owner = np.repeat(np.arange(len(texts)), lens)
    return cps, owner


def script_counts(texts: Sequence[str | None]) -> np.ndarray:
    """(n, len(SCRIPTS)) letter counts per script (column 0 counts other characters)."""
    cps, owner = _codepoints(texts)
    pos = np.searchsorted(_STARTS, cps, side="right") - 1
    inside = (pos >= 0) & (cps <= _ENDS[np.clip(pos, 0, None)])
    script = np.where(inside, _IDS[np.clip(pos, 0, None)], 0)
    s = len(SCRIPTS)
    return np.bincount(owner * s + script, minlength=len(texts) * s).reshape(len(texts), s)


def dominant_script(texts: Sequence[str | None]) -> np.ndarray:
    """Name of the most frequent letter script per text (``"none"`` when it has no letters)."""
    counts = script_counts(texts)[:, 1:]
    best = counts.argmax(axis=1) + 1
    best[counts.sum(axis=1) == 0] = 0
    return np.asarray(SCRIPTS, dtype=object)[best]

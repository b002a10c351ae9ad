"""Content fingerprints: of byte strings (config, inputs) and of files or directory trees.

They are recorded in run manifests: a change here makes every existing run re-run its stages.
"""
from __future__ import annotations

import hashlib
import os

import pyarrow.fs as pafs

from hardmine.store.uri import split_uri


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

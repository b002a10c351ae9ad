"""Local paths and URIs (``s3://``, ``gs://``, ``file://``) as pyarrow filesystems."""
from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs


def split_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) for a local path or a URI."""
    if "://" in uri:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")

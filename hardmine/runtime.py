"""Connecting to Ray: join a cluster under `ray job submit`, else start a local one."""
from __future__ import annotations

import os

from hardmine.config import Config
from hardmine.store import is_local

WORKER_ENV = {
    "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
    "TRANSFORMERS_OFFLINE": os.environ.get("TRANSFORMERS_OFFLINE", "1"),
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_TRAIN_V2_ENABLED": "1",
}


class ClusterError(RuntimeError):
    pass


def connect(cfg: Config, log=print):
    """``ray.init`` the way the job is being run; returns the ray module."""
    import ray

    for k, v in WORKER_ENV.items():
        os.environ.setdefault(k, v)
    if not ray.is_initialized():
        address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, runtime_env={"env_vars": WORKER_ENV}, logging_level="WARNING")
            log(f"joined Ray cluster at {address}")
        else:
            ray.init(
                num_cpus=cfg.ray.num_cpus,
                num_gpus=cfg.ray.num_gpus,
                include_dashboard=False,
                runtime_env={"env_vars": WORKER_ENV},
                logging_level="WARNING",
            )
            log(f"started a local Ray cluster ({ray.cluster_resources().get('CPU', 0):g} CPUs)")
    check_storage(cfg.run_root)
    return ray


def check_storage(run_root: str) -> None:
    """Multi-node runs must not write to a node-local path."""
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    if len(alive) > 1 and is_local(run_root) and not os.environ.get("HARDMINE_SHARED_FS"):
        raise ClusterError(
            f"the Ray cluster has {len(alive)} nodes but run_root={run_root!r} is a node-local path: workers on "
            "other nodes could not read or write the run. Fix: set run_root to shared storage (s3://bucket/runs, "
            "gs://...) or, if that path is a shared network filesystem on every node, set HARDMINE_SHARED_FS=1"
        )

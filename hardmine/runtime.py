"""Connecting to Ray: join a cluster under `ray job submit`, else start a local one.

Also the cluster facts every stage sizes itself by:

- which environment the driver and the workers get (:func:`worker_env`): Hugging Face
  offline mode is forced only when every model the config names is packaged or a local
  path; a hub name leaves the user's environment alone;
- the runtime env passed to ``ray.init`` (:func:`driver_runtime_env`): under ``ray job
  submit`` the job's own runtime env wins, so no key is passed twice (Ray refuses that with
  "Failed to merge the Job's runtime env");
- whether the cluster autoscales and the worker type the autoscaler adds
  (:func:`autoscaler_info`), so resource checks wait for it instead of refusing
  (:func:`require_fit`) and sizes are taken from that worker type (:func:`sizing_nodes`);
- which torch device a process may use (:func:`torch_device`): inside a Ray task or actor,
  CUDA only when Ray assigned it a GPU.
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from hardmine.config import Config
from hardmine.store import is_local

#: set for the driver and every worker whatever the config
BASE_WORKER_ENV = {
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_TRAIN_V2_ENABLED": "1",
}
#: Hugging Face offline switches: forced to "1" only when no configured model is a hub name
OFFLINE_KEYS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
#: the environment variable through which Ray's job supervisor hands a job's runtime env to its driver
#: (ray._private.runtime_env.constants.RAY_JOB_CONFIG_JSON_ENV_VAR in Ray 2.60)
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
#: where `ray up` leaves the cluster launcher's config on the head node (cluster.yaml passes it to
#: `ray start --head --autoscaling-config`); jobs submitted with `ray job submit` run on the head
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"
#: env override of autoscaler detection (1/true or 0/false), below the config key ray.autoscaling
AUTOSCALING_ENV = "HARDMINE_AUTOSCALING"

# what connect() learned, for the sizing functions called without a config (runner, evaluate, augment)
_STATE: dict[str, Any] = {"ray_cfg": None, "joined": False}
# offline keys connect() itself put into os.environ (not the user's choice)
_FORCED: set[str] = set()


class ClusterError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- models and env


def configured_models(cfg: Config) -> list[str]:
    """Every model name the config can load: ``oof.model``, the ``hf`` / ``vllm`` generators'
    ``model`` / ``backward_model`` and the similarity filter's model."""
    names = [cfg.oof.model]
    gens = cfg.augment.generators
    if isinstance(gens, list):
        for g in gens:
            if g.get("type") in ("hf", "vllm"):
                names += [str(g[k]) for k in ("model", "backward_model") if g.get(k)]
    sim = (cfg.augment.filters or {}).get("similarity")
    if sim:
        model = sim.get("model", "auto") if isinstance(sim, dict) else "auto"
        if model != "auto":  # auto resolves to a packaged encoder for every language
            names.append(str(model))
    out: list[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out


def is_hub_name(name: str) -> bool:
    """True for a Hugging Face hub id (``org/model`` or ``model``); False for ``packaged:...``,
    an existing local path, a path-looking name (``/``, ``./``, ``~``) or a URI (``s3://``...)."""
    n = str(name).strip()
    if not n or n.startswith("packaged:") or "://" in n:
        return False
    if n.startswith(("/", "./", "../", "~", ".\\")) or Path(os.path.expanduser(n)).exists():
        return False
    return True


def hub_models(cfg: Config) -> list[str]:
    return [n for n in configured_models(cfg) if is_hub_name(n)]


def _user_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The offline keys the user set (not those an earlier connect() forced)."""
    return {k: environ[k] for k in OFFLINE_KEYS if k in environ and k not in _FORCED}


def offline_env(cfg: Config, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` for the driver and the workers.

    The user's own values always pass through. Otherwise both are forced to ``"1"`` only when
    every configured model is packaged or a local path (no network needed, and a missing file
    fails fast instead of waiting on the hub); with any hub name nothing is forced, so hub
    models download (or load from the HF cache) as transformers/vLLM normally do."""
    environ = os.environ if environ is None else environ
    out = _user_env(environ)
    if not hub_models(cfg):
        for k in OFFLINE_KEYS:
            out.setdefault(k, "1")
    return out


def worker_env(cfg: Config, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables for the driver and every Ray worker of a run."""
    return {**BASE_WORKER_ENV, **offline_env(cfg, environ)}


def job_runtime_env(environ: Mapping[str, str] | None = None) -> dict | None:
    """The runtime env of the ``ray job submit`` job this driver runs in (None outside a job)."""
    environ = os.environ if environ is None else environ
    raw = environ.get(JOB_CONFIG_ENV)
    if not raw:
        return None
    try:
        return dict(json.loads(raw).get("runtime_env") or {})
    except (ValueError, AttributeError, TypeError):
        return {}


def driver_runtime_env(env_vars: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict | None:
    """The ``runtime_env`` for ``ray.init``: ``{"env_vars": ...}`` without the keys the job's own
    runtime env already sets (Ray refuses any key set by both: "Failed to merge the Job's runtime
    env"); the job's values win and reach every worker anyway. None when nothing is left."""
    job = job_runtime_env(environ)
    taken = set((job or {}).get("env_vars") or {})
    keep = {k: str(v) for k, v in env_vars.items() if k not in taken}
    return {"env_vars": keep} if keep else None


def connect(cfg: Config, log=print):
    """``ray.init`` the way the job is being run; returns the ray module."""
    import ray

    from hardmine import console

    console.CONSOLE.quiet_libraries()  # Ray's own console handlers (installed on import) -> the run's log file
    env = worker_env(cfg)
    for k in list(_FORCED):  # forced by an earlier connect() for a config without hub models
        if k not in env:
            os.environ.pop(k, None)
            _FORCED.discard(k)
    for k, v in env.items():
        if k not in os.environ:
            os.environ[k] = v
            if k in OFFLINE_KEYS:
                _FORCED.add(k)
    hub = hub_models(cfg)
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    _STATE.update(ray_cfg=cfg.ray, joined=bool(address))
    if hub and any(os.environ.get(k) == "1" for k in OFFLINE_KEYS):
        log(f"note: the config names hub model(s) {hub} but HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE=1 is set in the "
            "environment: they must already be in the Hugging Face cache of every node")
    if not ray.is_initialized():
        _init_ray(address, cfg.ray.num_cpus, cfg.ray.num_gpus, driver_runtime_env(env), log)
    import ray.data  # noqa: F401 - installs Ray Data's logging handlers, quieted next

    console.CONSOLE.quiet_libraries()
    check_storage(cfg.run_root)
    return ray


def ensure_ray(log=None):
    """For library calls without a config (e.g. :func:`hardmine.augment.pipeline.run_augment`): join the
    running Ray (``RAY_ADDRESS``) or start a local one, quietly, unless Ray is already initialised."""
    import ray

    if not ray.is_initialized():
        _init_ray(os.environ.get("RAY_ADDRESS"), None, None, None, log or (lambda _m: None))
    return ray


def _init_ray(address, num_cpus, num_gpus, runtime_env, log) -> None:
    """The one ``ray.init`` of hardmine."""
    import ray

    from hardmine import console

    if address:
        ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING", log_to_driver=console.verbose())
        log(f"joined Ray cluster at {address}")
    else:
        ray.init(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
            runtime_env=runtime_env,
            logging_level="WARNING",
            log_to_driver=console.verbose(),  # workers' prints stay in Ray's session logs unless -v
        )
        log(f"started a local Ray cluster ({ray.cluster_resources().get('CPU', 0):g} CPUs)")


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


# ----------------------------------------------------------------------------- devices


def _in_ray_worker() -> bool:
    """True inside a Ray task or actor (not the driver, not plain Python)."""
    ray = sys.modules.get("ray")  # a Ray worker process has always imported ray
    if ray is None:
        return False
    try:
        if not ray.is_initialized():
            return False
        from ray._private import worker as _w

        return _w.global_worker.mode == _w.WORKER_MODE
    except Exception:  # noqa: BLE001 - any doubt: behave as outside Ray
        return False


def torch_device(prefer: str | None = None):
    """The ``torch.device`` this process may compute on.

    Inside a Ray task or actor: ``cuda`` only when Ray assigned it GPUs (``ray.get_gpu_ids()``
    non-empty), as the index of its first GPU within the ``CUDA_VISIBLE_DEVICES`` Ray set (so
    ``cuda:0`` for a task holding one GPU or a fraction of one); else ``cpu`` - Ray 2.60 no
    longer hides the GPUs from tasks that reserved none, and a CPU actor must not land on a
    GPU that a vLLM engine or a packed fold holds. Outside Ray (the driver, plain Python):
    ``cuda`` when available. ``prefer`` (``"cpu"``, ``"cuda:1"``) is returned as given."""
    import torch

    if prefer:
        return torch.device(prefer)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if not _in_ray_worker():
        return torch.device("cuda")
    import ray

    ids = [str(i) for i in ray.get_gpu_ids()]
    if not ids:
        return torch.device("cpu")
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible:
        index = visible.index(ids[0]) if ids[0] in visible else 0
    else:  # nothing hidden (RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES): the GPU id is the device index
        index = int(ids[0]) if ids[0].isdigit() else 0
    return torch.device("cuda", index)


# ----------------------------------------------------------------------------- autoscaling and sizing


def read_bootstrap(path: str = BOOTSTRAP_CONFIG) -> dict | None:
    """The cluster launcher's config on the head node, or None."""
    import yaml

    p = Path(os.path.expanduser(path))
    if not p.is_file():
        return None
    try:
        data = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def launcher_worker_types(bootstrap: Mapping) -> list[dict]:
    """Worker node types the autoscaler may add: ``{"name", "resources", "max_workers"}``."""
    types = bootstrap.get("available_node_types") or {}
    head = bootstrap.get("head_node_type")
    cap = bootstrap.get("max_workers")
    out = []
    for name, t in types.items():
        if name == head or not isinstance(t, dict):
            continue
        n = int(t.get("max_workers", cap if cap is not None else 0) or 0)
        if cap is not None:
            n = min(n, int(cap))
        if n > 0:
            out.append({"name": str(name), "resources": {k: float(v) for k, v in (t.get("resources") or {}).items()},
                        "max_workers": n})
    return out


def _flag(value: str | None) -> bool | None:
    v = str(value or "").strip().lower()
    return True if v in ("1", "true", "yes", "on") else False if v in ("0", "false", "no", "off") else None


def autoscaler_info(ray_cfg=None, *, joined: bool | None = None, environ: Mapping[str, str] | None = None,
                    bootstrap_path: str = BOOTSTRAP_CONFIG) -> dict:
    """Whether the cluster autoscales and which worker node it adds.

    Decided by, in order: the config key ``ray.autoscaling``, the env var ``HARDMINE_AUTOSCALING``,
    and (when the job joined an existing cluster) the cluster launcher's config that `ray up`
    leaves on the head (``~/ray_bootstrap_config.yaml``): worker types with ``max_workers > 0``.
    The worker is ``ray.worker_resources`` when set, else the launcher's worker type with the
    most GPUs (then CPUs). Returns ``{"autoscaling", "source", "worker"}``; ``worker`` is
    ``{"name", "resources", "max_workers"}`` or None."""
    environ = os.environ if environ is None else environ
    ray_cfg = _STATE["ray_cfg"] if ray_cfg is None else ray_cfg
    joined = _STATE["joined"] if joined is None else joined
    explicit = getattr(ray_cfg, "autoscaling", None)
    boot = read_bootstrap(bootstrap_path) if joined else None
    types = launcher_worker_types(boot) if boot else []
    if explicit is not None:
        autoscaling, source = bool(explicit), "config ray.autoscaling"
    elif _flag(environ.get(AUTOSCALING_ENV)) is not None:
        autoscaling, source = bool(_flag(environ.get(AUTOSCALING_ENV))), f"env {AUTOSCALING_ENV}"
    elif types:
        autoscaling, source = True, f"{bootstrap_path} (the cluster launcher's config on the head)"
    else:
        autoscaling, source = False, "no autoscaler found (no ray.autoscaling, no launcher config on this node)"
    worker = None
    configured = getattr(ray_cfg, "worker_resources", None)
    if configured:
        worker = {"name": "ray.worker_resources", "resources": {k: float(v) for k, v in configured.items()},
                  "max_workers": None}
    elif types:
        worker = max(types, key=lambda t: (t["resources"].get("GPU", 0.0), t["resources"].get("CPU", 0.0)))
    return {"autoscaling": autoscaling, "source": source, "worker": worker}


def alive_nodes() -> list[dict[str, float]]:
    """Total CPU/GPU of every alive node."""
    import ray

    return [
        {"CPU": float(n["Resources"].get("CPU", 0)), "GPU": float(n["Resources"].get("GPU", 0))}
        for n in ray.nodes() if n.get("Alive")
    ]


def sizing_nodes(runs: int | None = None, gpus: float | None = None, *, alive: list[dict] | None = None,
                 info: dict | None = None) -> list[dict]:
    """The nodes runs are sized for: the alive ones, plus on an autoscaling cluster with a known
    worker type, the worker nodes the autoscaler may still add (its ``max_workers``, or ``runs``
    when unknown) - so folds are sized for the GPU worker type, not the GPU-less head.

    CPU-only runs (``gpus == 0``) are sized for the alive nodes alone when the worker type has
    GPUs: CPU work must not make the autoscaler add GPU nodes."""
    alive = alive_nodes() if alive is None else [dict(n) for n in alive]
    info = autoscaler_info() if info is None else info
    w = info.get("worker")
    if not info.get("autoscaling") or not w:
        return alive
    shape = {"CPU": float(w["resources"].get("CPU", 0)), "GPU": float(w["resources"].get("GPU", 0))}
    if gpus is not None and gpus <= 0 and shape["GPU"] > 0:
        return alive
    have = sum(1 for n in alive if n.get("CPU") == shape["CPU"] and n.get("GPU") == shape["GPU"])
    limit = w.get("max_workers") or max(1, int(runs or 1))
    return alive + [dict(shape) for _ in range(max(0, int(limit) - have))]


def planning_resources(alive: list[dict] | None = None, info: dict | None = None) -> dict[str, float]:
    """Cluster CPU/GPU totals for planning actor pools: the alive CPUs (CPU work must not make
    the autoscaler add GPU nodes), and the alive GPUs - or, on an autoscaling cluster that has
    none yet, the GPUs of the worker nodes it may add."""
    alive = alive_nodes() if alive is None else alive
    cpus = sum(n.get("CPU", 0.0) for n in alive)
    gpus = sum(n.get("GPU", 0.0) for n in alive)
    if gpus <= 0:
        extra = sizing_nodes(alive=alive, info=info)[len(alive):]
        gpus = sum(n.get("GPU", 0.0) for n in extra)
    return {"CPU": float(cpus), "GPU": float(gpus)}


def node_fits(node: Mapping[str, float], cpus: float, gpus: float = 0.0) -> int:
    """How many runs holding ``cpus`` CPUs and ``gpus`` GPUs one node holds at once."""
    fit = math.floor(node.get("CPU", 0) / cpus + 1e-9) if cpus > 0 else math.inf
    if gpus > 0:
        fit = min(fit, math.floor(node.get("GPU", 0) / gpus + 1e-9))
    return 0 if fit == math.inf else int(fit)


def _fmt(res: Mapping[str, float]) -> str:
    return ", ".join(f"{v:g} {k}{'s' if v != 1 and k in ('CPU', 'GPU') else ''}" for k, v in res.items() if k in ("CPU", "GPU"))


def require_fit(cpus: float, gpus: float, *, what: str, fix: str, error: type[Exception] = ClusterError,
                log: Callable[[str], Any] | None = print, alive: list[dict] | None = None, info: dict | None = None) -> str:
    """Check that one run holding ``cpus`` CPUs and ``gpus`` GPUs can be scheduled.

    A node holds it now: ``"fits"``. On an autoscaling cluster: refused only when the worker type
    the autoscaler adds cannot hold it either; otherwise a message naming what it waits for is
    logged and ``"waiting"`` returned (Ray queues the work and the autoscaler sees the request).
    On a fixed cluster: ``error`` with the fix."""
    alive = alive_nodes() if alive is None else alive
    info = autoscaler_info() if info is None else info
    need = {"CPU": float(cpus), **({"GPU": float(gpus)} if gpus > 0 else {})}
    if any(node_fits(n, cpus, gpus) >= 1 for n in alive):
        return "fits"
    have = {"CPU": sum(n.get("CPU", 0.0) for n in alive), "GPU": sum(n.get("GPU", 0.0) for n in alive)}
    best = max(alive, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)), default={"CPU": 0.0, "GPU": 0.0})
    if info.get("autoscaling"):
        w = info.get("worker")
        if w and node_fits(w["resources"], cpus, gpus) < 1:
            raise error(
                f"{what} needs {_fmt(need)} on one node, but the worker type the autoscaler adds ({w['name']}: "
                f"{_fmt(w['resources'])}) cannot hold it, so it would wait forever: {fix}, or add a larger worker type"
            )
        target = f"a node with {_fmt(need)}"
        where = (f" (worker type {w['name']}: {_fmt(w['resources'])})" if w else
                 " (worker type unknown: set ray.worker_resources, e.g. {CPU: 8, GPU: 1}, to size runs for it)")
        if log:
            log(f"waiting for the autoscaler to add {target}{where}: the cluster has {_fmt(have)} now "
                f"(autoscaling from {info.get('source')})")
        return "waiting"
    raise error(
        f"{what} needs {_fmt(need)} on one node but no node of the Ray cluster holds that (the cluster has "
        f"{_fmt(have)}; its largest node {_fmt(best)}): {fix}. If this cluster autoscales (e.g. a CPU head with "
        "GPU workers at min_workers: 0), set ray.autoscaling: true and ray.worker_resources (e.g. {CPU: 8, GPU: 1})"
    )

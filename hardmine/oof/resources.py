"""How much of the cluster each training run holds: CPUs per run (:func:`fold_cpus`), runs at once
(:func:`concurrent_runs`), torch threads (:func:`fold_threads`, :class:`ElasticThreads`), a refusal of
runs no node can hold (:func:`check_resources`), and the driver threads that launch runs (:func:`in_threads`).

Shared by the OOF folds, evaluate's retrains and the sweep's trials.
"""
from __future__ import annotations

import math
import time

import ray


class ResourceError(RuntimeError):
    pass


def fold_cpus(requested: float | None, runs: int, gpus: float = 0.0, nodes: list[dict] | None = None) -> float:
    """CPUs per training run: ``requested``, or the largest whole-CPU share that runs as many
    of the ``runs`` at once as the cluster allows.

    The share is the largest c = node_cpus / m (m a whole number, c >= 1) such that the nodes
    hold ``runs`` of them together, else 1 CPU: 5 folds on three 16-CPU nodes get 8 CPUs each
    (two per node), on one 2-CPU node 1 CPU each (two at a time). Fractional shares
    are never chosen automatically: 5 single-threaded folds time-sliced on 2 cores measured
    1.5x slower than the sequential loop (see README, OOF benchmark); set the value yourself
    to pack more folds per CPU or GPU.

    With ``gpus`` > 0 only nodes holding that many GPUs count, and the target is as many runs
    as their GPUs hold at once: 5 folds at 0.2 GPU on one 8-CPU, 1-GPU node get 1.6 CPUs each;
    at 1 GPU, one at a time, 8 CPUs each. ``nodes`` (``[{"CPU", "GPU"}]``) default to
    :func:`hardmine.runtime.sizing_nodes`: the alive nodes plus, on an autoscaling cluster, the
    worker nodes of the type the autoscaler adds (``ray.worker_resources``)."""
    if requested:
        return float(requested)
    from hardmine.runtime import node_fits, sizing_nodes

    nodes = sizing_nodes(runs, gpus) if nodes is None else nodes
    usable = [n for n in nodes if n.get("CPU", 0) > 0 and (gpus <= 0 or n.get("GPU", 0) >= gpus)]
    target = runs if gpus <= 0 else max(1, min(runs, sum(node_fits(n, 1.0, gpus) for n in usable)))
    best = 1.0
    for c in {float(n["CPU"]) / m for n in usable for m in range(1, runs + 1)}:
        if c > best and sum(node_fits(n, c, gpus) for n in usable) >= target:
            best = c
    return math.floor(best * 1e4) / 1e4


def concurrent_runs(cpus: float, gpus: float = 0.0, nodes: list[dict] | None = None) -> int:
    """How many runs holding ``cpus`` CPUs (and ``gpus`` GPUs) the cluster's nodes hold at once (at
    least 1); ``nodes`` as in :func:`fold_cpus` (on an autoscaling cluster the worker nodes it may
    add count, so every run is launched and the autoscaler sees all of them)."""
    from hardmine.runtime import node_fits, sizing_nodes

    nodes = sizing_nodes(None, gpus) if nodes is None else nodes
    return max(1, sum(node_fits(n, cpus, gpus) for n in nodes))


def fold_threads(cpus: float) -> int:
    """Torch intra-op threads for a run holding ``cpus`` CPUs: its whole CPUs, at least one."""
    return max(1, int(cpus))


class ElasticThreads:
    """Torch threads for a run that holds ``cpus`` CPUs and may borrow its node's idle ones.

    Ray reserves CPUs, it does not pin them: when fewer runs than CPUs are left (the last of 5
    folds on 2 CPUs trains alone), the CPUs nobody holds would idle. Every ``every_s`` seconds
    the run reads its node's free CPUs from Ray's scheduler and uses its own whole CPUs plus
    its share of the free ones (in proportion to what it holds among the node's held CPUs),
    never more than the node has. A run that Ray schedules onto them takes them back at the
    next check. ``oof.elastic_threads: false`` keeps the threads at the run's own CPUs.
    """

    def __init__(self, cpus: float, every_s: float = 2.0):
        self.own = float(cpus)
        self.base = fold_threads(cpus)
        self.every_s = every_s
        self.node = ray.get_runtime_context().get_node_id()
        self.n = self.base
        self._checked = float("-inf")

    @classmethod
    def from_config(cls, cfg: dict) -> "ElasticThreads | None":
        """For a ``train_fold`` config: None when elastic threads are off or the run has a GPU."""
        if not cfg.get("elastic_threads") or cfg.get("gpus"):
            return None
        return cls(cfg.get("cpus") or cfg["threads"])

    def free_cpus(self) -> tuple[float, float]:
        """(total, unreserved) CPUs of this run's node, as Ray's scheduler sees them now."""
        # DeveloperAPI (Ray 2.60 has no public per-node view; ray.available_resources() sums the cluster)
        from ray._private.state import available_resources_per_node, total_resources_per_node

        total = total_resources_per_node().get(self.node, {}).get("CPU", 0.0)
        free = available_resources_per_node().get(self.node, {}).get("CPU", 0.0)
        return float(total), float(free)

    def __call__(self) -> int:
        now = time.monotonic()
        if now - self._checked < self.every_s:
            return self.n
        self._checked = now
        try:
            total, free = self.free_cpus()
        except Exception:  # noqa: BLE001 - the scheduler's view is an optimisation; keep the base
            return self.n
        held = max(total - free, self.own)
        extra = math.floor(free * self.own / held + 1e-9) if free >= 1 else 0
        self.n = int(max(self.base, min(total, self.base + extra)))
        return self.n


def check_resources(cpus: float, gpus: float, log=print, nodes: list[dict] | None = None, info: dict | None = None) -> str:
    """Refuse a fold no node can ever hold; on an autoscaling cluster whose nodes cannot hold one
    yet, log what it waits for instead (``"waiting"``). See :func:`hardmine.runtime.require_fit`."""
    from hardmine.runtime import require_fit

    if gpus > 0:
        fix = "set oof.gpus_per_fold: 0 to train on CPU, or run on a cluster with GPUs"
    else:
        fix = "lower oof.cpus_per_fold"
    return require_fit(
        cpus, gpus, what=f"a fold (oof.cpus_per_fold={cpus:g}, oof.gpus_per_fold={gpus:g})", fix=fix,
        error=ResourceError, log=log, alive=nodes, info=info,
    )


def in_threads(calls: list, limit: int | None = None, progress: str | None = None) -> list:
    """Run the zero-argument ``calls`` in daemon threads, at most ``limit`` at a time (the next
    starts when one ends); their results in order. ``progress``: a progress bar's label (shown
    on a terminal, :func:`hardmine.console.progress`).

    Fails fast: the first exception is raised as soon as it happens (the other runs are left
    to Ray, exactly as with abandoned task refs; daemon threads never hold the process open)."""
    import queue
    import threading

    done: queue.Queue = queue.Queue()

    def run(i, call):
        try:
            done.put((i, call(), None))
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            done.put((i, None, e))

    def start(i):
        threading.Thread(target=run, args=(i, calls[i]), name=f"hardmine-run-{i}", daemon=True).start()

    limit = max(1, limit or len(calls))
    for i in range(min(limit, len(calls))):
        start(i)
    results: list = [None] * len(calls)
    from hardmine.console import progress as bar

    with bar(len(calls) if progress else 0, progress or "", unit="run") as b:
        for n in range(len(calls)):
            i, value, error = done.get()
            if error is not None:
                raise error
            results[i] = value
            b.update(1)
            if n + limit < len(calls):
                start(n + limit)
    return results

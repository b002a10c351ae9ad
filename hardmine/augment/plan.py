"""Planning the augmentation before Ray runs: generator specs checked and named, and the
actor pools sized to the cluster. The budget per generator is
:func:`hardmine.augment.generators.plan_budget`.
"""
from __future__ import annotations

from hardmine.augment import language as L
from hardmine.augment.generators import GENERATOR_TYPES
from hardmine.augment.variants import method_name


def check_generators(generators: list[dict]) -> list[dict]:
    """Validate generator specs; returns them with ``method`` filled in."""
    if not generators:
        raise ValueError("generators is empty: give at least one, e.g. [{'type': 'eda'}]")
    out, seen = [], set()
    for i, g in enumerate(generators):
        if not isinstance(g, dict) or g.get("type") not in GENERATOR_TYPES:
            raise ValueError(f"generators[{i}] needs type in {list(GENERATOR_TYPES)}; got {g!r}")
        m = method_name(g)
        if m in seen:
            raise ValueError(f"two generators are both named {m!r}: give one of them a distinct 'name'")
        if "~" in m:
            raise ValueError(f"generator name {m!r} must not contain '~' (it separates variant id parts)")
        seen.add(m)
        if g["type"] == "offline-bt" and L.normalize_language(g.get("source_lang", "en")) not in ("en", "pt"):
            raise ValueError(
                f"generators[{i}] offline-bt translates English or Portuguese only (source_lang en or pt); got "
                f"source_lang={g.get('source_lang')!r}: for other languages use eda, or hf/vllm with a multilingual model"
            )
        if g["type"] == "vllm":
            from hardmine.augment.vllm_gen import check_spec

            check_spec(g)
        else:
            from hardmine.augment.generators import check_options

            check_options(g)
        out.append({**g, "method": m})
    return out


def plan_resources(generators: list[dict], cpus: float, gpus: float) -> dict[str, dict]:
    """Actor-pool sizes and per-actor CPUs/GPUs per generator stage.

    By default the CPU stages share ``cpus - 1.1`` logical CPUs (at least 0.05 each):
    the reserve lets one read -> select -> re-block task (Ray Data gives it a whole
    CPU) and the near-duplicate actor run next to the actor pools; logical CPUs only
    gate scheduling, the OS shares the cores. ``hf`` stages take one GPU per worker
    when the cluster has GPUs.

    A ``vllm`` generator's entry sizes its filter stage like a CPU stage, and adds its
    processors' own actors to the reserve: ``engine_workers`` engines (``workers``, default 1)
    holding ``engine_gpus`` GPUs (the spec's ``num_gpus`` share, else tensor x pipeline parallel
    size) and one CPU each (Ray Data's default for an actor), and per processor (two for back-translation) a chat-template and a
    tokenizer pool of up to ``stage_workers`` actors of ``stage_cpus`` CPUs
    (:data:`~hardmine.augment.vllm_gen.VLLM_STAGE_CPUS`).
    """
    from hardmine.augment.vllm_gen import VLLM_STAGE_CPUS, engine_gpus

    reserve = 1.1
    vllm_extra: dict[str, dict] = {}
    for g in generators:
        if g["type"] == "vllm":
            engines = int(g.get("workers") or 1)
            procs = 2 if g.get("task") == "back_translation" else 1
            vllm_extra[g["method"]] = {
                "engine_workers": engines,
                "engine_gpus": float(g["num_gpus"]) if g.get("num_gpus") is not None else float(engine_gpus(g)),
                "stage_cpus": VLLM_STAGE_CPUS, "stage_workers": engines,
            }
            reserve += procs * engines * (1.0 + 2 * VLLM_STAGE_CPUS)
    stages = [g for g in generators]
    n_cpu = max(1, len(stages))
    plan: dict[str, dict] = {}
    for g in stages:
        on_gpu = g["type"] == "hf" and gpus >= 1 and g.get("num_gpus", 1) > 0
        if on_gpu:
            workers = int(g.get("workers") or max(1, int(gpus // max(1, sum(1 for s in stages if s["type"] == "hf")))))
            plan[g["method"]] = {"workers": workers, "num_cpus": float(g.get("num_cpus", 1)), "num_gpus": float(g.get("num_gpus", 1))}
        elif g["type"] == "vllm":  # `workers` counts the engines; the filter stage after them is sized here
            plan[g["method"]] = {"workers": max(1, int(cpus // n_cpu)), "num_gpus": 0.0, **vllm_extra[g["method"]]}
        else:
            workers = int(g.get("workers") or max(1, int(cpus // n_cpu)))
            plan[g["method"]] = {"workers": workers, "num_gpus": 0.0}
    cpu_workers = sum(p["workers"] for p in plan.values() if "num_cpus" not in p)
    for g in stages:
        p = plan[g["method"]]
        if "num_cpus" not in p:
            p["num_cpus"] = float(g.get("num_cpus") or max(0.05, (cpus - reserve) / max(1, cpu_workers)))
        p["threads"] = max(1, int(round(p["num_cpus"])))
    plan["_io"] = {"num_cpus": 0.05}
    return plan

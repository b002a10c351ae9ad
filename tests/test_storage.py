"""Where a run lives: a ``file://`` URI through the pipeline, and the multi-node guard against node-local paths."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest

from hardmine.config import deep_merge, from_dict, parse_overrides
from hardmine.pipeline import run_all
from hardmine.runtime import check_storage
from tests.helpers import make_rows, tiny_bert_dir, write_csv

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_bert_dir(tmp_path_factory.mktemp("tinybert"))


# The frozen backbone's fold tasks checkpoint into the run dir (`_checkpoints/`); as TorchTrainer
# runs, Ray Train's storage_path is the run dir's `_train/` (about a minute more here: opt-in).
@pytest.mark.parametrize("runner", ["task", pytest.param("trainer", marks=pytest.mark.slow)])
def test_file_uri_run_dir_through_oof(ray_local, tmp_path, tiny_model, monkeypatch, runner):
    csv_path = write_csv(tmp_path / "d.csv", make_rows(8))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # a URI mistaken for a relative path would show up here as a "file:" folder
    root = tmp_path / "store"
    raw = {"name": "uri", "run_root": f"file://{root}", "data": {"path": csv_path}}
    sets = ["oof.folds=2", "oof.epochs=2", "oof.backbone=frozen", "oof.head=linear", f"oof.frozen_runner={runner}", f"oof.model={tiny_model}", "oof.head_batch_size=8"]
    cfg = from_dict(deep_merge(raw, parse_overrides(sets)))
    assert cfg.run_dir == f"file://{root}/uri"
    logs: list[str] = []
    store = run_all(cfg, log=logs.append, until="oof")

    run = root / "uri"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["prepare"]["status"] == "done" and manifest["stages"]["oof"]["status"] == "done"
    assert manifest["stages"]["oof"]["summary"]["runner"] == ("TorchTrainer" if runner == "trainer" else "ray task")
    oof = pq.read_table(run / "oof.parquet")
    ids = pq.read_table(run / "dataset.parquet").column("id").to_pylist()
    assert sorted(oof.column("id").to_pylist()) == sorted(ids) and oof.num_rows == 24
    np.testing.assert_allclose(np.array(oof.column("probs").to_pylist()).sum(1), 1.0, atol=1e-5)
    assert pq.read_table(run / "embeddings.parquet").num_rows == 24
    # each fold's checkpoints are inside the run dir
    if runner == "trainer":  # Ray Train's storage_path followed the URI
        fold_runs = sorted(p for p in (run / "_train").iterdir() if p.is_dir())
        assert [p.name.endswith(f"fold-{k}") for k, p in enumerate(fold_runs)] == [True, True], fold_runs
        for p in fold_runs:
            assert [c for c in p.iterdir() if c.name.startswith("checkpoint_")], p
    else:
        fold_dirs = sorted(p for p in (run / "_checkpoints").glob("oof-*/frozen/fold-*") if p.is_dir())
        assert len(fold_dirs) == 2 and all((p / "epoch-0001" / "state.pt").exists() for p in fold_dirs), fold_dirs
    assert (run / "models" / "frozen" / "fold-0" / "head.pt").exists() and (run / "models" / "frozen" / "fold-1" / "head.pt").exists()
    assert store.exists("oof.parquet") and store.uri_of("oof.parquet") == f"file://{root}/uri/oof.parquet"
    assert not list(work.iterdir()), list(work.iterdir())
    assert not [p for p in run.iterdir() if p.name.startswith(".tmp-")]
    # the same URI resumes: nothing is recomputed
    logs.clear()
    run_all(cfg, log=logs.append, until="oof")
    assert "[prepare] up to date" in "\n".join(logs) and "[oof] up to date" in "\n".join(logs)


def test_check_storage_single_node_accepts_local_paths(ray_local, tmp_path):
    check_storage(str(tmp_path / "runs"))
    check_storage(f"file://{tmp_path}/runs")
    check_storage("s3://bucket/runs")


# A real two-node cluster (head + one worker node, 1 CPU each) in its own process: a process
# connects to one Ray cluster only, and this session's `ray_local` may already be up.
_MULTINODE = textwrap.dedent(
    """
    import json, os, sys
    import ray
    from ray.cluster_utils import Cluster
    from hardmine.config import from_dict
    from hardmine.runtime import ClusterError, connect

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    out = {}
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        local = sys.argv[1]

        def attempt(run_root, **env):
            os.environ.pop("HARDMINE_SHARED_FS", None)
            os.environ.update(env)
            cfg = from_dict({"run_root": run_root, "data": {"demo": {}}, "ray": {"address": cluster.address}})
            try:
                connect(cfg, log=lambda m: None)
                return None
            except ClusterError as e:
                return str(e)

        out["local"] = attempt(local)
        out["nodes"] = len([n for n in ray.nodes() if n["Alive"]])
        out["file_uri"] = attempt("file://" + local)
        out["s3"] = attempt("s3://bucket/runs")
        out["shared_fs"] = attempt(local, HARDMINE_SHARED_FS="1")
    finally:
        ray.shutdown()
        cluster.shutdown()
    print("RESULT " + json.dumps(out))
    """
)


def test_check_storage_refuses_a_node_local_run_dir_on_a_multi_node_cluster(tmp_path):
    ray_tmp = tempfile.mkdtemp(prefix="rs", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "HARDMINE_SHARED_FS")}
    env.update(PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}", RAY_TMPDIR=ray_tmp, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    local = str(tmp_path / "runs")
    try:
        proc = subprocess.run([PYTHON, "-c", _MULTINODE, local], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    finally:
        for p in psutil.process_iter(["cmdline"]):  # anything of that cluster still up: its command line names ray_tmp
            try:
                if any(ray_tmp + os.sep in arg for arg in (p.info["cmdline"] or [])):
                    p.kill()
            except psutil.Error:
                pass
        shutil.rmtree(ray_tmp, ignore_errors=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    out = json.loads(lines[-1][len("RESULT ") :])
    assert out["nodes"] == 2
    for key in ("local", "file_uri"):
        msg = out[key]
        assert msg is not None, f"run_root {key} was accepted on a 2-node cluster"
        assert "2 nodes" in msg and "node-local" in msg and "s3://" in msg and "HARDMINE_SHARED_FS=1" in msg, msg
    assert local in out["local"]
    assert out["s3"] is None and out["shared_fs"] is None

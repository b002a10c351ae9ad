"""Surviving faults on real Ray: a fold's worker killed mid-epoch, the driver killed between stages."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
import yaml

from hardmine.config import deep_merge, from_dict, parse_overrides
from hardmine.pipeline import run_all
from tests.helpers import make_rows, tiny_bert_dir, write_csv

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_bert_dir(tmp_path_factory.mktemp("tinybert"))


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("data") / "d.csv", make_rows(12))


def _cfg(run_root: Path, csv_path: str, model: str, sets: list[str]):
    base = {"name": "faults", "run_root": str(run_root), "seed": 3, "data": {"path": csv_path}}
    return from_dict(deep_merge(base, parse_overrides(["oof.folds=2", "oof.epochs=3", f"oof.model={model}", *sets])))


def _oof_by_id(store) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    t = store.read_table("oof.parquet").sort_by("id")
    return (
        t.column("id").to_pylist(),
        t.column("fold").to_numpy(),
        np.array(t.column("probs").to_pylist(), dtype=np.float64),
        np.array(t.column("epoch_probs").to_pylist(), dtype=np.float64),
    )


# ----------------------------------------------------------------------------- a fold's worker dies mid-epoch


@pytest.mark.parametrize("backbone", ["frozen", pytest.param("finetune", marks=pytest.mark.slow)])
def test_fold_worker_killed_mid_epoch_resumes_to_the_same_result(ray_local, tmp_path, csv_path, tiny_model, backbone):
    # 18 training rows per fold, batches of 8: 3 steps an epoch, the crash comes at step 1 of epoch 1
    sets = [f"oof.backbone={backbone}", "oof.head=linear", "oof.batch_size=8", "oof.head_batch_size=8", "oof.lr=0.001", "oof.max_failures=2"]
    clean_logs: list[str] = []
    clean = run_all(_cfg(tmp_path / "clean", csv_path, tiny_model, sets), log=clean_logs.append, until="oof")
    fault_logs: list[str] = []
    faulty = run_all(
        _cfg(tmp_path / "fault", csv_path, tiny_model, sets + ["oof.fault_injection.fold=0", "oof.fault_injection.epoch=1"]),
        log=fault_logs.append,
        until="oof",
    )

    marker = Path(faulty.path("_faults/fold-0"))
    assert marker.exists(), "the injected crash never happened"
    assert marker.read_text().startswith("crashed fold 0 epoch 1 step 1")
    assert not Path(clean.path("_faults")).exists()

    ids_c, fold_c, probs_c, ep_c = _oof_by_id(clean)
    ids_f, fold_f, probs_f, ep_f = _oof_by_id(faulty)
    assert ids_f == ids_c and len(ids_f) == 36 and len(set(ids_f)) == 36
    np.testing.assert_array_equal(fold_f, fold_c)
    assert ep_f.shape == (36, 3, 3)
    np.testing.assert_allclose(probs_f, probs_c, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ep_f, ep_c, rtol=0, atol=1e-6)

    # the manifest and the driver log say that fold 0 came back from its epoch-0 checkpoint
    folds = {f["fold"]: f for f in faulty.manifest()["stages"]["oof"]["summary"]["folds"]}
    assert folds[0]["resumed_after_epochs"] == [0]
    assert folds[1]["resumed_after_epochs"] == []
    assert any("fold 0" in line and "resumed" in line for line in fault_logs), fault_logs
    clean_folds = clean.manifest()["stages"]["oof"]["summary"]["folds"]
    assert all(f["resumed_after_epochs"] == [] for f in clean_folds)
    assert not any("resumed" in line for line in clean_logs)


# ----------------------------------------------------------------------------- the driver dies between stages


@pytest.fixture
def ray_tmp():
    """A short private RAY_TMPDIR for the drivers' own local clusters (unix socket paths stay short)."""
    path = tempfile.mkdtemp(prefix="rf", dir="/tmp")
    try:
        yield path
    finally:
        for p in _processes_naming(path):  # only processes of our drivers' clusters: their command lines name this dir
            p.kill()
        shutil.rmtree(path, ignore_errors=True)


def _processes_naming(path: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(path + os.sep in arg for arg in (p.info["cmdline"] or [])):
                out.append(p)
        except psutil.Error:
            pass
    return out


def _raylet_up(ray_tmp: str) -> bool:
    return any("raylet" in " ".join(p.info["cmdline"] or []) for p in _processes_naming(ray_tmp))


def _driver_env(ray_tmp: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_TMPDIR")}
    env.update(
        PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        RAY_TMPDIR=ray_tmp,
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def _run_driver(args: list[str], env: dict, timeout: float = 300) -> str:
    proc = subprocess.run([PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout


def _manifest(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def test_driver_killed_during_oof_and_after_oof_resumes_without_recomputing(tmp_path, csv_path, tiny_model, ray_tmp):
    run_dir = tmp_path / "runs" / "killed"
    config = tmp_path / "killed.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "killed",
                "run_root": str(tmp_path / "runs"),
                "data": {"path": csv_path},
                "oof": {"folds": 2, "epochs": 2, "backbone": "frozen", "head": "linear", "model": tiny_model, "head_batch_size": 8},
                "ray": {"num_cpus": 2},
            }
        )
    )
    env = _driver_env(ray_tmp)

    # 1. `hardmine select` (every stage up to select), SIGKILLed once the manifest shows the oof stage
    #    running and its local Ray is up
    command = ["-m", "hardmine", "select", str(config)]
    log = tmp_path / "killed-driver.log"
    with open(log, "w") as out:
        driver = subprocess.Popen([PYTHON, *command], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while _manifest(run_dir).get("stages", {}).get("oof", {}).get("status") != "running" or not _raylet_up(ray_tmp):
            assert driver.poll() is None, f"the driver ended before the oof stage ran:\n{log.read_text()[-3000:]}"
            assert time.time() < deadline, "the oof stage never started"
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == -signal.SIGKILL
    killed = _manifest(run_dir)
    assert killed["stages"]["prepare"]["status"] == "done"
    assert killed["stages"]["oof"]["status"] == "running"  # died mid-stage: never marked done or failed
    assert not (run_dir / "oof.parquet").exists()  # outputs appear atomically or not at all
    dataset_mtime = (run_dir / "dataset.parquet").stat().st_mtime_ns
    # the local Ray cluster the driver had started went down with it
    deadline = time.time() + 30
    while _processes_naming(ray_tmp) and time.time() < deadline:
        time.sleep(0.5)
    assert not _processes_naming(ray_tmp), [p.cmdline()[:2] for p in _processes_naming(ray_tmp)]

    # 2. the job entrypoint up to oof: prepare is skipped, oof completes, the driver stops after it
    out = _run_driver(["jobs/mine.py", str(config), "--until", "oof"], env)
    assert "[prepare] up to date" in out and "[prepare] running" not in out
    assert "[oof] running" in out and "[oof] done" in out
    after_oof = _manifest(run_dir)
    assert after_oof["stages"]["prepare"] == killed["stages"]["prepare"]  # same record, same `updated` time
    assert (run_dir / "dataset.parquet").stat().st_mtime_ns == dataset_mtime
    assert after_oof["stages"]["oof"]["status"] == "done"
    assert {s.split(":")[0] for s in after_oof["stages"]} == {"prepare", "oof"}  # + one "oof:<member>" record per member
    oof_mtime = (run_dir / "oof.parquet").stat().st_mtime_ns

    # 3. the first command again: prepare and oof are skipped (oof.parquet untouched), the later stages run
    out = _run_driver(command, env)
    assert "[prepare] up to date" in out and "[oof] up to date" in out and "[oof] running" not in out
    final = _manifest(run_dir)
    assert (run_dir / "oof.parquet").stat().st_mtime_ns == oof_mtime
    assert final["stages"]["oof"] == after_oof["stages"]["oof"]
    assert final["stages"]["prepare"] == killed["stages"]["prepare"]
    assert {"score", "select"} <= set(final["stages"]), final["stages"]
    assert all(rec["status"] == "done" for rec in final["stages"].values()), final["stages"]
    ids = pq.read_table(run_dir / "oof.parquet").column("id").to_pylist()
    dataset_ids = pq.read_table(run_dir / "dataset.parquet").column("id").to_pylist()
    assert sorted(ids) == sorted(dataset_ids) and len(ids) == len(set(ids)) == 36

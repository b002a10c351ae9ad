"""The job as users run it: `ray start --head`, then `ray job submit` of jobs/mine.py with the demo config.

Everything goes through the `ray` CLI and the Jobs REST API in subprocesses; this process never
connects to that head (the session's `ray_local` is a different cluster). The head runs as
`ray start --head --block`, so stopping it means signalling that one process, which takes down
exactly the Ray processes it started (`ray stop` would kill every Ray process on the machine).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from hardmine.pipeline import STAGES

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
RAY = str(VENV_BIN / "ray")
EXCLUDES = [".venv", "runs", ".git", ".hypothesis", ".pytest_cache", "*.egg-info", "__pycache__", "build", "dist", ".tmp", ".whl"]


@dataclass
class Head:
    address: str  # dashboard / Jobs API, http://127.0.0.1:<port>
    env: dict
    temp_dir: str


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _cli_env(temp_dir: str) -> dict:
    """The environment of `ray start`, `ray job ...`: the venv first on PATH, token auth off for all of them."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "RAY_TMPDIR")}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        RAY_AUTH_MODE="disabled",
        RAY_TMPDIR=temp_dir,
        RAY_USAGE_STATS_ENABLED="0",
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",
        RAY_ENABLE_UV_RUN_RUNTIME_ENV="0",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def _processes_naming(path: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(path + os.sep in arg for arg in (p.info["cmdline"] or [])):
                out.append(p)
        except psutil.Error:
            pass
    return out


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture
def ray_head():
    temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's unix socket paths must stay under ~107 chars
    gcs, dashboard, client, agent = _free_ports(4)
    env = _cli_env(temp_dir)
    log = open(os.path.join(temp_dir, "head.log"), "w")
    head = subprocess.Popen(
        [
            RAY, "start", "--head", "--block", f"--temp-dir={temp_dir}", "--num-cpus=2", f"--port={gcs}",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
            f"--dashboard-agent-listen-port={agent}", "--disable-usage-stats",
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=temp_dir,
    )  # fmt: skip
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.time() + 150
        while True:
            assert head.poll() is None, f"ray start exited ({head.returncode}):\n{Path(log.name).read_text()[-4000:]}"
            try:
                if _get_json(f"{address}/api/version").get("ray_version"):
                    break
            except (urllib.error.URLError, OSError, ValueError):
                pass
            assert time.time() < deadline, f"the head's dashboard never came up:\n{Path(log.name).read_text()[-4000:]}"
            time.sleep(0.5)
        yield Head(address, env, temp_dir)
    finally:
        head.send_signal(signal.SIGTERM)  # `--block` turns SIGTERM into killing every process it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        deadline = time.time() + 20
        while _processes_naming(temp_dir) and time.time() < deadline:
            time.sleep(0.5)
        leftovers = _processes_naming(temp_dir)
        for p in leftovers:  # ours: their command lines name this head's private temp dir
            p.kill()
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not leftovers, f"Ray processes outlived the head: {[p.pid for p in leftovers]}"


def _ray(head: Head, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([RAY, *args], cwd=ROOT, env=head.env, capture_output=True, text=True, timeout=timeout)


# The default run stops after oof (the stage that distributes the most); the whole demo job is opt-in.
@pytest.mark.parametrize(
    "until", ["oof", pytest.param(None, id="all-stages", marks=[pytest.mark.slow, pytest.mark.cluster])]
)
def test_demo_job_submitted_to_a_ray_head(ray_head, tmp_path, until):
    run_root = tmp_path / "runs"
    job_id = f"hardmine-e2e-{uuid.uuid4().hex[:8]}"
    submit_args = (
        "job", "submit", "--address", ray_head.address, "--submission-id", job_id, "--no-wait",
        "--working-dir", ".", "--runtime-env-json", json.dumps({"excludes": EXCLUDES}),
        "--", "python", "jobs/mine.py", "jobs/configs/demo.yaml",
        "--set", "data.demo.n_rows=300", "--set", "oof.folds=3", "--set", "oof.epochs=2", "--set", f"run_root={run_root}",
        *(["--until", until] if until else []),
    )  # fmt: skip
    # the dashboard answers before the head's job agent registers (seconds on a loaded machine):
    # Ray then refuses with "No available agent to submit job, please try again later"
    for _ in range(30):
        submit = _ray(ray_head, *submit_args)
        if submit.returncode == 0 or "No available agent" not in submit.stderr + submit.stdout:
            break
        time.sleep(2)
    assert submit.returncode == 0, f"{submit.stdout[-3000:]}\n{submit.stderr[-3000:]}"

    deadline, status = time.time() + (420 if until else 1500), None
    while time.time() < deadline:
        status = _get_json(f"{ray_head.address}/api/jobs/{job_id}")["status"]
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(2)
    logs = _ray(ray_head, "job", "logs", "--address", ray_head.address, job_id)
    if status not in ("SUCCEEDED", "FAILED", "STOPPED"):
        _ray(ray_head, "job", "stop", "--address", ray_head.address, job_id)
    assert status == "SUCCEEDED", f"job {job_id} ended {status}:\n{logs.stdout[-6000:]}\n{logs.stderr[-2000:]}"
    cli_status = _ray(ray_head, "job", "status", "--address", ray_head.address, job_id)
    assert cli_status.returncode == 0 and f"Job '{job_id}' succeeded" in cli_status.stdout, cli_status

    # the job joined this head instead of starting a local Ray, and ran the stages
    assert logs.returncode == 0
    assert "joined Ray cluster" in logs.stdout and "started a local Ray" not in logs.stdout, logs.stdout[-6000:]
    assert "[oof] done" in logs.stdout, logs.stdout[-6000:]

    run = run_root / "demo"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["prepare"]["status"] == "done" and manifest["stages"]["oof"]["status"] == "done"
    assert all(rec["status"] == "done" for rec in manifest["stages"].values()), manifest["stages"]
    if until:
        # the oof stage records each ensemble member as a helper stage of its own ("oof:<member>")
        assert {s.split(":")[0] for s in manifest["stages"]} == {"prepare", "oof"}, manifest["stages"]
    else:  # every stage ran on the cluster (some record helper stages of their own)
        assert set(STAGES) <= set(manifest["stages"]), manifest["stages"]
    assert until or (run / "report.html").stat().st_size > 0
    assert manifest["config"]["oof"]["folds"] == 3 and manifest["config"]["data"]["demo"]["n_rows"] == 300
    oof = pq.read_table(run / "oof.parquet")
    ids = oof.column("id").to_pylist()
    dataset_ids = pq.read_table(run / "dataset.parquet").column("id").to_pylist()
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(dataset_ids)
    held_out = pq.read_table(run / "test.parquet").num_rows if (run / "test.parquet").exists() else 0
    assert len(ids) + held_out == 300  # the demo's hold-out is carved before mining and never mined
    assert set(oof.column("fold").to_pylist()) == {0, 1, 2}
    assert all(len(e) == 2 for e in oof.column("epoch_probs").to_pylist()[:5])

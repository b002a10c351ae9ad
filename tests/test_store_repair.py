"""The run store repairs itself: manifest backup and rebuild, output checks, the run lock (issue 15, item 4).

No Ray: the stages here are plain functions through ``run_stage``; the one pipeline run is the
``prepare`` stage of a tiny CSV. The lock is tested across two real processes.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hardmine.pipeline import Context, run_stage
from hardmine.store import MANIFEST, MANIFEST_BAK, RunLockedError, RunStore, RunStoreError

ROOT = Path(__file__).resolve().parents[1]


def _store(path: Path, logs: list | None = None) -> RunStore:
    return RunStore(str(path), log=logs.append if logs is not None else None)


def _ctx(store: RunStore, logs: list) -> Context:
    return Context(cfg=None, store=store, log=logs.append)  # run_stage never reads cfg


def _dataset() -> pa.Table:
    return pa.table({
        "id": ["a", "b", "c", "d"], "text": ["w x", "y z", "u v", "s t"],
        "label": pa.array([1, 0, 2, 1], pa.int32()), "label_name": ["shipping", "billing", "account", "shipping"],
    })


def _stage(store: RunStore, calls: list, rows: int = 3):
    """A stage writing a Parquet file and a model directory (like oof's models/<member>/fold-<k>)."""

    def fn():
        calls.append(1)
        store.write_table("out.parquet", pa.table({"x": list(range(rows))}))
        with store.local_dir("models/frozen/fold-0") as d:
            Path(d, "head.pt").write_bytes(b"weights" * 10)
            Path(d, "meta.json").write_text("{}")
        return {"rows": rows}

    return fn


OUTPUTS = ["out.parquet", "models/frozen/fold-0"]


def _run(store: RunStore, calls: list, logs: list, fp: str = "fp1") -> dict:
    return run_stage(_ctx(store, logs), "s", fp, OUTPUTS, _stage(store, calls))


# ----------------------------------------------------------------------------- manifest: backup, fallback, rebuild


def test_each_manifest_write_keeps_the_previous_good_version_as_backup(tmp_path):
    store = _store(tmp_path / "run")
    store.mark("a", "done", fingerprint="f1")
    assert not (tmp_path / "run" / MANIFEST_BAK).exists()  # nothing before the first write
    first = json.loads((tmp_path / "run" / MANIFEST).read_text())
    store.mark("b", "done", fingerprint="f2")
    assert json.loads((tmp_path / "run" / MANIFEST_BAK).read_text()) == first
    assert set(store.manifest()["stages"]) == {"a", "b"}
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("damage", ["truncated", "empty", "not_json", "list", "null", "stages_not_object"])
def test_a_damaged_manifest_falls_back_to_the_backup(tmp_path, damage):
    run = tmp_path / "run"
    store = _store(run)
    store.mark("a", "done", fingerprint="f1")
    store.mark("b", "done", fingerprint="f2")  # the backup now records a only
    text = (run / MANIFEST).read_text()
    broken = {
        "truncated": text[: len(text) // 2], "empty": "", "not_json": "garbage\x00", "list": "[1, 2]", "null": "null",
        "stages_not_object": '{"stages": [1]}',
    }[damage]
    (run / MANIFEST).write_text(broken)

    logs: list[str] = []
    reader = _store(run, logs)
    for _ in range(3):
        m = reader.manifest()
        assert set(m["stages"]) == {"a"} and m["stages"]["a"]["status"] == "done"
    assert len(logs) == 1 and MANIFEST_BAK in logs[0] and "damaged" in logs[0], logs  # said once
    assert reader.is_done("a", "f1", []) and not reader.is_done("b", "f2", [])  # b was in the lost write: re-runs

    reader.mark("b", "done", fingerprint="f2")  # the next write repairs the manifest
    assert set(json.loads((run / MANIFEST).read_text())["stages"]) == {"a", "b"}
    assert (run / "manifest.json.corrupt").read_text() == broken  # kept for inspection
    assert set(json.loads((run / MANIFEST_BAK).read_text())["stages"]) == {"a"}  # the good backup was not overwritten


def test_damaged_manifest_without_a_backup_warns_through_warnings(tmp_path):
    run = tmp_path / "run"
    store = _store(run)
    store.mark("a", "done", fingerprint="f1")
    store.mark("a", "done", fingerprint="f1")
    (run / MANIFEST).write_text("{")
    with pytest.warns(UserWarning, match="previous good version"):
        assert _store(run).manifest()["stages"]["a"]["status"] == "done"


def test_manifest_and_backup_both_garbage_rebuilds_keeps_labels_and_reruns_stages(tmp_path):
    run = tmp_path / "run"
    store = _store(run)
    store.write_table("dataset.parquet", _dataset())
    store.write_table("review/versions/v1.parquet", _dataset())
    store.write_table("review/versions/v2.parquet", _dataset())
    store.update_manifest(labels=["billing", "shipping", "account"], dataset_version=2)
    calls: list = []
    logs: list[str] = []
    _run(store, calls, logs)
    _run(store, calls, logs)
    assert len(calls) == 1 and any("[s] up to date" in line for line in logs)

    (run / MANIFEST).write_bytes(b'{"stages": {"s": {"status": "do')
    (run / MANIFEST_BAK).write_bytes(b"\x00\x01 not json either")
    logs.clear()
    store = _store(run, logs)
    m = store.manifest()  # never a JSONDecodeError
    assert m["stages"] == {}
    assert m["labels"] == ["billing", "shipping", "account"] and m["dataset_version"] == 2
    assert "rebuilt" in m and "manifest.json" in m["rebuilt"]["reason"]
    assert any("rebuilt a minimal manifest" in line and "labels, dataset_version" in line for line in logs), logs

    _run(store, calls, logs)  # no stage is considered done: it runs again
    assert len(calls) == 2 and any("[s] running" in line for line in logs)
    m = json.loads((run / MANIFEST).read_text())
    assert m["stages"]["s"]["status"] == "done" and m["labels"] == ["billing", "shipping", "account"]
    _run(store, calls, logs)
    assert len(calls) == 2


def test_missing_manifest_with_a_backup_uses_the_backup(tmp_path):
    run = tmp_path / "run"
    store = _store(run)
    store.mark("a", "done", fingerprint="f1")
    store.mark("b", "done", fingerprint="f1")
    (run / MANIFEST).unlink()
    logs: list[str] = []
    assert set(_store(run, logs).manifest()["stages"]) == {"a"} and "missing" in logs[0]


def test_an_unusable_manifest_raises_a_clear_error_naming_the_file(tmp_path):
    run = tmp_path / "run"
    (run / MANIFEST).mkdir(parents=True)  # not a file: nothing can read or replace it
    store = _store(run)
    with pytest.raises(RunStoreError, match=r"manifest\.json is not a file: delete it") as e:
        store.manifest()
    assert isinstance(e.value, ValueError) and str(run) in str(e.value)


def test_a_new_run_has_an_empty_manifest_and_no_warning(tmp_path):
    logs: list[str] = []
    assert _store(tmp_path / "run", logs).manifest() == {"stages": {}} and logs == []


# ----------------------------------------------------------------------------- stage outputs


def test_deleted_or_emptied_model_directory_makes_the_stage_run_again(tmp_path):
    run = tmp_path / "run"
    store = _store(run)
    calls: list = []
    logs: list[str] = []
    _run(store, calls, logs)
    assert store.is_done("s", "fp1", OUTPUTS)
    rec = store.manifest()["stages"]["s"]
    assert rec["rows"] == {"out.parquet": 3}
    assert rec["signatures"]["models/frozen/fold-0"]["files"] == 2 and rec["signatures"]["out.parquet"]["rows"] == 3

    store.delete("models")
    assert store.why_not_done("s", "fp1", OUTPUTS) == "models/frozen/fold-0 is missing"
    _run(store, calls, logs)
    assert len(calls) == 2 and any("outputs damaged" in line for line in logs)
    assert (run / "models" / "frozen" / "fold-0" / "head.pt").exists()

    for f in (run / "models" / "frozen" / "fold-0").iterdir():
        f.unlink()
    assert store.why_not_done("s", "fp1", OUTPUTS) == "models/frozen/fold-0/ is empty"
    _run(store, calls, logs)
    assert len(calls) == 3

    (run / "models" / "frozen" / "fold-0" / "meta.json").unlink()  # one file of the directory lost
    assert "changed since the stage completed (files 1, was 2)" in store.why_not_done("s", "fp1", OUTPUTS)
    # a directory output given with a trailing slash
    assert store.why_not_done("s", "fp1", ["models/"]) is None
    assert not store.is_done("s", "fp1", ["nothing-here/"])


def test_truncated_parquet_output_reruns_instead_of_crashing(tmp_path):
    run = tmp_path / "run"
    store = _store(run)
    calls: list = []
    logs: list[str] = []
    _run(store, calls, logs)
    data = (run / "out.parquet").read_bytes()
    (run / "out.parquet").write_bytes(data[: len(data) - 20])  # the footer is gone
    why = store.why_not_done("s", "fp1", OUTPUTS)
    assert why.startswith("out.parquet is not a readable Parquet file"), why
    _run(store, calls, logs)
    assert len(calls) == 2 and pq.read_table(run / "out.parquet").num_rows == 3
    _run(store, calls, logs)
    assert len(calls) == 2


def test_parquet_output_with_other_rows_or_size_is_not_up_to_date(tmp_path):
    run = tmp_path / "run"
    store = _store(run)
    calls: list = []
    _run(store, calls, [])
    pq.write_table(pa.table({"x": [1, 2]}), run / "out.parquet")
    assert "out.parquet has 2 rows, 3 when the stage completed" == store.why_not_done("s", "fp1", OUTPUTS)
    _run(store, calls, [])
    pq.write_table(pa.table({"x": [7, 8, 9], "y": ["a", "b", "c"]}), run / "out.parquet")  # same rows, other file
    assert "out.parquet changed since the stage completed (size" in store.why_not_done("s", "fp1", OUTPUTS)


def test_records_without_signatures_still_check_existence_rows_and_footer(tmp_path):
    """Manifests written before signatures existed: rows recorded by run_stage are still compared."""
    store = _store(tmp_path / "run")
    store.write_table("o.parquet", pa.table({"x": [1, 2]}))
    store.mark("s", "done", fingerprint="f", rows={"o.parquet": 2})  # no outputs=: no signatures recorded
    assert "signatures" not in store.manifest()["stages"]["s"]
    assert store.is_done("s", "f", ["o.parquet"])
    store.write_table("o.parquet", pa.table({"x": [1]}))
    assert not store.is_done("s", "f", ["o.parquet"])


def test_a_stage_that_does_not_write_its_outputs_is_reported(tmp_path):
    store = _store(tmp_path / "run")
    logs: list[str] = []
    run_stage(_ctx(store, logs), "s", "f", ["never.parquet"], lambda: {})
    assert any("finished but never.parquet is missing" in line for line in logs), logs
    assert not store.is_done("s", "f", ["never.parquet"])


# ----------------------------------------------------------------------------- the run lock


def _cfg(tmp_path: Path):
    """The cheapest real config: a 36-row CSV (only its prepare stage runs here, no Ray)."""
    from hardmine.config import from_dict

    words = {"billing": "invoice charge bill payment card", "shipping": "package delivery courier parcel box",
             "account": "password login account email reset"}
    lines = ["id,text,label"] + [f"{lab}-{i},my {' '.join(w.split()[i % 5:] + w.split()[:i % 5])} please help,{lab}"
                                 for lab, w in words.items() for i in range(12)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    return from_dict({"name": "demo", "run_root": str(tmp_path / "runs"), "data": {"path": str(tmp_path / "d.csv")}})

CHILD = """
import sys, time
from hardmine.store import RunStore
with RunStore(sys.argv[1]).lock(command="child-sleeper"):
    print("locked", flush=True)
    time.sleep(120)
"""


def _child(run: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(run)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.strip() == "locked", (line, p.poll())
    return p


def test_a_second_process_is_refused_and_a_dead_holder_lock_is_taken_over(tmp_path):
    run = tmp_path / "runs" / "demo"
    child = _child(run)
    try:
        holder = json.loads((run / ".lock").read_text())
        assert holder["pid"] == child.pid and holder["host"] == socket.gethostname() and holder["command"] == "child-sleeper"
        assert "started" in holder
        logs: list[str] = []
        store = _store(run, logs)
        with pytest.raises(RunLockedError) as e:
            with store.lock():
                pytest.fail("acquired a lock another live process holds")
        msg = str(e.value)
        assert f"is in use by pid {child.pid} on host {socket.gethostname()}" in msg, msg
        assert "child-sleeper" in msg and f"delete {run}/.lock" in msg and "Wait for it to finish" in msg
        assert e.value.holder["pid"] == child.pid and isinstance(e.value, RunStoreError)
        assert json.loads((run / ".lock").read_text())["pid"] == child.pid  # the refusal left it alone
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()

    assert (run / ".lock").exists()  # killed: its lock stays behind, stale
    with store.lock(command="taker"):
        holder = json.loads((run / ".lock").read_text())
        assert holder["pid"] == os.getpid() and holder["command"] == "taker"
    assert any("took over the lock" in line and f"pid {child.pid} is no longer running" in line for line in logs), logs
    assert not (run / ".lock").exists()


def test_run_all_refuses_a_run_locked_by_another_process(tmp_path):
    from hardmine.pipeline import run_all

    cfg = _cfg(tmp_path)
    child = _child(Path(cfg.run_dir))
    try:
        logs: list[str] = []
        with pytest.raises(RunLockedError, match=f"pid {child.pid}"):
            run_all(cfg, log=logs.append, until="prepare")
        assert not any("[prepare]" in line for line in logs)
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()


def test_lock_is_released_after_an_exception_and_is_reentrant(tmp_path):
    run = tmp_path / "run"
    store = _store(run)
    with pytest.raises(RuntimeError, match="boom"):
        with store.lock():
            assert (run / ".lock").exists() and store.holds_lock()
            raise RuntimeError("boom")
    assert not (run / ".lock").exists() and not store.holds_lock()

    with store.lock():
        with _store(run).lock():  # another RunStore of the same run in the same process: re-entrant
            assert store.lock_holder()["pid"] == os.getpid()
        assert (run / ".lock").exists()  # still held by the outer block
    assert not (run / ".lock").exists() and store.lock_holder() is None


def test_lock_from_another_host_is_refused_and_an_old_unreadable_lock_is_taken_over(tmp_path):
    run = tmp_path / "run"
    logs: list[str] = []
    store = _store(run, logs)
    (run / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "started": "2024-01-01T00:00:00Z", "command": "x"}))
    with pytest.raises(RunLockedError, match="pid 1 on host elsewhere.example since 2024-01-01T00:00:00Z"):
        with store.lock():
            pass
    (run / ".lock").write_text("{half")
    old = time.time() - 60
    os.utime(run / ".lock", (old, old))
    with store.lock():
        assert store.lock_holder()["pid"] == os.getpid()
    assert "took over" in logs[-1] and "unreadable" in logs[-1], logs
    assert not (run / ".lock").exists()


def test_run_all_holds_the_lock_and_a_rebuilt_manifest_reruns_prepare(tmp_path):
    from hardmine.pipeline import run_all

    cfg = _cfg(tmp_path)
    run = Path(cfg.run_dir)
    seen: list[bool] = []
    logs: list[str] = []

    def log(line: str) -> None:
        logs.append(line)
        seen.append((run / ".lock").exists())

    outer = RunStore(cfg.run_dir)
    with outer.lock():  # e.g. a sweep driver holding the run: run_all re-enters
        run_all(cfg, log=log, until="prepare")
        assert (run / ".lock").exists()
    assert seen and all(seen) and not (run / ".lock").exists()
    labels = json.loads((run / MANIFEST).read_text())["labels"]
    assert any("[prepare] running" in line for line in logs)

    logs.clear()
    run_all(cfg, log=log, until="prepare")
    assert any("[prepare] up to date" in line for line in logs)

    (run / MANIFEST).write_text('{"stages": {"prepare": ')
    (run / MANIFEST_BAK).write_text("")
    logs.clear()
    store = run_all(cfg, log=log, until="prepare")
    assert any("rebuilt a minimal manifest" in line for line in logs), logs
    assert any("[prepare] running" in line for line in logs)
    m = store.manifest()
    assert m["labels"] == labels and m["stages"]["prepare"]["status"] == "done" and m["config"]["name"] == "demo"
    assert not (run / ".lock").exists()

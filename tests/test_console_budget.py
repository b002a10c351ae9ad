"""What a person sees: the console output of a real run, counted.

The default test runs the cheap stages (TF-IDF folds on a real local Ray) and checks that no
Ray/Ray Data INFO line, no worker print and no library progress bar reaches the console, and that
the library logs went to RUN/logs/hardmine.log instead. The slow one runs the whole demo job
(every stage, the sweep included) and holds it to the README's budget of about 120 lines.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOISE = [
    re.compile(r"\bINFO\b.*--"),            # Ray / Ray Data INFO lines ("... INFO file.py:123 -- ...")
    re.compile(r"\(\w+ pid=\d+\)"),          # worker prints forwarded to the driver
    re.compile(r"logging_progress|streaming_executor"),
    re.compile(r"Loading weights|it/s\]"),   # library progress bars
    re.compile(r"Traceback"),
]


def _run(args: list[str], tmp_path: Path, timeout: int) -> tuple[subprocess.CompletedProcess, list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
    import tempfile

    # a Ray of its own, not the test session's (short: Ray's socket paths must stay under 107 bytes)
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="hm-", dir="/tmp")
    proc = subprocess.run([sys.executable, "-m", "hardmine", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    lines = (proc.stdout + proc.stderr).splitlines()
    return proc, lines


def _noise(lines: list[str]) -> list[str]:
    return [l for l in lines if any(p.search(l) for p in NOISE)]


def test_stages_up_to_select_print_a_few_lines_each(tmp_path):
    proc, lines = _run(["select", "jobs/configs/demo.yaml", "--set", f"run_root={tmp_path / 'runs'}",
                        "--set", "data.demo.n_rows=300", "--set", "oof.folds=3", "--set", "oof.backbones=[tfidf]"],
                       tmp_path, timeout=600)
    text = "\n".join(lines)
    assert proc.returncode == 0, text[-4000:]
    assert not _noise(lines), _noise(lines)
    assert len(lines) <= 45, f"{len(lines)} lines:\n{text}"
    for stage in ("prepare", "oof", "score", "select"):
        assert f"[{stage}] done" in text
    log = tmp_path / "runs" / "demo" / "logs" / "hardmine.log"
    assert log.exists() and "[oof] done" in log.read_text()  # hardmine's own lines are in the log file too
    # the tables the console leaves out are in the log file
    assert "hard samples per class" in log.read_text()


def test_detail_goes_to_the_log_file_and_to_the_console_only_with_verbose(tmp_path):
    import io
    import logging

    from hardmine.console import Console

    for verbose in (False, True):
        out = io.StringIO()
        c = Console(verbose=verbose, stream=out)
        log_path = c.attach(str(tmp_path / f"logs-{verbose}"))
        c.say("a line")
        c.detail("a table")
        logging.getLogger("ray.data").warning("a library warning")
        logging.getLogger("ray.data").warning("a library warning")
        c.detach()
        assert "a line" in out.getvalue()
        assert ("a table" in out.getvalue()) == verbose
        logged = Path(log_path).read_text()
        assert "a line" in logged and "a table" in logged and "a library warning" in logged
        summary = c.warning_summary()
        assert summary is not None and "2 library warning" in summary and "1 distinct" in summary


@pytest.mark.slow
def test_demo_job_fits_the_console_budget(tmp_path):
    proc, lines = _run(["run", "jobs/configs/demo.yaml", "--set", f"run_root={tmp_path / 'runs'}",
                        "--set", "data.demo.n_rows=600"], tmp_path, timeout=1800)
    text = "\n".join(lines)
    assert proc.returncode == 0, text[-4000:]
    noise = [l for l in _noise(lines)]
    assert not noise, noise
    assert len(lines) <= 120, f"{len(lines)} lines:\n{text}"
    assert "summary of" in text and ("best arm:" in text or "no arm beats the baseline" in text) and "look at:" in text
    # every artifact the report reads -- the JSON summaries (label_quality, analysis, evaluation,
    # sweep) and the manifest's stage summaries -- was written by the real stages: the report
    # renders every section from them, strictly (a section it cannot read would raise)
    from hardmine.report import NOT_RUN, build_report
    from hardmine.report.run import RunArtifacts
    from hardmine.store import RunStore

    store = RunStore(str(tmp_path / "runs" / "demo"))
    page = build_report(store, strict=True)
    assert NOT_RUN not in page and "could not be rendered" not in page
    run = RunArtifacts(store)
    for name in ("label_quality.json", "analysis/analysis.json", "evaluation/summary.json", "sweep/best.json"):
        assert run.json(name) is not None, name

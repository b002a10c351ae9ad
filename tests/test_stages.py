"""The stages are declared once (hardmine/pipeline/stages.py): their names and order, and their outputs as
README's data contract ("What a run writes") spells them. No Ray."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hardmine.config import from_dict
from hardmine.pipeline import STAGES, Context, fingerprint
from hardmine.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
NAMES = [s.name for s in STAGES]


def test_stage_names_are_unique_and_in_pipeline_order():
    assert len(set(NAMES)) == len(NAMES) and NAMES[0] == "prepare"
    for stage in STAGES:  # a stage runs after the one it reads
        assert stage.upstream is None or NAMES.index(stage.upstream) < NAMES.index(stage.name), stage
    assert [s.name for s in STAGES if s.upstream is None] == ["prepare"]


def test_cli_and_report_read_the_declaration():
    from hardmine.cli import build_parser
    from hardmine.report.sections.overview import STAGE_ORDER

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    up_to = [a.dest for a in sub._choices_actions if a.help.startswith("run the pipeline up to the ")]
    assert up_to == NAMES and all(n in sub.choices for n in NAMES)
    assert list(STAGE_ORDER) == NAMES


def _spells_stage_sequence(node: ast.AST) -> bool:
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        elts = node.elts
    elif isinstance(node, ast.Dict):
        elts = node.keys
    else:
        return False
    strings = {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return {"prepare", "oof", "holdout", "score"} <= strings


def test_no_other_module_spells_the_stage_sequence():
    declaration = ROOT / "hardmine" / "pipeline" / "stages.py"
    found = []
    for path in sorted((ROOT / "hardmine").rglob("*.py")):
        if path == declaration:
            continue
        found += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(ast.parse(path.read_text())) if _spells_stage_sequence(n)]
    assert not found, f"stage names spelled outside hardmine/pipeline/stages.py: {found}"


def test_the_declaration_imports_nothing_heavy():
    code = ("import sys, hardmine.pipeline.stages; "
            "print(sorted(m for m in ('pyarrow', 'torch', 'ray', 'numpy', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def _readme_rows() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## What a run writes\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2:
            rows[cells[0]] = " | ".join(cells[1:])
    return rows


@pytest.mark.parametrize("stage", STAGES, ids=str)
def test_declared_outputs_are_in_the_readme(stage):
    rows = _readme_rows()
    assert stage.name in rows, f"README's 'What a run writes' has no row for {stage.name}"
    missing = [o.path for o in stage.writes if o.path not in rows[stage.name]]
    assert not missing, f"README's row for {stage.name} does not mention {missing}"


def test_outputs_expand_per_config():
    cfg = from_dict({"name": "t", "data": {"path": "x.csv", "test_size": 0.2, "truth_path": "t.csv"},
                     "oof": {"backbones": ["tfidf", "frozen", "external"], "folds": 3, "probs_path": "p.parquet"}})
    outputs = {s.name: s.outputs(cfg) for s in STAGES}
    assert outputs["prepare"] == ["dataset.parquet", "test.parquet", "truth.parquet", "test_truth.parquet"]
    assert outputs["oof"] == ["oof.parquet", "oof/tfidf.parquet", "oof/frozen.parquet", "oof/external.parquet", "embeddings.parquet",
                              *[f"models/{b}/fold-{k}" for b in ("tfidf", "frozen") for k in range(3)]]
    assert outputs["holdout"] == ["test_probs.parquet", "test_embeddings.parquet"]
    assert outputs["augment"] == ["augmented.parquet", "selected_random.parquet", "augmented_random.parquet"]
    bare = from_dict({"name": "t", "data": {"path": "x.csv"}, "oof": {"backbones": ["tfidf"]}, "augment": {"random_control": False}})
    assert STAGES[0].outputs(bare) == ["dataset.parquet"]
    assert [s for s in STAGES if s == "augment"][0].outputs(bare) == ["augmented.parquet"]
    for stage in STAGES:  # every expanded path comes from a declared one
        for path in stage.outputs(cfg):
            assert any(re.fullmatch(re.escape(o.path).replace("<member>", r"[a-z]+").replace("fold\\-k", r"fold-\d+"), path)
                       for o in stage.writes), path


def test_fingerprint_follows_the_declaration(tmp_path):
    """Upstream fingerprint, then the sections' hash, then the extras; a stage without sections hashes none."""
    from hardmine.store import fingerprint_bytes

    cfg = from_dict({"name": "t", "run_root": str(tmp_path), "data": {"path": "x.csv", "test_size": 0.2}})
    store = RunStore(cfg.run_dir)
    store.mark("oof", "done", fingerprint="f00d")
    store.mark("score", "done", fingerprint="beef")
    ctx = Context(cfg, store)
    by_name = {s.name: s for s in STAGES}
    assert fingerprint(ctx, by_name["holdout"]) == fingerprint_bytes("f00d", "holdout")
    assert fingerprint(ctx, by_name["score"]) == fingerprint_bytes("f00d", cfg.section_hash("score"))
    assert fingerprint(ctx, by_name["select"]) == fingerprint_bytes("beef", cfg.section_hash("select", "seed"))
    with pytest.raises(RuntimeError, match="has not run"):
        fingerprint(ctx, by_name["augment"])


def test_no_module_over_500_lines():
    """README "How the code is laid out": every module does one job and stays under 500 lines."""
    from pathlib import Path

    import hardmine

    root = Path(hardmine.__file__).parent
    long = {str(p.relative_to(root)): n for p in root.rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert not long, f"modules over 500 lines: {long}"


def test_prepare_is_up_to_date_for_the_same_files_under_another_path(tmp_path, monkeypatch, capsys):
    """data.path spelled relative instead of absolute names the same content: nothing re-runs; other content does."""
    import yaml

    from hardmine import cli

    def rows(tag):
        return "id,text,label\n" + "".join(f"{tag}{c}{i},{tag} text number {i} about {c},{c}\n" for i in range(10) for c in ("a", "b"))

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.csv").write_text(rows("r"))
    (tmp_path / "other.csv").write_text(rows("s"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "t", "run_root": str(tmp_path / "runs"),
                                   "data": {"path": str(tmp_path / "d" / "train.csv"), "test_size": 0.2}}))
    assert cli.main(["prepare", str(cfg)]) == 0
    store = RunStore(str(tmp_path / "runs" / "t"))
    first = dict(store.manifest()["stages"]["prepare"])
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli.main(["prepare", str(cfg), "--set", "data.path=d/../d/train.csv"]) == 0
    assert "[prepare] up to date" in capsys.readouterr().out
    again = store.manifest()["stages"]["prepare"]
    assert (again["fingerprint"], again.get("updated")) == (first["fingerprint"], first.get("updated"))
    assert cli.main(["prepare", str(cfg), "--set", "data.path=other.csv"]) == 0
    assert store.manifest()["stages"]["prepare"]["fingerprint"] != first["fingerprint"]

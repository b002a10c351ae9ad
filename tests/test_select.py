"""Selection policies: known answers per rule, validation, invariants (hypothesis)."""
from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardmine.vocab import ACTIONS
from hardmine.select import SELECTION, max_prob, select, top_quantile_mask


def make(rows: list[dict], *, margin: bool = True) -> tuple[pa.Table, pa.Table]:
    """Scores + texts tables from row dicts; defaults: pred=label, p_true=1-hardness, no issue."""
    cols: dict[str, list] = {k: [] for k in (
        "id", "label", "pred", "p_true", "hardness", "margin", "entropy", "self_confidence",
        "is_label_issue", "issue_rank", "suggested_label", "suggested_confidence")}
    texts = []
    for i, r in enumerate(rows):
        h = r.get("hardness", 0.0)
        label = r.get("label", 0)
        pred = r.get("pred", label)
        p_true = r.get("p_true", 1.0 - h)
        top = r.get("top", p_true if pred == label else min(1.0, 1.0 - p_true))
        cols["id"].append(r.get("id", f"r{i:03d}"))
        cols["label"].append(label)
        cols["pred"].append(pred)
        cols["p_true"].append(p_true)
        cols["hardness"].append(h)
        cols["margin"].append(p_true - (top if pred != label else (1.0 - p_true)))
        cols["entropy"].append(0.5)
        cols["self_confidence"].append(p_true)
        cols["is_label_issue"].append(r.get("issue", False))
        cols["issue_rank"].append(r.get("issue_rank", 1 if r.get("issue") else -1))
        cols["suggested_label"].append(r.get("sugg", pred))
        cols["suggested_confidence"].append(r.get("conf", top))
        texts.append(r.get("text", "some text long enough"))
    types = {"label": pa.int32(), "pred": pa.int32(), "issue_rank": pa.int32(), "suggested_label": pa.int32(),
             "is_label_issue": pa.bool_(), "id": pa.string()}
    scores = pa.table({k: pa.array(v, types.get(k, pa.float32())) for k, v in cols.items()})
    if not margin:
        scores = scores.drop_columns(["margin"])
    ds = pa.table({"id": cols["id"], "text": texts, "label": pa.array(cols["label"], pa.int32()),
                   "label_name": [f"c{x}" for x in cols["label"]]})
    return scores, ds


def by_id(table: pa.Table) -> dict[str, dict]:
    return {r["id"]: r for r in table.to_pylist()}


# --------------------------------------------------------------------------- label issues


def test_label_issue_review_is_default_and_never_augmented():
    scores, ds = make([{"hardness": 0.99, "issue": True}] + [{"hardness": 0.1 * i} for i in range(9)])
    sel, summary = select(scores, ds, hardness_quantile=0.3)
    rows = by_id(sel)
    assert rows["r000"]["action"] == "review"
    assert rows["r000"]["rule"] == "label_issue->review"
    # quantile is over all rows: the issue row takes one of the 3 slots -> 2 augmented
    assert [r["id"] for r in sel.to_pylist() if r["action"] == "augment"] == ["r008", "r009"]
    assert rows["r008"]["rule"] == "hard:hardness_quantile=0.3"
    assert rows["r001"]["rule"] == "not_hard" and rows["r001"]["action"] == "none"
    assert summary["actions"] == {"augment": 2, "review": 1, "drop": 0, "relabel": 0, "none": 7}
    assert summary["rules"] == {"hard:hardness_quantile=0.3": 2, "label_issue->review": 1, "not_hard": 7}
    assert summary["n_hard"] == 2 and summary["n_label_issues"] == 1
    assert sel.schema == SELECTION


def test_label_issue_drop():
    scores, ds = make([{"hardness": 0.2, "issue": True}, {"hardness": 0.9}])
    sel, summary = select(scores, ds, hardness_quantile=0.5, issue_action="drop")
    rows = by_id(sel)
    assert (rows["r000"]["action"], rows["r000"]["rule"]) == ("drop", "label_issue->drop")
    assert rows["r001"]["action"] == "augment"
    assert summary["actions"]["drop"] == 1


def test_relabel_uses_suggestion_only_when_confident():
    scores, ds = make([
        {"label": 0, "pred": 1, "hardness": 0.9, "issue": True, "sugg": 1, "conf": 0.91},
        {"label": 0, "pred": 2, "hardness": 0.8, "issue": True, "sugg": 2, "conf": 0.5},
        {"label": 1, "pred": 1, "hardness": 0.4, "issue": True, "sugg": 1, "conf": 0.95},
        {"label": 1, "pred": 0, "hardness": 0.7, "issue": True, "sugg": -1, "conf": 0.99},
        {"label": 2, "hardness": 0.1},
    ])
    sel, summary = select(scores, ds, issue_action="relabel", relabel_min_confidence=0.7)
    rows = by_id(sel)
    assert rows["r000"]["action"] == "relabel"
    assert rows["r000"]["rule"] == "label_issue->relabel(conf=0.91)"
    assert rows["r000"]["new_label"] == 1 and rows["r000"]["label"] == 0
    assert rows["r001"]["action"] == "review"
    assert rows["r001"]["rule"] == "label_issue->review(conf=0.500<0.7)"
    assert rows["r001"]["new_label"] == 0
    assert rows["r002"]["rule"] == "label_issue->review(suggested_label=label)"
    assert rows["r003"]["rule"] == "label_issue->review(no_suggested_label)"
    assert rows["r004"]["new_label"] == 2
    # rule families in the summary drop the parenthesised details
    assert summary["rules"]["label_issue->relabel"] == 1
    assert summary["rules"]["label_issue->review"] == 3
    # the threshold is inclusive
    sel2, _ = select(scores, ds, issue_action="relabel", relabel_min_confidence=0.5)
    assert by_id(sel2)["r001"]["action"] == "relabel" and by_id(sel2)["r001"]["new_label"] == 2


def test_keep_treats_issues_as_ordinary_and_says_so():
    scores, ds = make([
        {"hardness": 0.95, "issue": True},
        {"hardness": 0.05, "issue": True},
        {"hardness": 0.5},
        {"hardness": 0.1},
    ])
    sel, _ = select(scores, ds, hardness_quantile=0.5, issue_action="keep")
    rows = by_id(sel)
    assert rows["r000"]["action"] == "augment"
    assert rows["r000"]["rule"] == "label_issue->keep;hard:hardness_quantile=0.5"
    assert rows["r001"]["rule"] == "label_issue->keep;not_hard" and rows["r001"]["action"] == "none"
    assert rows["r002"]["rule"] == "hard:hardness_quantile=0.5"
    assert rows["r003"]["rule"] == "not_hard"


# --------------------------------------------------------------------------- hard set


def test_p_true_max_alone_and_combined_with_quantile():
    rows = [{"hardness": h} for h in (0.9, 0.7, 0.65, 0.3, 0.1, 0.0)]  # p_true = 0.1 0.3 0.35 0.7 0.9 1
    scores, ds = make(rows)
    sel, _ = select(scores, ds, hardness_quantile=None, p_true_max=0.35)
    aug = [r["id"] for r in sel.to_pylist() if r["action"] == "augment"]
    assert aug == ["r000", "r001", "r002"]
    assert by_id(sel)["r000"]["rule"] == "hard:p_true<=0.35"
    sel, summary = select(scores, ds, hardness_quantile=0.5, p_true_max=0.2)
    assert [r["id"] for r in sel.to_pylist() if r["action"] == "augment"] == ["r000"]
    assert by_id(sel)["r000"]["rule"] == "hard:hardness_quantile=0.5&p_true<=0.2"
    assert summary["hardness_threshold"] == pytest.approx(0.65)


def test_quantile_size_and_tie_break_are_deterministic():
    hardness = np.array([0.5] * 10)
    ids = [f"x{i}" for i in range(10)]
    a = top_quantile_mask(hardness, 0.3, ids, seed=0)
    assert a.sum() == 3
    assert (a == top_quantile_mask(hardness, 0.3, ids, seed=0)).all()
    masks = {tuple(top_quantile_mask(hardness, 0.3, ids, seed=s)) for s in range(8)}
    assert len(masks) > 1  # the seed decides which tied rows win
    assert top_quantile_mask(np.arange(7.0), 1.0).all()
    assert top_quantile_mask(np.arange(10.0), 0.25).sum() == 3  # ceil(2.5)
    assert list(np.flatnonzero(top_quantile_mask(np.arange(10.0), 0.2))) == [8, 9]


# --------------------------------------------------------------------------- exclusions


def test_max_confidence_sends_confident_other_class_to_review():
    scores, ds = make([
        {"label": 0, "pred": 1, "hardness": 0.97, "top": 0.96},  # confidently another class
        {"label": 0, "pred": 1, "hardness": 0.6, "top": 0.55},  # unsure: augment
        {"label": 1, "pred": 1, "hardness": 0.95, "p_true": 0.05, "top": 0.05},  # pred == label
        {"label": 1, "hardness": 0.0},
    ])
    np.testing.assert_allclose(max_prob(scores)[:2], [0.96, 0.55], atol=1e-6)
    sel, summary = select(scores, ds, hardness_quantile=0.75, max_confidence=0.9)
    rows = by_id(sel)
    assert (rows["r000"]["action"], rows["r000"]["rule"]) == ("review", "excluded:max_confidence->review")
    assert rows["r001"]["action"] == "augment"
    assert rows["r002"]["action"] == "augment"
    assert summary["actions"]["review"] == 1
    # a probs column is used when present
    probs = pa.array([[0.04, 0.96], [0.45, 0.55], [0.05, 0.95], [1.0, 0.0]], pa.list_(pa.float32()))
    sel2, _ = select(scores.drop_columns(["margin"]).append_column("probs", probs), ds,
                     hardness_quantile=0.75, max_confidence=0.9)
    assert sel2.column("action").to_pylist() == sel.column("action").to_pylist()


def test_max_confidence_needs_a_top_probability():
    scores, ds = make([{"hardness": 0.5}], margin=False)
    with pytest.raises(ValueError, match="max_confidence"):
        select(scores, ds, max_confidence=0.9)


def test_classes_min_length_and_their_order():
    scores, ds = make([
        {"label": 0, "hardness": 0.9, "text": "short"},
        {"label": 1, "hardness": 0.8, "text": "short"},  # fails both: classes is checked first
        {"label": 1, "hardness": 0.7, "text": "long enough text"},
        {"label": 0, "hardness": 0.6, "text": "long enough text"},
        {"label": 0, "hardness": 0.0, "text": "x"},
    ])
    sel, summary = select(scores, ds, hardness_quantile=0.8, classes=[0], min_length=10)
    rows = by_id(sel)
    assert rows["r000"]["rule"] == "excluded:min_length" and rows["r000"]["action"] == "none"
    assert rows["r001"]["rule"] == "excluded:classes"
    assert rows["r002"]["rule"] == "excluded:classes"
    assert rows["r003"]["action"] == "augment"
    assert rows["r004"]["rule"] == "not_hard"
    assert summary["rules"]["excluded:classes"] == 2
    # min_length counts characters (Korean syllables are one each)
    ko_scores, ko_ds = make([{"hardness": 0.9, "text": "환불해주세요"}, {"hardness": 0.8, "text": "환불"}])
    sel, _ = select(ko_scores, ko_ds, hardness_quantile=1.0, min_length=6)
    assert sel.column("action").to_pylist() == ["augment", "none"]


def test_max_per_class_keeps_hardest_and_breaks_ties_deterministically():
    rows = [{"label": 0, "hardness": h} for h in (0.9, 0.8, 0.7)] + [
        {"label": 1, "hardness": 0.85, "id": f"t{i}"} for i in range(4)
    ]
    scores, ds = make(rows)
    sel, summary = select(scores, ds, hardness_quantile=1.0, max_per_class=2)
    by = by_id(sel)
    assert [by[i]["action"] for i in ("r000", "r001", "r002")] == ["augment", "augment", "none"]
    assert by["r002"]["rule"] == "excluded:max_per_class"
    tied = [r for r in sel.to_pylist() if r["label"] == 1 and r["action"] == "augment"]
    assert len(tied) == 2
    assert summary["per_class"]["1"]["augment"] == 2 and summary["per_class"]["1"]["none"] == 2
    again, _ = select(scores, ds, hardness_quantile=1.0, max_per_class=2)
    assert again.equals(sel)
    winners = {
        tuple(r["id"] for r in select(scores, ds, hardness_quantile=1.0, max_per_class=2, seed=s)[0].to_pylist()
              if r["label"] == 1 and r["action"] == "augment")
        for s in range(10)
    }
    assert len(winners) > 1  # the seed picks among tied rows


def test_summary_is_json_and_consistent():
    rng = np.random.default_rng(1)
    rows = [{"label": int(rng.integers(0, 3)), "hardness": float(rng.random()), "issue": bool(rng.random() < 0.2)}
            for _ in range(50)]
    scores, ds = make(rows)
    sel, summary = select(scores, ds, hardness_quantile=0.3, max_per_class=3)
    json.dumps(summary)
    assert summary["n"] == 50 == sum(summary["actions"].values()) == sum(summary["rules"].values())
    assert sum(sum(c.values()) for c in summary["per_class"].values()) == 50
    assert summary["params"]["max_per_class"] == 3
    acts = sel.column("action").to_pylist()
    assert all(summary["actions"][a] == acts.count(a) for a in ACTIONS)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hardness_quantile": 0.0}, "hardness_quantile"),
        ({"hardness_quantile": 1.5}, "hardness_quantile"),
        ({"hardness_quantile": float("nan")}, "hardness_quantile"),
        ({"hardness_quantile": None}, "no hard-set rule"),
        ({"p_true_max": 1.2}, "p_true_max"),
        ({"max_confidence": 0.0}, "max_confidence"),
        ({"min_length": -1}, "min_length"),
        ({"classes": []}, "classes"),
        ({"classes": [0, -2]}, "classes"),
        ({"max_per_class": 0}, "max_per_class"),
        ({"issue_action": "augment"}, "issue_action"),
        ({"relabel_min_confidence": 2}, "relabel_min_confidence"),
        ({"seed": -1}, "seed"),
    ],
)
def test_parameters_are_validated(kwargs, match):
    scores, ds = make([{"hardness": 0.5}])
    with pytest.raises(ValueError, match=match):
        select(scores, ds, **kwargs)


def test_bad_tables_name_rows_and_fields():
    scores, ds = make([{"hardness": 0.5, "id": "a"}, {"hardness": 0.2, "id": "a"}])
    with pytest.raises(ValueError, match="duplicate ids: 'a'"):
        select(scores, ds)
    scores, ds = make([{"hardness": 0.5}, {"hardness": 0.2}])
    with pytest.raises(ValueError, match=r"no text: 'r001'"):
        select(scores, ds.slice(0, 1))
    bad = scores.set_column(scores.schema.get_field_index("hardness"), "hardness",
                            pa.array([0.1, float("nan")], pa.float32()))
    with pytest.raises(ValueError, match=r"'hardness' is NaN/inf in rows 1"):
        select(bad, ds)
    with pytest.raises(ValueError, match="no column 'is_label_issue'"):
        select(scores.drop_columns(["is_label_issue"]), ds)
    with pytest.raises(ValueError, match="no column 'suggested_confidence'"):
        issue = scores.set_column(scores.schema.get_field_index("is_label_issue"), "is_label_issue",
                                  pa.array([True, False]))
        select(issue.drop_columns(["suggested_confidence"]), ds, issue_action="relabel")


# --------------------------------------------------------------------------- invariants


@st.composite
def cases(draw):
    n = draw(st.integers(1, 40))
    k = draw(st.integers(1, 4))
    rows = []
    for i in range(n):
        label = draw(st.integers(0, k - 1))
        pred = draw(st.integers(0, k - 1))
        h = draw(st.sampled_from([0.0, 0.25, 0.5, 0.75, 0.9, 1.0]))
        rows.append({
            "id": f"id{draw(st.integers(0, 10**6))}_{i}", "label": label, "pred": pred, "hardness": h,
            "issue": draw(st.booleans()), "sugg": draw(st.integers(-1, k - 1)),
            "conf": draw(st.floats(0, 1)), "text": "a" * draw(st.integers(0, 12)),
            "top": draw(st.floats(0.3, 1.0)),
        })
    params = {
        "hardness_quantile": draw(st.sampled_from([None, 0.1, 0.5, 1.0])),
        "p_true_max": draw(st.sampled_from([None, 0.3, 0.8])),
        "max_confidence": draw(st.sampled_from([None, 0.7])),
        "min_length": draw(st.sampled_from([0, 5])),
        "classes": draw(st.sampled_from([None, [0], [0, 1]])),
        "max_per_class": draw(st.sampled_from([None, 1, 3])),
        "issue_action": draw(st.sampled_from(["review", "drop", "relabel", "keep"])),
        "seed": draw(st.integers(0, 3)),
    }
    if params["hardness_quantile"] is None and params["p_true_max"] is None:
        params["hardness_quantile"] = 0.2
    return rows, params


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_invariants(case):
    rows, params = case
    scores, ds = make(rows)
    sel, summary = select(scores, ds, **params)
    out = sel.to_pylist()
    assert [r["id"] for r in out] == scores.column("id").to_pylist()  # every id once, same order
    assert all(r["action"] in ACTIONS for r in out)
    n = len(rows)
    qmask = (top_quantile_mask(np.array([r["hardness"] for r in rows]), params["hardness_quantile"],
                               [r["id"] for r in rows], params["seed"])
             if params["hardness_quantile"] else np.ones(n, bool))
    per_class: dict[int, int] = {}
    for r, src, inq in zip(out, rows, qmask):
        if r["action"] != "relabel":
            assert r["new_label"] == r["label"]
        else:
            assert r["new_label"] == src["sugg"] != src["label"] and np.float32(src["conf"]) >= 0.7
        if src["issue"] and params["issue_action"] != "keep":
            assert r["action"] != "augment" and r["rule"].startswith("label_issue->")
        if src["issue"] and params["issue_action"] == "keep":
            assert r["rule"].startswith("label_issue->keep;")
        if r["action"] == "augment":
            per_class[r["label"]] = per_class.get(r["label"], 0) + 1
            assert inq
            if params["p_true_max"] is not None:
                assert 1.0 - src["hardness"] <= params["p_true_max"] + 1e-6
            assert len(src["text"]) >= params["min_length"]
            if params["classes"] is not None:
                assert r["label"] in params["classes"]
            if params["max_confidence"] is not None and src["pred"] != src["label"]:
                assert src["top"] <= params["max_confidence"] + 1e-6
    if params["max_per_class"] is not None:
        assert all(v <= params["max_per_class"] for v in per_class.values())
    assert sum(summary["actions"].values()) == n
    again, summary2 = select(scores, ds, **params)
    assert again.equals(sel) and summary2 == summary


def test_on_a_real_scores_table_from_cleanlab():
    scoring = pytest.importorskip("hardmine.scoring")
    rng = np.random.default_rng(0)
    n, k = 300, 3
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 3.0 * np.eye(k)[labels]
    flip = rng.random(n) < 0.1
    labels = np.where(flip, (labels + 1) % k, labels)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ids = [f"s{i}" for i in range(n)]
    scores, _ = scoring.score_table(ids, labels, probs.astype(np.float32))
    ds = pa.table({"id": ids, "text": ["text " * (i % 5 + 1) for i in range(n)]})
    sel, summary = select(scores, ds, hardness_quantile=0.2, max_confidence=0.8, issue_action="relabel",
                          relabel_min_confidence=0.5)
    issue = scores.column("is_label_issue").to_numpy(zero_copy_only=False)
    actions = np.array(sel.column("action").to_pylist())
    assert issue.sum() > 0
    assert not (actions[issue] == "augment").any()
    assert summary["actions"]["augment"] > 0
    assert summary["actions"]["relabel"] + summary["actions"]["review"] >= issue.sum()
    top = probs.max(axis=1)
    pred = probs.argmax(axis=1)
    aug = actions == "augment"
    assert not (aug & (top > 0.8) & (pred != labels)).any()
    # on a real table max_prob from p_true and margin is the top probability
    assert np.allclose(max_prob(scores), top, atol=1e-5)
    assert math.isclose(sum(summary["actions"].values()), n)

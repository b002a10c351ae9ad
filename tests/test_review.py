"""Review queues: export -> annotate -> import round trips (CSV, Label Studio), AL ordering."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from hardmine import review
from hardmine.schema import DATASET

LABELS = ["긍정", "부정", "중립"]  # positive, negative, neutral
NOW = datetime(2025, 3, 1, 12, 30, tzinfo=timezone.utc)
KOREAN = ["정말 좋아요, 또 살게요!", "배송이 너무 늦었어요...", "그냥 그래요", "최고의 제품 \"강추\", 쉼표도"]


def _dataset_and_probs(n: int = 60, seed: int = 0):
    """Synthetic labelled set with confident pred_probs and six flipped labels."""
    rng = np.random.default_rng(seed)
    true = np.arange(n) % 3
    probs = rng.dirichlet(np.ones(3) * 0.5, size=n) * 0.15
    probs[np.arange(n), true] += 0.85
    probs /= probs.sum(axis=1, keepdims=True)
    given = true.copy()
    flipped = np.array([3, 10, 17, 25, 40, 52])
    given[flipped] = (true[flipped] + 1) % 3
    ids = [f"s{i:03d}" for i in range(n)]
    texts = [f"{KOREAN[i % len(KOREAN)]} #{i}" for i in range(n)]
    ds = pa.table(
        {
            "id": ids,
            "text": texts,
            "label": pa.array(given, pa.int32()),
            "label_name": [LABELS[k] for k in given],
        },
        schema=DATASET,
    )
    return ds, probs, given, flipped


def _scores(ds: pa.Table, probs: np.ndarray) -> pa.Table:
    """Scores columns as the score stage writes them, computed with real cleanlab."""
    labels = ds["label"].to_numpy()
    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1)  # no fork of a process that holds Ray threads
    n = len(labels)
    issue_rank = np.full(n, -1, np.int32)
    issue_rank[ranked] = np.arange(1, len(ranked) + 1)
    pred = probs.argmax(axis=1)
    p_true = probs[np.arange(n), labels]
    return pa.table(
        {
            "id": ds["id"],
            "label": pa.array(labels, pa.int32()),
            "pred": pa.array(pred, pa.int32()),
            "p_true": p_true,
            "is_label_issue": issue_rank > 0,
            "issue_rank": issue_rank,
            "suggested_label": pa.array(pred, pa.int32()),
            "suggested_confidence": probs.max(axis=1),
            "label_quality": get_label_quality_scores(labels, probs),
        }
    )


@pytest.fixture()
def data():
    ds, probs, given, flipped = _dataset_and_probs()
    return ds, _scores(ds, probs), probs, flipped


# --------------------------------------------------------------------------- label-issue queue


def test_label_issue_queue_ranks_issues(data):
    ds, scores, probs, flipped = data
    q = review.label_issue_queue(scores, ds, LABELS)
    assert q.column_names == [
        "id", "text", "given_label", "suggested_label", "score", "suggested_confidence", "flagged", "reason",
        "error_risk", "rank", "corrected_label",
    ]
    assert set(q["reason"].to_pylist()) == {"label_issue"}
    assert q["flagged"].type == pa.bool_() and all(q["flagged"].to_pylist())
    flagged = scores.filter(scores["is_label_issue"]).sort_by("issue_rank")
    assert q["id"].to_pylist() == flagged["id"].to_pylist()
    assert set(q["id"].to_pylist()) <= {f"s{i:03d}" for i in flipped} and len(q) >= 4  # cleanlab finds the flips
    assert q["rank"].to_pylist() == list(range(1, len(q) + 1))
    # ranked by cleanlab's issue_rank = ascending label quality
    assert np.all(np.diff(q["score"].to_numpy()) >= 0)
    assert q["corrected_label"].null_count == len(q)
    row = q.to_pylist()[0]
    k = int(row["id"][1:])
    assert row["given_label"] == LABELS[(k % 3 + 1) % 3] and row["suggested_label"] == LABELS[k % 3]
    assert row["text"] == ds["text"][k].as_py()
    assert len(review.label_issue_queue(scores, ds, LABELS, limit=2)) == 2


def test_label_issue_queue_rejects_stale_scores(data):
    ds, scores, _, flipped = data
    labels = ds["label"].to_numpy().copy()
    labels[flipped[0]] = (labels[flipped[0]] + 1) % 3
    stale = ds.set_column(2, DATASET.field("label"), pa.array(labels, pa.int32()))
    with pytest.raises(ValueError, match=f"s{flipped[0]:03d}.*stale"):
        review.label_issue_queue(scores, stale, LABELS)
    with pytest.raises(ValueError, match="missing column"):
        review.label_issue_queue(scores.drop(["issue_rank"]), ds, LABELS)


def _budget_case():
    """Six rows, hand-made: cleanlab-style flags on two of them, label_quality with a tie."""
    ds = pa.table(
        {
            "id": ["a", "b", "c", "d", "e", "f"],
            "text": ["좋아요", "별로", "그냥", "최고", "느려요", "보통"],
            "label": pa.array([0, 1, 2, 0, 1, 2], pa.int32()),
            "label_name": [LABELS[k] for k in (0, 1, 2, 0, 1, 2)],
        },
        schema=DATASET,
    )
    scores = pa.table(
        {
            "id": ["a", "b", "c", "d", "e", "f"],
            "label": pa.array([0, 1, 2, 0, 1, 2], pa.int32()),
            "is_label_issue": [False, True, False, True, False, False],
            "issue_rank": pa.array([-1, 2, -1, 1, -1, -1], pa.int32()),
            "suggested_label": pa.array([0, 0, 2, 1, 1, 2], pa.int32()),
            "suggested_confidence": pa.array([0.9, 0.8, 0.3, 0.9, 0.3, 0.95], pa.float32()),
            # e and c tie at 0.3: the id breaks the tie (c before e)
            "label_quality": pa.array([0.9, 0.2, 0.3, 0.05, 0.3, 0.95], pa.float32()),
        }
    )
    return ds, scores


def test_budget_ranks_past_cleanlabs_flagged_set():
    ds, scores = _budget_case()
    q = review.label_issue_queue(scores, ds, LABELS, budget=4)  # 2 flagged, budget 4
    assert q["id"].to_pylist() == ["d", "b", "c", "e"]  # label_quality ascending, tie c/e by id
    assert q["flagged"].to_pylist() == [True, True, False, False]
    np.testing.assert_allclose(q["score"].to_numpy(), [0.05, 0.2, 0.3, 0.3], atol=1e-7)
    assert q["rank"].to_pylist() == [1, 2, 3, 4]
    assert q["given_label"].to_pylist() == [LABELS[0], LABELS[1], LABELS[2], LABELS[1]]
    # unflagged rows: cleanlab suggests no change
    assert q["suggested_label"].to_pylist()[2:] == q["given_label"].to_pylist()[2:]
    assert q["text"].to_pylist() == ["최고", "별로", "그냥", "느려요"]
    # ranking is purely by label_quality, even against issue_rank, and independent of row order
    shuffled = scores.take(pa.array([5, 3, 1, 4, 0, 2]))
    assert review.label_issue_queue(shuffled, ds, LABELS, budget=4)["id"].to_pylist() == ["d", "b", "c", "e"]
    # a budget within the flagged set
    assert review.label_issue_queue(scores, ds, LABELS, budget=1)["id"].to_pylist() == ["d"]
    # a budget beyond the rows: all of them
    assert review.label_issue_queue(scores, ds, LABELS, budget=100)["id"].to_pylist() == ["d", "b", "c", "e", "a", "f"]
    # without a budget: flagged rows only, by issue_rank
    plain = review.label_issue_queue(scores, ds, LABELS)
    assert plain["id"].to_pylist() == ["d", "b"] and plain["flagged"].to_pylist() == [True, True]


def test_budget_matches_cleanlab_label_quality(data):
    ds, scores, probs, flipped = data
    n_flagged = int(pc.sum(scores["is_label_issue"]).as_py())
    q = review.label_issue_queue(scores, ds, LABELS, budget=n_flagged + 5)
    lq = get_label_quality_scores(ds["label"].to_numpy(), probs)
    expect = sorted(range(len(lq)), key=lambda i: (lq[i], ds["id"][i].as_py()))[: n_flagged + 5]
    assert q["id"].to_pylist() == [ds["id"][i].as_py() for i in expect]
    assert sum(q["flagged"].to_pylist()) == n_flagged  # every flagged row is among the least trusted here
    assert len(q) == n_flagged + 5


@pytest.mark.parametrize("budget", [0, -3, 2.5, True])
def test_budget_must_be_positive_whole_number(budget):
    ds, scores = _budget_case()
    with pytest.raises(ValueError, match="budget must be a whole number of rows >= 1"):
        review.label_issue_queue(scores, ds, LABELS, budget=budget)


def test_budget_errors_are_explained():
    ds, scores = _budget_case()
    with pytest.raises(ValueError, match="not both"):
        review.label_issue_queue(scores, ds, LABELS, limit=2, budget=2)
    with pytest.raises(ValueError, match="no label_quality column"):
        review.label_issue_queue(scores.drop(["label_quality"]), ds, LABELS, budget=2)
    nan = scores.set_column(6, "label_quality", pa.array([0.1, None, 0.2, float("nan"), 0.3, 0.4], pa.float32()))
    with pytest.raises(ValueError, match="'b', 'd'.*null/NaN label_quality"):
        review.label_issue_queue(nan, ds, LABELS, budget=2)


# --------------------------------------------------------------------------- active learning

AL_IDS = ["a", "b", "c", "d", "e"]
AL_PROBS = np.array(
    [
        [0.90, 0.05, 0.05],  # confident
        [0.40, 0.35, 0.25],
        [0.50, 0.50, 0.00],  # zero margin
        [0.34, 0.33, 0.33],  # near uniform
        [0.60, 0.20, 0.20],
    ]
)


@pytest.mark.parametrize(
    "strategy, order",
    [
        ("least_confidence", ["d", "b", "c", "e", "a"]),
        ("margin", ["c", "d", "b", "e", "a"]),
        ("entropy", ["d", "b", "e", "c", "a"]),
    ],
)
def test_active_learning_orders(strategy, order):
    q = review.active_learning_queue(AL_IDS, KOREAN + ["x"], AL_PROBS, LABELS, strategy=strategy, batch_size=5)
    assert q["id"].to_pylist() == order
    assert "given_label" not in q.column_names  # unlabelled pool
    assert set(q["strategy"].to_pylist()) == {strategy}
    top3 = review.active_learning_queue(AL_IDS, KOREAN + ["x"], AL_PROBS, LABELS, strategy=strategy, batch_size=3)
    assert top3["id"].to_pylist() == order[:3]


def test_active_learning_values_and_labels():
    q = review.active_learning_queue(
        AL_IDS, list("vwxyz"), AL_PROBS, LABELS, strategy="entropy", batch_size=2, labels=[0, 1, 2, 1, "중립"]
    )
    row = q.to_pylist()[0]
    assert row["id"] == "d" and row["predicted_label"] == "긍정"
    assert row["confidence"] == pytest.approx(0.34)
    assert row["uncertainty"] == pytest.approx(-(0.34 * np.log(0.34) + 2 * 0.33 * np.log(0.33)))
    assert q["given_label"].to_pylist() == ["부정", "부정"]
    m = review.uncertainty(AL_PROBS, "margin")
    assert m[2] == pytest.approx(1.0) and m[0] == pytest.approx(0.15)


def test_active_learning_validation():
    with pytest.raises(ValueError, match="'b'"):
        bad = AL_PROBS.copy()
        bad[1] = [0.9, 0.9, 0.1]
        review.active_learning_queue(AL_IDS, list("vwxyz"), bad, LABELS)
    with pytest.raises(ValueError, match="strategy"):
        review.active_learning_queue(AL_IDS, list("vwxyz"), AL_PROBS, LABELS, strategy="random")
    with pytest.raises(ValueError, match="shape"):
        review.active_learning_queue(AL_IDS, list("vwxyz"), AL_PROBS[:, :2], LABELS)
    with pytest.raises(ValueError, match="duplicate"):
        review.active_learning_queue(list("aabcd"), list("vwxyz"), AL_PROBS, LABELS)


# --------------------------------------------------------------------------- CSV round trip


def test_csv_round_trip_korean_and_idempotent(tmp_path, data):
    ds, scores, _, flipped = data
    q = review.label_issue_queue(scores, ds, LABELS)
    path = review.write_csv(q, tmp_path / "queue.csv")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the Korean as UTF-8

    # the annotator (pandas stands in for a spreadsheet) accepts the first three
    # suggestions, keeps the given label on the fourth, leaves the rest empty.
    df = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert df["text"].tolist() == q["text"].to_pylist()  # Korean, quotes and commas survive
    df.loc[0:2, "corrected_label"] = df.loc[0:2, "suggested_label"]
    df.loc[3, "corrected_label"] = df.loc[3, "given_label"]
    df.to_csv(path, index=False, encoding="utf-8")  # saved without a BOM this time

    corr = review.read_corrections(path)
    assert corr.schema == review.CORRECTIONS
    assert corr["id"].to_pylist() == df["id"].tolist()[:4]
    assert corr["new_label_name"].to_pylist() == df["corrected_label"].tolist()[:4]
    assert set(corr["source"].to_pylist()) == {"csv"}

    new, audit, report = review.apply_corrections(ds, corr, LABELS, source_name="queue.csv", now=NOW)
    assert report == {"changed": 3, "unchanged": 1, "unknown_ids": [], "unknown_labels": []}
    assert audit.schema == review.AUDIT
    assert audit["id"].to_pylist() == sorted(df["id"].tolist()[:3])
    assert set(audit["time"].to_pylist()) == {"2025-03-01T12:30:00Z"}
    assert set(audit["source"].to_pylist()) == {"queue.csv [csv]"}
    changed = {r["id"]: r for r in audit.to_pylist()}
    for r in new.to_pylist():
        if r["id"] in changed:
            k = int(r["id"][1:])
            assert r["label"] == k % 3 and r["label_name"] == LABELS[k % 3]  # the true label
            assert changed[r["id"]]["new_label"] == r["label_name"]
    assert new.schema == ds.schema and new["id"].equals(ds["id"]) and new["text"].equals(ds["text"])
    untouched = ~np.isin(np.array(ds["id"].to_pylist()), list(changed))
    assert np.array_equal(new["label"].to_numpy()[untouched], ds["label"].to_numpy()[untouched])

    again, audit2, report2 = review.apply_corrections(new, corr, LABELS, source_name="queue.csv", now=NOW)
    assert report2["changed"] == 0 and report2["unchanged"] == 4 and len(audit2) == 0
    assert again.equals(new)


def test_csv_korean_text_round_trip_unlabelled(tmp_path):
    q = review.active_learning_queue(["k1", "k2", "k3", "k4"], KOREAN, AL_PROBS[:4], LABELS, batch_size=4)
    path = review.write_csv(q, tmp_path / "al.csv")
    back = pd.read_csv(path, dtype=str, keep_default_na=False)  # pandas strips the BOM
    assert list(back.columns) == q.column_names
    assert sorted(back["text"]) == sorted(KOREAN)
    back.loc[back["id"] == "k3", "corrected_label"] = "중립"
    back.to_csv(path, index=False, encoding="utf-8-sig")
    corr = review.read_corrections(path)
    assert corr.to_pylist() == [{"id": "k3", "new_label_name": "중립", "source": "csv"}]


def test_csv_not_utf8_is_explained(tmp_path):
    path = tmp_path / "cp949.csv"
    path.write_bytes("id,corrected_label\ns001,부정\n".encode("cp949"))
    with pytest.raises(ValueError, match="UTF-8"):
        review.read_corrections(path)


def test_csv_conflicting_duplicates(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("id,corrected_label\ns001,부정\ns001,중립\ns002,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="s001"):
        review.read_corrections(path)


# --------------------------------------------------------------------------- Label Studio


def test_label_studio_config_and_tasks(tmp_path, data):
    ds, scores, _, _ = data
    q = review.label_issue_queue(scores, ds, LABELS, limit=3)
    xml = review.label_studio_config(LABELS + ['a "quoted" & <odd>'])
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    choices = root.find("Choices")
    assert choices.get("name") == "label" and choices.get("toName") == "text"
    assert root.find("Text").get("value") == "$text"
    assert [c.get("value") for c in choices] == LABELS + ['a "quoted" & <odd>']

    tasks_path, config_path = review.write_label_studio(q, LABELS, tmp_path / "tasks.json")
    assert ET.fromstring(config_path.read_text(encoding="utf-8")).find("Choices") is not None
    tasks = json.loads(tasks_path.read_text(encoding="utf-8"))
    assert tasks == review.to_label_studio_tasks(q, LABELS)
    t = tasks[0]
    assert t["data"]["hardmine_id"] == q["id"][0].as_py() and t["data"]["text"] == q["text"][0].as_py()
    assert t["data"]["flagged"] is True and t["data"]["rank"] == 1
    (pred,) = t["predictions"]
    assert pred["model_version"] == "hardmine"
    assert pred["score"] == pytest.approx(q["suggested_confidence"][0].as_py())
    assert pred["result"] == [
        {"from_name": "label", "to_name": "text", "type": "choices",
         "value": {"choices": [q["suggested_label"][0].as_py()]}}
    ]
    assert "부정" in tasks_path.read_text(encoding="utf-8") or "긍정" in tasks_path.read_text(encoding="utf-8")


def _ls_export(tasks: list[dict], annotate: dict[int, list[tuple[str, str, bool]]]) -> list[dict]:
    """What Label Studio's JSON export looks like after annotators worked on imported tasks.

    annotate: task position -> [(choice, updated_at, was_cancelled), ...] in creation order.
    """
    out = []
    for n, task in enumerate(tasks):
        task_id = 1000 + n
        anns = []
        for j, (choice, when, cancelled) in enumerate(annotate.get(n, [])):
            anns.append(
                {
                    "id": 50 + 10 * n + j,
                    "completed_by": 7 + j,
                    "result": [] if cancelled else [
                        {
                            "value": {"choices": [choice]},
                            "id": f"r{n}{j}",
                            "from_name": "label",
                            "to_name": "text",
                            "type": "choices",
                            "origin": "prediction" if j == 0 else "manual",
                        }
                    ],
                    "was_cancelled": cancelled,
                    "ground_truth": False,
                    "created_at": when,
                    "updated_at": when,
                    "draft_created_at": None,
                    "lead_time": 4.2,
                    "prediction": {},
                    "result_count": 0,
                    "unique_id": f"u-{n}-{j}",
                    "import_id": None,
                    "last_action": None,
                    "task": task_id,
                    "project": 3,
                    "updated_by": 7 + j,
                    "parent_prediction": 900 + n,
                    "parent_annotation": None,
                    "last_created_by": None,
                }
            )
        out.append(
            {
                "id": task_id,
                "annotations": anns,
                "file_upload": "e3b0c442-tasks.json",
                "drafts": [],
                "predictions": [900 + n],
                "data": task["data"],
                "meta": {},
                "created_at": "2025-02-28T09:00:00.000000Z",
                "updated_at": "2025-03-01T09:00:00.000000Z",
                "inner_id": n + 1,
                "total_annotations": sum(not c for _, _, c in annotate.get(n, [])),
                "cancelled_annotations": sum(c for _, _, c in annotate.get(n, [])),
                "total_predictions": 1,
                "comment_count": 0,
                "unresolved_comment_count": 0,
                "last_comment_updated_at": None,
                "project": 3,
                "updated_by": 7,
                "comment_authors": [],
            }
        )
    return out


def test_label_studio_round_trip_and_idempotent(tmp_path, data):
    ds, scores, _, flipped = data
    q = review.label_issue_queue(scores, ds, LABELS)
    tasks_path, _ = review.write_label_studio(q, LABELS, tmp_path / "tasks.json")
    tasks = json.loads(tasks_path.read_text(encoding="utf-8"))
    sug = [t["predictions"][0]["result"][0]["value"]["choices"][0] for t in tasks]
    given = [t["data"]["given_label"] for t in tasks]
    other = [next(x for x in LABELS if x not in (s, g)) for s, g in zip(sug, given)]
    annotate = {
        0: [(sug[0], "2025-03-01T10:00:00.000000Z", False)],  # accepts the suggestion
        1: [(given[1], "2025-03-01T10:01:00.000000Z", False)],  # keeps the given label
        2: [  # changed their mind later: the latest annotation wins
            (sug[2], "2025-03-01T10:02:00.000000Z", False),
            (other[2], "2025-03-01T11:00:00.000000Z", False),
        ],
        3: [  # a later annotation was cancelled (skipped): the earlier one stands
            (sug[3], "2025-03-01T10:03:00.000000Z", False),
            ("", "2025-03-01T12:00:00.000000Z", True),
        ],
        4: [("", "2025-03-01T10:04:00.000000Z", True)],  # only skipped: no change
        # task 5: never annotated: no change
    }
    export = tmp_path / "project-3-at-2025-03-01.json"
    export.write_text(json.dumps(_ls_export(tasks, annotate), ensure_ascii=False), encoding="utf-8")

    corr = review.read_corrections(export)
    ids = [t["data"]["hardmine_id"] for t in tasks]
    got = {r["id"]: r for r in corr.to_pylist()}
    assert set(got) == set(ids[:4])
    assert got[ids[0]]["new_label_name"] == sug[0]
    assert got[ids[1]]["new_label_name"] == given[1]
    assert got[ids[2]]["new_label_name"] == other[2]
    assert got[ids[3]]["new_label_name"] == sug[3]
    assert got[ids[2]]["source"] == "label_studio:annotation=71,by=8"

    new, audit, report = review.apply_corrections(ds, corr, LABELS, source_name=export.name, now=NOW)
    assert report == {"changed": 3, "unchanged": 1, "unknown_ids": [], "unknown_labels": []}
    changed = dict(zip(audit["id"].to_pylist(), audit["new_label"].to_pylist()))
    assert changed == {ids[0]: sug[0], ids[2]: other[2], ids[3]: sug[3]}
    by_id = {r["id"]: r for r in new.to_pylist()}
    for i, name in changed.items():
        assert by_id[i]["label_name"] == name and by_id[i]["label"] == LABELS.index(name)

    _, audit2, report2 = review.apply_corrections(new, review.read_corrections(export), LABELS,
                                                  source_name=export.name, now=NOW)
    assert report2["changed"] == 0 and len(audit2) == 0


def test_label_studio_json_min_export(tmp_path):
    export = tmp_path / "min.json"
    export.write_text(
        json.dumps(
            [
                {"id": 1, "text": "좋아요", "hardmine_id": "s001", "label": "긍정", "annotator": "kim@example.com"},
                {"id": 2, "text": "별로", "hardmine_id": "s002"},
            ],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    corr = review.read_corrections(export)
    assert corr.to_pylist() == [{"id": "s001", "new_label_name": "긍정", "source": "label_studio:kim@example.com"}]


# --------------------------------------------------------------------------- unknowns


def test_unknown_ids_and_labels_reported_and_strict_raises(data):
    ds, *_ = data
    corr = pa.table(
        {
            "id": ["s000", "nope-1", "s001", "s002", "nope-2"],
            "new_label_name": ["부정", "긍정", "기쁨", "", "중립"],
            "source": ["csv"] * 5,
        }
    )
    with pytest.raises(ValueError) as e:
        review.apply_corrections(ds, corr, LABELS, source_name="x.csv", now=NOW)
    msg = str(e.value)
    assert "'nope-1'" in msg and "'nope-2'" in msg and "기쁨" in msg and "strict=False" in msg

    new, audit, report = review.apply_corrections(ds, corr, LABELS, source_name="x.csv", now=NOW, strict=False)
    assert report["unknown_ids"] == ["nope-1", "nope-2"]
    assert report["unknown_labels"] == [("s001", "기쁨")]
    assert report["changed"] == 1 and report["unchanged"] == 0
    assert audit.to_pylist() == [
        {"id": "s000", "old_label": "긍정", "new_label": "부정", "source": "x.csv [csv]", "time": "2025-03-01T12:30:00Z"}
    ]
    assert new["label"][1].as_py() == ds["label"][1].as_py()  # unknown label left as is


def test_apply_rejects_conflicting_duplicates(data):
    ds, *_ = data
    corr = pa.table({"id": ["s000", "s000"], "new_label_name": ["부정", "중립"], "source": ["a", "b"]})
    with pytest.raises(ValueError, match="s000"):
        review.apply_corrections(ds, corr, LABELS, source_name="x", now=NOW)

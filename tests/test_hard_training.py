"""Training on what was mined: hard-example weights, OHEM, oversampling, FGM, and their config refusals."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from hardmine.config import ConfigError, from_dict
from hardmine.vocab import DEFAULT_ARMS
from hardmine.oof.settings import (
    fold_training,
    hardness_weights,
    normalized_weights,
    oof_training_key,
    oversample_counts,
    train_settings,
)
from tests.helpers import make_rows, tiny_bert_dir


def cfg_of(**sections):
    return from_dict({"data": {"demo": {}}, **sections})


# ----------------------------------------------------------------------------- weights (pure)


def test_hardness_weights_capped_and_label_issues_at_one():
    h = np.array([0.0, 0.5, 1.0, 0.9, 1.3, -0.2])
    issue = np.array([False, False, False, True, False, False])
    np.testing.assert_allclose(hardness_weights(h, issue, cap=3.0), [1.0, 2.0, 3.0, 1.0, 3.0, 1.0])  # clipped to [1, cap]
    np.testing.assert_allclose(hardness_weights(h[:3], None, cap=1.0), [1.0, 1.0, 1.0])  # cap 1 = no emphasis
    np.testing.assert_allclose(hardness_weights([0.25], cap=5.0), [2.0])
    with pytest.raises(ValueError, match="cap must be a number >= 1"):
        hardness_weights(h, issue, cap=0.5)
    with pytest.raises(ValueError, match="NaN"):
        hardness_weights([0.1, np.nan])
    with pytest.raises(ValueError, match="one flag per row"):
        hardness_weights(h, issue[:2])


def test_normalized_weights_keep_the_ratios_at_mean_one():
    w = normalized_weights([1.0, 2.0, 3.0, 1.0, 3.0])
    assert w.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(w / w[0], [1.0, 2.0, 3.0, 1.0, 3.0], rtol=1e-6)
    with pytest.raises(ValueError, match="not all 0"):
        normalized_weights([0.0, 0.0])


def test_oversample_counts_repeat_in_proportion_to_the_weight():
    w = np.array([1.0, 2.0, 3.0, 1.5])
    c = oversample_counts(w, seed=7)
    assert c[:3].tolist() == [1, 2, 3] and c[3] in (1, 2)
    np.testing.assert_array_equal(c, oversample_counts(w, seed=7))  # seeded
    many = np.stack([oversample_counts(np.full(1000, 1.5), seed=s) for s in range(5)])
    assert abs(many.mean() - 1.5) < 0.03  # the weight in expectation
    with pytest.raises(ValueError, match=">= 1"):
        oversample_counts([0.5])


# ----------------------------------------------------------------------------- OHEM (pure torch)


def test_ohem_mask_keeps_the_highest_losses():
    import torch

    from hardmine.oof.loop import ohem_mask

    losses = torch.tensor([0.1, 2.0, 0.5, 3.0, 1.0, 0.2])
    assert torch.nonzero(ohem_mask(losses, 0.5)).flatten().tolist() == [1, 3, 4]  # top ceil(0.5 * 6) = 3
    assert ohem_mask(losses, 1 / 6).sum() == 1 and bool(ohem_mask(losses, 1 / 6)[3])
    assert ohem_mask(losses, 0.01).sum() == 1  # at least one row
    assert ohem_mask(losses, 1.0).all()
    # label issues (exempt) never take a slot: 5 candidates, ceil(0.5 * 5) = 3 picks among them
    exempt = torch.tensor([False, False, False, True, False, False])
    assert torch.nonzero(ohem_mask(losses, 0.5, exempt)).flatten().tolist() == [1, 2, 4]
    assert not ohem_mask(losses, 0.5, torch.ones(6, dtype=torch.bool)).any()
    # ties: the earlier row
    assert torch.nonzero(ohem_mask(torch.tensor([1.0, 1.0, 1.0, 0.0]), 0.5)).flatten().tolist() == [0, 1]
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="ohem keep"):
            ohem_mask(losses, bad)


def test_batch_loss_ohem_weights_and_exemptions():
    import torch

    from hardmine.oof.loop import batch_loss, row_coefficients

    torch.manual_seed(0)
    logits, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    per_row = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    plain = batch_loss(logits, y)
    assert torch.allclose(plain, per_row.mean())
    assert torch.allclose(batch_loss(logits, y, weights=torch.ones(6)), plain)
    w = torch.tensor([1.0, 2.0, 1.0, 1.0, 1.0, 0.0])
    assert torch.allclose(batch_loss(logits, y, weights=w), (w * per_row).sum() / 6)
    # ohem: the mean of the kept rows (factors sum to the batch's rows)
    top = torch.argsort(per_row, descending=True)[:3]
    assert torch.allclose(batch_loss(logits, y, ohem_keep=0.5), per_row[top].mean())
    exempt = torch.zeros(6, dtype=torch.bool)
    exempt[top[0]] = True  # the hardest row is a label issue: plain weight 1, and it takes no slot
    coef = row_coefficients(per_row, ohem_keep=0.5, exempt=exempt)
    assert coef[top[0]] == 1.0 and float(coef.sum()) == pytest.approx(6.0)
    assert int((coef[~exempt] > 0).sum()) == 3  # ceil(0.5 * 5) of the other rows, each 5 / 3
    assert torch.allclose(coef[(coef > 0) & ~exempt], torch.full((3,), 5 / 3))


# ----------------------------------------------------------------------------- FGM on a tiny BERT


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_bert_dir(tmp_path_factory.mktemp("tinybert-fgm"))


def test_fgm_changes_the_loss_and_restores_the_embeddings_exactly(tiny_model):
    import torch

    from hardmine.oof.loop import FGM, fgm_backward
    from hardmine.oof.models import load_finetune

    tok, model = load_finetune(tiny_model, 3)
    model.eval()  # no dropout: the loss changes by the perturbation alone
    rows = make_rows(4)[:8]
    inputs = tok([r["text"] for r in rows], padding=True, return_tensors="pt")
    y = torch.tensor([{"billing": 0, "shipping": 1, "account": 2}[r["label"]] for r in rows])
    emb = model.get_input_embeddings().weight

    def compute_loss():
        return torch.nn.functional.cross_entropy(model(**inputs).logits, y)

    loss = compute_loss()
    loss.backward()
    before, grad_before = emb.detach().clone(), emb.grad.detach().clone()
    seen = {}

    def watched():
        seen["shift"] = float(torch.linalg.vector_norm(emb.detach() - before))
        return compute_loss()

    fgm = FGM(model, epsilon=0.5)
    adv = fgm_backward(fgm, watched, lambda l: l.backward())
    assert adv is not None and adv > float(loss.detach())  # a step up the loss gradient raises the loss
    assert seen["shift"] == pytest.approx(0.5, rel=1e-4)  # moved by epsilon along grad / ||grad||
    assert torch.equal(emb.detach(), before)  # restored bit for bit
    assert not torch.equal(emb.grad, grad_before)  # the adversarial gradient accumulated
    assert fgm.backup is None
    # no gradient (or a zero one): no attack, nothing changes
    model.zero_grad(set_to_none=True)
    assert fgm_backward(fgm, compute_loss, lambda l: l.backward()) is None and torch.equal(emb.detach(), before)
    with pytest.raises(ValueError, match="word embeddings"):
        from hardmine.oof.models import Head

        FGM(Head(8, 3), 1.0)


def _finetune_cfg(model_path, **train):
    rows = make_rows(6)
    label = {"billing": 0, "shipping": 1, "account": 2}
    x, y = [r["text"] for r in rows], np.array([label[r["label"]] for r in rows])
    return {
        "fold": 0, "seed": 0, "backbone": "finetune", "num_labels": 3, "model_path": model_path, "head": "linear",
        "head_hidden": 16, "max_length": 16, "batch_size": 6, "head_batch_size": 8, "lr": 5e-3, "head_lr": 1e-2, "epochs": 1,
        "warmup_ratio": 0.0, "weight_decay": 0.0, "mixed_precision": "no", "threads": 1,
        "hard_weighting": "none", "ohem_keep": 0.5, "adversarial": "none", "fgm_epsilon": 1.0, **train,
        "data": {"train_x": x[:12], "train_y": y[:12], "val_x": x[12:], "val_y": y[12:], "test_x": None},
    }


def test_train_fold_with_fgm_and_ohem_trains_differently(tiny_model):
    from hardmine.evaluate import MemoryCheckpoints
    from hardmine.oof.loop import train_fold

    plain = train_fold(_finetune_cfg(tiny_model), MemoryCheckpoints(), log=lambda s: None)["val_probs"]
    again = train_fold(_finetune_cfg(tiny_model), MemoryCheckpoints(), log=lambda s: None)["val_probs"]
    np.testing.assert_array_equal(plain, again)  # deterministic, so the differences below are the settings'
    fgm = train_fold(_finetune_cfg(tiny_model, adversarial="fgm"), MemoryCheckpoints(), log=lambda s: None)["val_probs"]
    ohem = train_fold(_finetune_cfg(tiny_model, hard_weighting="ohem"), MemoryCheckpoints(), log=lambda s: None)["val_probs"]
    assert fgm.shape == ohem.shape == plain.shape and np.allclose(fgm.sum(1), 1.0)
    assert not np.allclose(fgm, plain) and not np.allclose(ohem, plain)


def _head_cfg(backbone="frozen", head="linear", **train):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 8)).astype(np.float32), np.arange(60) % 3
    x[np.arange(60), y] += 1.5
    return {
        "fold": 0, "seed": 0, "backbone": backbone, "num_labels": 3, "head": head, "head_hidden": 16, "head_C": 1.0,
        "head_max_iter": 200, "max_length": 16, "batch_size": 8, "head_batch_size": 8, "lr": 1e-3, "head_lr": 1e-2,
        "epochs": 2, "warmup_ratio": 0.0, "weight_decay": 0.0, "mixed_precision": "no", "threads": 1,
        "hard_weighting": "none", "ohem_keep": 0.5, "adversarial": "none", "fgm_epsilon": 1.0, **train,
        "data": {"train_x": x[:45], "train_y": y[:45], "val_x": x[45:], "val_y": y[45:], "test_x": None},
    }


@pytest.mark.parametrize("head", ["linear", "logreg"])
def test_heads_take_sample_weights(head):
    from hardmine.evaluate import MemoryCheckpoints
    from hardmine.oof.loop import train_fold

    def run(**kw):
        c = _head_cfg(head=head, **kw)
        if "train_w" in kw:
            c["data"]["train_w"] = c.pop("train_w")
        return train_fold(c, MemoryCheckpoints(), log=lambda s: None)["val_probs"]

    plain = run()
    np.testing.assert_allclose(run(hard_weighting="upweight", train_w=np.full(45, 2.0)), plain, atol=1e-5)  # mean-1 normalised
    w = np.ones(45)
    w[:5] = 10.0
    assert not np.allclose(run(hard_weighting="upweight", train_w=w), plain, atol=1e-4)
    with pytest.raises(ValueError, match="per-row weights"):
        run(hard_weighting="upweight")


def test_linear_models_refuse_ohem_and_fgm():
    from hardmine.evaluate import MemoryCheckpoints
    from hardmine.oof.loop import train_fold

    with pytest.raises(ValueError, match="without batches"):
        train_fold(_head_cfg(head="logreg", hard_weighting="ohem"), MemoryCheckpoints(), log=lambda s: None)
    with pytest.raises(ValueError, match="finetune backbone"):
        train_fold(_head_cfg(head="logreg", adversarial="fgm"), MemoryCheckpoints(), log=lambda s: None)
    with pytest.raises(ValueError, match="finetune backbone"):
        train_fold(_head_cfg(head="mlp", adversarial="fgm"), MemoryCheckpoints(), log=lambda s: None)
    probs = train_fold(_head_cfg(head="mlp", hard_weighting="ohem"), MemoryCheckpoints(), log=lambda s: None)["val_probs"]
    assert probs.shape == (15, 3)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "sections, needle",
    [
        ({"train": {"adversarial": "fgm"}, "oof": {"backbones": ["frozen"]}}, "train.adversarial: fgm perturbs the word embeddings"),
        ({"train": {"adversarial": "fgm"}, "oof": {"backbones": ["finetune"]}, "evaluate": {"backbone": "tfidf"}},
         "is tfidf (TF-IDF features), which has none"),
        ({"evaluate": {"arms": ["baseline", "adversarial"], "backbone": "frozen"}}, "evaluate.arms has adversarial"),
        ({"train": {"hard_weighting": "ohem"}, "oof": {"backbones": ["tfidf"]}}, "member tfidf is fitted by scikit-learn"),
        ({"train": {"hard_weighting": "ohem"}, "oof": {"backbones": ["frozen"], "head": "logreg"}}, "there are no batches"),
        ({"train": {"hard_weighting": "ohem"}, "oof": {"backbones": ["finetune"]}, "evaluate": {"backbone": "tfidf"}},
         "the retrain backbone tfidf (evaluate.backbone)"),
        ({"train": {"hard_weight_cap": 0.5}}, "train.hard_weight_cap"),
        ({"train": {"ohem_keep": 0}}, "train.ohem_keep"),
        ({"train": {"hard_weighting": "focal"}}, "train.hard_weighting"),
    ],
)
def test_config_refuses_what_cannot_train(sections, needle):
    with pytest.raises(ConfigError) as e:
        cfg_of(**sections)
    assert needle in str(e.value)
    assert "--set <root>" not in str(e.value)


def test_config_accepts_and_defaults():
    c = cfg_of()
    assert c.train.hard_weighting == "none" and c.train.adversarial == "none" and c.train.hard_weight_cap == 3.0
    assert c.train.ohem_keep == 0.5 and c.train.fgm_epsilon == 1.0
    assert c.evaluate.arms == list(DEFAULT_ARMS) and "hard_weighted" in c.evaluate.arms and "adversarial" not in c.evaluate.arms  # by measurement; adversarial opt-in
    cfg_of(evaluate={"arms": ["baseline", "hard_weighted"]})  # upweight/oversample work with any backbone
    cfg_of(train={"hard_weighting": "oversample"})
    cfg_of(train={"hard_weighting": "ohem"}, oof={"backbones": ["finetune", "frozen"], "head": "mlp"})
    cfg_of(train={"adversarial": "fgm"}, oof={"backbones": ["tfidf", "finetune"]}, evaluate={"backbone": "finetune", "arms": ["baseline", "adversarial"]})


def test_fold_models_get_only_what_needs_no_scores():
    up = cfg_of(train={"hard_weighting": "upweight", "hard_weight_cap": 5})
    assert fold_training(up, "tfidf") == fold_training(up, "frozen") == {"hard_weighting": "none", "adversarial": "none"}
    assert oof_training_key(up) == "" == oof_training_key(cfg_of())  # fingerprints of the fold models unchanged
    both = cfg_of(train={"hard_weighting": "ohem", "ohem_keep": 0.25, "adversarial": "fgm"},
                  oof={"backbones": ["finetune", "frozen"], "head": "mlp"})
    assert fold_training(both, "finetune") == {"hard_weighting": "ohem", "ohem_keep": 0.25, "adversarial": "fgm", "fgm_epsilon": 1.0}
    assert fold_training(both, "frozen") == {"hard_weighting": "ohem", "ohem_keep": 0.25, "adversarial": "none"}
    s = train_settings(both, 3, threads=1, backbone="frozen")
    assert s["hard_weighting"] == "ohem" and s["adversarial"] == "none" and s["ohem_keep"] == 0.25
    assert oof_training_key(both) != oof_training_key(cfg_of(train={"hard_weighting": "ohem", "ohem_keep": 0.5, "adversarial": "fgm"},
                                                              oof={"backbones": ["finetune", "frozen"], "head": "mlp"}))


# ----------------------------------------------------------------------------- evaluate's arms (pure)


def _dataset_and_scores(n=20):
    ds = pa.table({"id": [f"r{i}" for i in range(n)], "text": [f"text {i}" for i in range(n)], "label": pa.array(np.arange(n) % 3, pa.int32())})
    hardness = np.linspace(0.0, 1.0, n)
    issue = np.zeros(n, dtype=bool)
    issue[[n - 1, 3]] = True  # the hardest row is a label issue
    order = np.arange(n)[::-1]  # scores in another order than the dataset
    scores = pa.table({"id": pa.array([f"r{i}" for i in order]), "hardness": pa.array(hardness[order], pa.float32()),
                       "is_label_issue": pa.array(issue[order])})
    return ds, scores, hardness, issue


def test_hard_weighted_arm_carries_weights_and_label_issues_weigh_one():
    from hardmine.evaluate import arm_training_set, assemble, set_indices, training_set_info

    ds, scores, hardness, issue = _dataset_and_scores()
    base = arm_training_set(ds, None, None, None, "baseline", aug_ratio=0.0)
    t = arm_training_set(ds, None, None, None, "hard_weighted", aug_ratio=0.0, scores=scores, hard_weighting="upweight", hard_weight_cap=3.0)
    assert t.column("id").to_pylist() == base.column("id").to_pylist()  # the baseline rows, as given
    assert t.column("label").to_pylist() == base.column("label").to_pylist()
    w = np.asarray(t.column("weight").to_pylist())
    np.testing.assert_allclose(w[~issue], 1 + 2 * hardness[~issue], rtol=1e-6)
    assert (w[issue] == 1.0).all() and w.max() <= 3.0
    info = training_set_info(t)
    assert info["hard_weighting"] == "upweight" and info["n_label_issues"] == 2 and info["n_upweighted"] == 17
    # the weights reach the training loop's data, aligned with the rows
    feats = {"orig_pos": {i: n for n, i in enumerate(ds.column("id").to_pylist())}, "aug_pos": {},
             "shared": {"orig_x": ds.column("text").to_pylist(), "aug_x": [], "test_x": ["x"], "test_y": np.array([0])}}
    data = assemble(feats["shared"], set_indices(t, feats))
    np.testing.assert_allclose(data["train_w"], w.astype(np.float32))
    assert "train_w" not in assemble(feats["shared"], set_indices(base, feats))

    over = arm_training_set(ds, None, None, None, "hard_weighted", aug_ratio=0.0, scores=scores, hard_weighting="oversample", seed=1)
    ids = over.column("id").to_pylist()
    assert "weight" not in over.column_names and set(ids) == set(base.column("id").to_pylist())
    assert ids.count("r19") == ids.count("r3") == ids.count("r0") == 1  # label issues and the easiest row: once
    assert ids.count("r18") >= 2 and training_set_info(over)["n_repeated"] == len(ids) - 20

    ohem = arm_training_set(ds, None, None, None, "hard_weighted", aug_ratio=0.0, scores=scores, hard_weighting="ohem")
    assert ohem.column("exempt").to_pylist() == issue.tolist()
    np.testing.assert_array_equal(assemble(feats["shared"], set_indices(ohem, feats))["train_exempt"], issue)
    bare = arm_training_set(ds, None, None, None, "hard_weighted", aug_ratio=0.0, hard_weighting="ohem")  # no scores: none exempt
    assert bare.column_names == base.column_names

    with pytest.raises(ValueError, match="needs the hardness"):
        arm_training_set(ds, None, None, None, "hard_weighted", aug_ratio=0.0, hard_weighting="upweight")
    with pytest.raises(ValueError, match="not scored"):
        arm_training_set(ds, None, None, None, "hard_weighted", aug_ratio=0.0, scores=scores.slice(0, 5))
    with pytest.raises(ValueError, match="hard_weighting must be one of"):
        arm_training_set(ds, None, None, None, "hard_weighted", aug_ratio=0.0, scores=scores, hard_weighting="none")
    adv = arm_training_set(ds, None, None, None, "adversarial", aug_ratio=0.0)
    assert adv.column("id").to_pylist() == base.column("id").to_pylist() and adv.column_names == base.column_names


def test_arm_train_settings_change_one_thing_per_arm():
    from hardmine.evaluate import arm_train_settings, hard_weighted_mode

    c = cfg_of(train={"adversarial": "fgm", "hard_weighting": "ohem"}, oof={"backbones": ["finetune"]},
               evaluate={"arms": ["baseline", "hard_weighted", "adversarial"]})
    assert arm_train_settings(c, "baseline")["hard_weighting"] == "none" and arm_train_settings(c, "baseline")["adversarial"] == "none"
    assert arm_train_settings(c, "clean")["adversarial"] == "none"
    assert arm_train_settings(c, "hard_weighted")["hard_weighting"] == "ohem" and arm_train_settings(c, "hard_weighted")["adversarial"] == "none"
    assert arm_train_settings(c, "adversarial") == {**arm_train_settings(c, "baseline"), "adversarial": "fgm"}
    assert hard_weighted_mode(cfg_of()) == "upweight"  # none: the arm up-weights with the cap
    assert arm_train_settings(cfg_of(), "hard_weighted")["hard_weighting"] == "upweight"


def test_evaluation_fingerprint_includes_train():
    from hardmine.evaluate import evaluation_fingerprint

    class Store:
        def manifest(self):
            return {}

    a = evaluation_fingerprint(cfg_of(), Store())
    assert a == evaluation_fingerprint(cfg_of(), Store())
    assert a != evaluation_fingerprint(cfg_of(train={"hard_weight_cap": 4}), Store())


def test_report_describes_the_new_arms():
    from hardmine.report.html import SKIP as _SKIP
    from hardmine.report.sections.evaluation import adversarial_line as _adversarial_line, hard_weighted_line as _hard_weighted_line

    assert _hard_weighted_line(None) is _SKIP and _adversarial_line(None) is _SKIP
    line = _hard_weighted_line({"hard_weighting": "upweight", "hard_weight_cap": 3.0, "n_upweighted": 17, "n_label_issues": 2})
    assert "1 + 2 × hardness" in line and "2 label issues never up-weighted" in line
    assert "epsilon 0.5" in _adversarial_line({"train": {"fgm_epsilon": 0.5}})

"""Linear fold models fitted with scikit-learn: the ``tfidf`` backbone and the ``logreg`` frozen head.

Both are multinomial logistic regressions fitted to convergence (lbfgs), so their probabilities
are those of the regularised optimum rather than of a few epochs of SGD. Training dynamics come
from the solver's trajectory: ``epochs`` snapshots of the held-out probabilities, taken after
geometrically growing numbers of iterations (warm start), the last one at convergence.

``train_linear_fold`` has ``train_fold``'s contract (same config keys, same checkpoint files),
so the OOF runner, evaluate and sweep run it through the same paths as the torch backbones.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from typing import Any, Callable

import numpy as np

TFIDF_FILE = "tfidf.joblib"

#: scripts whose words are not separated by spaces, or whose words are long agglutinated
#: forms: character n-grams inside words work better there than word n-grams
CHAR_SCRIPTS = ("Hangul", "Han", "Kana", "Thai")


def resolve_analyzer(analyzer: str, texts: list[str], sample: int = 2000) -> str:
    """``auto`` -> ``char_wb`` when most letters (of a sample of texts) are Hangul/CJK/Thai, else ``word``."""
    if analyzer != "auto":
        return analyzer
    from hardmine.augment.language import script_shares

    shares = script_shares(texts[:: max(1, len(texts) // sample)])
    return "char_wb" if sum(shares.get(s, 0.0) for s in CHAR_SCRIPTS) >= 0.5 else "word"


def tfidf_settings(cfg) -> dict[str, Any]:
    """The ``tfidf`` keys of a ``train_fold`` config, from ``Config.oof.tfidf``."""
    t = cfg.oof.tfidf
    return {
        "analyzer": t.analyzer, "ngram_range": list(t.ngram_range) if t.ngram_range else None, "min_df": t.min_df,
        "max_df": t.max_df, "max_features": t.max_features, "sublinear_tf": t.sublinear_tf, "lowercase": t.lowercase,
        "classifier": t.classifier, "C": t.C, "max_iter": t.max_iter,
    }


def make_vectorizer(settings: dict, texts: list[str]):
    """A ``TfidfVectorizer`` for these settings (the analyzer resolved on ``texts``)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyzer = resolve_analyzer(settings["analyzer"], texts)
    ngram = tuple(settings["ngram_range"]) if settings.get("ngram_range") else ((1, 2) if analyzer == "word" else (1, 3))
    return TfidfVectorizer(
        analyzer=analyzer, ngram_range=ngram, min_df=settings["min_df"], max_df=settings["max_df"],
        max_features=settings["max_features"], sublinear_tf=settings["sublinear_tf"], lowercase=settings["lowercase"],
        dtype=np.float32,
    )


def full_probs(model, x, num_labels: int) -> np.ndarray:
    """(n, num_labels) probabilities; classes missing from the model's training rows get 0."""
    p = model.predict_proba(x)
    out = np.zeros((p.shape[0], num_labels), dtype=np.float64)
    out[:, np.asarray(model.classes_, dtype=np.int64)] = p
    out /= np.maximum(out.sum(axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)


def _snapshot_iters(max_iter: int, epochs: int) -> list[int]:
    """Iterations run before each snapshot (geometric; the last runs up to ``max_iter`` more)."""
    cum = [max(1, round(max_iter ** ((e + 1) / epochs))) for e in range(epochs)]
    steps = [cum[0]] + [max(1, b - a) for a, b in zip(cum, cum[1:])]
    steps[-1] = max_iter
    return steps


def fit_snapshots(x, y: np.ndarray, evals: list, *, num_labels: int, C: float, epochs: int, max_iter: int,
                  classifier: str = "logreg", seed: int = 0, sample_weight=None) -> tuple[Any, list[list[np.ndarray]]]:
    """Fit a multinomial linear classifier on ``(x, y)``; return it and, for every array in
    ``evals``, its probabilities after each of ``epochs`` snapshots (the last at convergence).

    ``x`` may be dense or scipy-sparse (never densified). ``sample_weight`` (``train.hard_weighting:
    upweight``): per-row weights of the loss, passed to scikit-learn as given (normalise them to
    mean 1 to keep ``C``'s meaning)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    y = np.asarray(y, dtype=np.int64)
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if sw is not None and sw.shape != y.shape:
        raise ValueError(f"sample_weight must hold one weight per training row ({y.size}), got shape {sw.shape}")
    snaps: list[list[np.ndarray]] = [[] for _ in evals]
    if classifier == "sgd":
        model = SGDClassifier(loss="log_loss", alpha=1.0 / (C * max(1, len(y))), random_state=seed, tol=None)
        classes = np.unique(y)
        passes = max(epochs, min(max_iter, 50))
        per = [passes // epochs + (1 if e < passes % epochs else 0) for e in range(epochs)]
        rng = np.random.default_rng(seed)
        for n_pass in per:
            for _ in range(n_pass):
                order = rng.permutation(len(y))
                model.partial_fit(x[order], y[order], classes=classes, sample_weight=None if sw is None else sw[order])
            for s, ev in zip(snaps, evals):
                s.append(full_probs(model, ev, num_labels))
        return model, snaps
    model = LogisticRegression(C=C, max_iter=1, warm_start=True, random_state=seed)
    converged = False
    for e, steps in enumerate(_snapshot_iters(max_iter, epochs)):
        if not converged:
            model.max_iter = steps
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x, y, sample_weight=sw)
            converged = int(np.max(model.n_iter_)) < steps
        for s, ev in zip(snaps, evals):
            s.append(full_probs(model, ev, num_labels))
    return model, snaps


def head_state_dict(model, dim: int, num_labels: int) -> dict:
    """The fitted logistic regression as the state dict of a linear :class:`~hardmine.oof.models.Head`
    (same probabilities), so fold-model prediction loads it like any frozen head."""
    import torch

    coef = np.asarray(model.coef_, dtype=np.float64)
    bias = np.asarray(model.intercept_, dtype=np.float64)
    classes = np.asarray(model.classes_, dtype=np.int64)
    if coef.shape[0] == 1 and len(classes) == 2:  # binary: p(1) = sigmoid(w.x + b) = softmax([0, w.x + b])
        coef = np.vstack([np.zeros_like(coef), coef])
        bias = np.array([0.0, bias[0]])
    w = np.zeros((num_labels, dim))
    b = np.full(num_labels, -1e4)  # a class absent from the training rows gets (numerically) zero probability
    w[classes], b[classes] = coef, bias
    return {"net.1.weight": torch.tensor(w, dtype=torch.float32), "net.1.bias": torch.tensor(b, dtype=torch.float32)}


class TfidfModel:
    """A saved ``tfidf`` fold model: vectorizer + classifier; ``predict(texts)`` -> (n, K) probabilities."""

    def __init__(self, path: str):
        import joblib

        obj = joblib.load(os.path.join(path, TFIDF_FILE))
        self.vectorizer, self.classifier, self.num_labels = obj["vectorizer"], obj["classifier"], int(obj["num_labels"])

    def predict(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        return full_probs(self.classifier, self.vectorizer.transform([str(t) for t in texts]), self.num_labels)


def _threads(n: int):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(max(1, int(n or 1)))


def train_linear_fold(cfg: dict, ckpts, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``train_fold`` for ``tfidf`` and the ``logreg`` head: one fit, one checkpoint holding every snapshot.

    A fold whose final checkpoint exists (a retried task) returns it without refitting. ``data["train_w"]``
    (upweight) becomes the ``sample_weight`` of the fit, normalised to mean 1; ``hard_weighting: ohem``
    is refused (no batches; the config refuses it first), ``oversample`` arrives as repeated rows."""
    import joblib
    import torch

    from hardmine.oof.loop import ARRAYS, META, MODEL_DIR, STATE

    from hardmine.oof.settings import normalized_weights

    if cfg.get("hard_weighting") == "ohem":
        raise ValueError(
            f"hard_weighting ohem back-propagates the hardest rows of each batch; the {cfg['backbone']} model "
            f"{'(logreg head) ' if cfg['backbone'] == 'frozen' else ''}is fitted to convergence by scikit-learn, without "
            "batches: use upweight or oversample"
        )
    if cfg.get("adversarial", "none") != "none":
        raise ValueError(f"train.adversarial: fgm needs the finetune backbone (word embeddings), not {cfg['backbone']}")
    started = time.time()
    epochs = int(cfg["epochs"])
    latest = ckpts.latest()
    if latest:
        with open(os.path.join(latest, META)) as f:
            meta = json.load(f)
        if int(meta.get("epoch", -1)) == epochs - 1:
            arrays = np.load(os.path.join(latest, ARRAYS))
            return {"metrics": meta, "val_probs": arrays["epoch_probs"][-1], "started": meta.get("started", started), "finished": time.time()}
    data = cfg["data"]
    train_y = np.asarray(data["train_y"], dtype=np.int64)
    if cfg.get("hard_weighting") == "upweight" and data.get("train_w") is None:
        raise ValueError("hard_weighting upweight needs per-row weights (data['train_w']): evaluate's hard_weighted arm "
                         "computes them from scores.parquet")
    sample_weight = None if data.get("train_w") is None else normalized_weights(np.asarray(data["train_w"], dtype=np.float64))
    if sample_weight is not None and sample_weight.shape != train_y.shape:
        raise ValueError(f"train_w must hold one weight per training row ({train_y.size}), got shape {sample_weight.shape}")
    K = int(cfg["num_labels"])
    tfidf = cfg["backbone"] == "tfidf"
    has_test = data.get("test_x") is not None and len(data["test_x"]) > 0
    parts = [data["val_x"]] + ([data["test_x"]] if has_test else [])
    with _threads(cfg.get("threads")):
        if tfidf:
            t = cfg["tfidf"]
            train_texts = [str(s) for s in data["train_x"]]
            vec = make_vectorizer(t, train_texts)
            x = vec.fit_transform(train_texts)
            evals = [vec.transform([str(s) for s in p]) for p in parts]
            C, max_iter, clf = t["C"], t["max_iter"], t["classifier"]
        else:
            x = np.asarray(data["train_x"], dtype=np.float32)
            evals = [np.asarray(p, dtype=np.float32).reshape(-1, x.shape[1]) for p in parts]
            C, max_iter, clf = cfg["head_C"], cfg["head_max_iter"], "logreg"
        loaded = time.time()
        model, snaps = fit_snapshots(x, train_y, evals, num_labels=K, C=C, epochs=epochs, max_iter=max_iter,
                                     classifier=clf, seed=int(cfg["seed"]) * 1000 + int(cfg["fold"]), sample_weight=sample_weight)
    epoch_probs = np.stack(snaps[0])
    val_y = np.asarray(data["val_y"])
    val_acc = float((epoch_probs[-1].argmax(1) == val_y).mean()) if len(val_y) else float("nan")
    metrics = {"fold": cfg["fold"], "epoch": epochs - 1, "loss": float("nan"), "val_accuracy": val_acc}
    with tempfile.TemporaryDirectory(prefix="hardmine-ckpt-") as tmp:
        torch.save({"epoch": epochs - 1, "started": started, "resumed_after_epochs": []}, os.path.join(tmp, STATE))
        arrays = {"epoch_probs": epoch_probs}
        if has_test:
            arrays["test_probs"] = snaps[1][-1]
        np.savez(os.path.join(tmp, ARRAYS), **arrays)
        mdir = os.path.join(tmp, MODEL_DIR)
        os.makedirs(mdir)
        if tfidf:
            joblib.dump({"vectorizer": vec, "classifier": model, "num_labels": K}, os.path.join(mdir, TFIDF_FILE))
            head = None
        else:
            from hardmine.oof.models import Head

            head = Head(x.shape[1], K, "linear").meta
            torch.save(head_state_dict(model, x.shape[1], K), os.path.join(mdir, "head.pt"))
        with open(os.path.join(mdir, "hardmine_model.json"), "w") as f:
            json.dump({"backbone": cfg["backbone"], "encoder": cfg.get("encoder"), "max_length": cfg.get("max_length"),
                       "num_labels": K, "head": head}, f)
        with open(os.path.join(tmp, META), "w") as f:
            json.dump({**metrics, "started": started, "loaded": loaded, "finished": time.time(), "resumed_after_epochs": []}, f)
        ckpts.save(tmp, metrics)
    log(f"fold {cfg['fold']}: {'tfidf model' if tfidf else 'logreg head'} fitted, held-out acc {val_acc:.4f}")
    return {"metrics": metrics, "val_probs": epoch_probs[-1], "started": started, "finished": time.time()}

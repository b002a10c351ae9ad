"""Config sections of what the models train on and how they train: ``data``, ``oof`` (the
out-of-fold ensemble and its members) and ``train`` (hard-example emphasis, adversarial training)."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field, model_validator

from hardmine.config.base import Section
from hardmine.vocab import Adversarial, Backbone, HardWeighting


class DemoData(Section):
    n_rows: int = Field(3000, ge=100, description="rows of the generated demo dataset")
    noise_rate: float = Field(0.08, ge=0.0, lt=0.5, description="share of labels flipped on purpose")
    ambiguous_rate: float = Field(0.06, ge=0.0, lt=0.5, description="share of rows mixing two classes' cues")
    seed: int = 0


class DataConfig(Section):
    path: Optional[str] = Field(None, description="CSV/TSV/JSONL/Parquet file or a datasets save_to_disk dir; null with demo")
    demo: Optional[DemoData] = Field(None, description="generate the embedded demo dataset instead of reading path")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "hf"] = "auto"
    text_column: str = "text"
    label_column: str = "label"
    id_column: Optional[str] = Field("id", description="null: ids are the row numbers")
    labels: Optional[list[str]] = Field(None, description="label vocabulary in index order (default: sorted)")
    drop_empty: bool = Field(False, description="drop rows with empty text (ids recorded in the manifest) instead of failing")
    test_path: Optional[str] = Field(None, description="held-out test file, same columns")
    test_size: float = Field(0.0, ge=0.0, lt=0.9, description="stratified hold-out carved before mining when no test_path")
    truth_path: Optional[str] = Field(None, description="CSV with id,true_label for injected-noise precision/recall")
    encoding: str = Field("utf-8", description="text encoding of CSV/TSV/JSONL files (utf-8, utf-8-sig, cp949, euc-kr, ...)")
    unlabelled_path: Optional[str] = Field(
        None, description="unlabelled pool (same text/id columns, no label needed) for `hardmine pseudo-label` and evaluate's self_training arm; its ids must not overlap the training or held-out ids"
    )
    version: Optional[int] = Field(
        None, ge=0,
        description="dataset version the run trains on: null = the newest (review imports and pseudo-label rounds write review/versions/vN.parquet), 0 = as read from data.path; the held-out split never changes",
    )
    quoting: Literal["auto", "none", "csv"] = Field(
        "auto",
        description="CSV/TSV quotes: auto = CSV with standard quoting, TSV one row per line (a cell wrapped in quotes "
                    "is unquoted, any other quote is text); none = quotes are always text; csv = TSV with CSV quoting "
                    "too (quoted cells may span lines)",
    )

    @model_validator(mode="after")
    def _source(self):
        if self.path is None and self.demo is None:
            raise ValueError("set data.path to your dataset file, or data.demo: {} for the embedded demo data")
        if self.path is not None and self.demo is not None:
            raise ValueError("data.path and data.demo are exclusive: keep one")
        if self.test_path and self.test_size:
            raise ValueError("data.test_path and data.test_size are exclusive: keep one")
        return self


class FaultInjection(Section):
    """Test-only: crash a fold's worker once, at the start of an epoch."""

    fold: int = Field(0, ge=0)
    epoch: int = Field(1, ge=0)


class TfidfConfig(Section):
    """The ``tfidf`` backbone: scikit-learn TfidfVectorizer + a linear classifier with real probabilities."""

    analyzer: Literal["auto", "word", "char_wb", "char"] = Field(
        "auto", description="auto: word n-grams for space-delimited Latin/Cyrillic text, character n-grams inside words (char_wb) for Hangul, CJK and other scripts"
    )
    ngram_range: Optional[tuple[int, int]] = Field(None, description="null: (1, 2) for word, (1, 3) for char analyzers")
    min_df: int = Field(2, ge=1, description="ignore terms in fewer documents of a fold's training rows")
    max_df: float = Field(1.0, gt=0.0, le=1.0)
    max_features: Optional[int] = Field(None, ge=1, description="keep the most frequent terms (null: all)")
    sublinear_tf: bool = True
    lowercase: bool = True
    classifier: Literal["logreg", "sgd"] = Field("logreg", description="logreg: LogisticRegression (lbfgs, to convergence); sgd: SGDClassifier(loss='log_loss') for very large sets")
    C: float = Field(1.0, gt=0.0, description="inverse L2 strength of the logistic regression (sgd: alpha = 1 / (C * rows)); 1.0 measured best under label noise (README, Detection)")
    max_iter: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _check(self):
        if self.ngram_range is not None and not 1 <= self.ngram_range[0] <= self.ngram_range[1]:
            raise ValueError(f"oof.tfidf.ngram_range must be (low, high) with 1 <= low <= high, got {list(self.ngram_range)}")
        return self

    def resolved_ngram_range(self, analyzer: str) -> tuple[int, int]:
        return tuple(self.ngram_range) if self.ngram_range else ((1, 2) if analyzer == "word" else (1, 3))


class OOFConfig(Section):
    folds: int = Field(5, ge=2, description="K cross-validation folds (2 <= K <= smallest class size)")
    backbones: list[Backbone] = Field(
        default_factory=lambda: ["tfidf", "frozen"], min_length=1,
        description="ensemble members, each trained on the same K folds: tfidf, frozen, finetune, external (`oof.backbone: X` is short for [X])",
    )
    combine: Literal["logloss", "equal"] = Field("logloss", description="how members' probabilities are averaged: weights minimising out-of-fold log-loss, or equal weights")
    calibration: Literal["none", "temperature"] = Field("temperature", description="temperature scaling of the combined probabilities, cross-fitted over folds (no row is calibrated by a temperature fitted on it)")
    probs_path: Optional[str] = Field(None, description="backbone external: Parquet/CSV with id + one column per class name, or a .npy aligned with the data")
    model: str = Field("packaged:minilm", description="packaged:minilm, packaged:use-multilingual (frozen only), a hub name or a local path")
    max_length: Union[int, Literal["auto"]] = Field(
        "auto", description="tokens per text; auto: the 95th percentile of the data's token lengths, capped at the model's limit (frozen: longer texts are embedded in chunks and mean-pooled; finetune: truncated)"
    )
    tfidf: TfidfConfig = TfidfConfig()
    batch_size: int = Field(32, ge=1)
    lr: float = Field(5e-5, gt=0.0, description="learning rate (finetune); the frozen head uses head_lr")
    head_lr: float = Field(1e-2, gt=0.0, description="linear/mlp heads only")
    epochs: int = Field(3, ge=1, description="finetune and linear/mlp heads: epochs; logreg head and tfidf: snapshots of the solver's trajectory recorded as training dynamics")
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.01, ge=0.0)
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field(
        "auto",
        description="finetune training on a GPU (never on CPU): auto = bf16 on compute capability >= 8.0 (Ampere and later), "
        "else fp16 with a GradScaler (its state is checkpointed); held-out probabilities (what cleanlab reads) are always "
        "computed by a full float32 forward pass",
    )
    head: Literal["logreg", "linear", "mlp"] = Field(
        "logreg", description="frozen head: logreg = multinomial LogisticRegression fitted to convergence (lbfgs); linear/mlp = torch heads trained for oof.epochs"
    )
    head_C: float = Field(1.0, gt=0.0, description="inverse L2 strength of the logreg head; 1.0 measured best under label noise (README, Detection)")
    head_max_iter: int = Field(1000, ge=1)
    head_hidden: int = Field(256, ge=1)
    head_batch_size: int = Field(32, ge=1)
    cpus_per_fold: Optional[float] = Field(
        None,
        gt=0.0,
        description="null = the largest whole-CPU share that runs as many folds at once as the cluster holds (torch threads = whole CPUs); fractions pack folds; set it on autoscaling clusters",
    )
    gpus_per_fold: float = Field(0.0, ge=0.0, description="fractions pack several folds on one GPU, e.g. 0.2 -> 5 folds per GPU")
    max_concurrent: Optional[int] = Field(
        None,
        ge=1,
        description="fold runs launched at once; null = as many as the cluster's nodes hold now (a run launched beyond that only waits, its Ray Train controller using CPU); set it to oof.folds on autoscaling clusters so the autoscaler sees every fold",
    )
    elastic_threads: bool = Field(
        True,
        description="CPU runs also use CPUs of their node that Ray has not reserved (e.g. the last fold training alone), giving them back when Ray schedules work there; false = torch threads fixed at the run's whole CPUs",
    )
    max_failures: int = Field(2, ge=0, description="FailureConfig: restarts of a fold from its last checkpoint")
    embed_batch_size: int = Field(64, ge=1)
    embed_actors: Optional[int] = Field(
        None, ge=1, description="Ray Data actors computing frozen embeddings; null = one per cluster CPU (at most 16), or per GPU share when gpus_per_fold > 0"
    )
    frozen_runner: Literal["task", "trainer"] = Field("task", description="frozen heads: plain Ray task (less overhead) or TorchTrainer")
    fault_injection: Optional[FaultInjection] = Field(None, description="test only")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any):
        """``backbone: X`` is short for ``backbones: [X]``."""
        if isinstance(data, dict) and "backbone" in data:
            data = dict(data)
            one = data.pop("backbone")
            if "backbones" in data:
                raise ValueError("set oof.backbones (a list) or oof.backbone (one name), not both")
            data["backbones"] = one if isinstance(one, list) else [one]
        return data

    @model_validator(mode="after")
    def _check(self):
        dup = sorted({b for b in self.backbones if self.backbones.count(b) > 1})
        if dup:
            raise ValueError(f"oof.backbones lists {dup} more than once: each member appears once")
        if self.model == "packaged:use-multilingual" and "finetune" in self.backbones:
            raise ValueError("oof.model packaged:use-multilingual works with the frozen backbone only (not finetune): use frozen only, or another oof.model for finetune")
        if "external" in self.backbones and not self.probs_path:
            raise ValueError("oof.backbones has external: set oof.probs_path to your out-of-fold probabilities (Parquet/CSV with id + one column per class, or .npy)")
        if self.probs_path and "external" not in self.backbones:
            raise ValueError("oof.probs_path is set but oof.backbones has no external member: add external to oof.backbones, or remove probs_path")
        if self.gpus_per_fold > 1 and self.gpus_per_fold != int(self.gpus_per_fold):
            raise ValueError("oof.gpus_per_fold above 1 must be a whole number of GPUs")
        return self

    @property
    def trainable(self) -> list[str]:
        """Members that train fold models (every member but external)."""
        return [b for b in self.backbones if b != "external"]

    @property
    def backbone(self) -> str:
        """The first trainable member (tfidf for an external-only ensemble)."""
        return (self.trainable or ["tfidf"])[0]


class TrainConfig(Section):
    """How the models learn from what was mined: hard-example emphasis and adversarial training.

    Where each setting applies is fixed by what it needs: ``upweight`` / ``oversample`` need the
    score stage's hardness, so only evaluate's ``hard_weighted`` arm uses them; ``ohem`` and
    ``fgm`` need nothing mined, so the fold models and the sweep trials train with them too.
    Evaluate's other arms always train without them (each arm differs from baseline in one thing)."""

    hard_weighting: HardWeighting = Field(
        "none",
        description="emphasis on hard examples. upweight: each row's loss weighted 1 + (hard_weight_cap - 1) * hardness "
        "(hardness = 1 - p_true, from the score stage), normalised to mean 1 (torch loss; sample_weight of the "
        "scikit-learn models); oversample: rows repeated about that many times (stochastic rounding, seeded); ohem: "
        "every batch back-propagates only its ohem_keep share of rows with the highest loss (torch-trained models only: "
        "refused with tfidf or the logreg head, which have no batches). Label issues (score stage) are never up-weighted: "
        "weight 1, not repeated, under ohem never picked but kept at their plain weight. upweight and oversample apply to evaluate's hard_weighted arm only (the fold "
        "models train before there are scores and ignore them); ohem also applies to the fold models and the sweep trials. "
        "The other evaluate arms train without any of it",
    )
    hard_weight_cap: float = Field(
        3.0, ge=1.0, le=100.0,
        description="upweight / oversample: the weight of the hardest row (hardness 1); 1 = no emphasis",
    )
    ohem_keep: float = Field(
        0.5, gt=0.0, le=1.0,
        description="ohem: share of each batch back-propagated, ceil(ohem_keep * rows), the highest-loss rows; 1 = plain training",
    )
    adversarial: Adversarial = Field(
        "none",
        description="fgm: adversarial training of the finetune backbone (after each backward pass the word-embedding "
        "matrix is moved by fgm_epsilon along its gradient scaled to L2 norm 1, the batch's loss there is back-propagated "
        "too, the embeddings are restored, then the optimiser steps; about twice the compute per step). Applies to the finetune "
        "fold models, the sweep trials and evaluate's adversarial arm (the other arms train without it); other "
        "ensemble members train as usual. Refused when the retrain backbone (evaluate.backbone, else the first "
        "trainable member of oof.backbones) is frozen or tfidf: they have no word embeddings to perturb",
    )
    fgm_epsilon: float = Field(1.0, gt=0.0, description="fgm: L2 norm of the perturbation of the word-embedding matrix")


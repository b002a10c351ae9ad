"""Typed configuration for every stage (pydantic), loaded from YAML with dotted overrides.

Unknown keys, wrong types and impossible values fail before any work starts, with the
key path and a fix in the message.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hardmine.vocab import (
    DEFAULT_ARMS,
    Adversarial,
    Arm,
    Backbone,
    ClassBudget,
    FilterBy,
    HardWeighting,
    IssueAction,
    Policy,
    RankBy,
    RetrainBackbone,
    ReviewAs,
    SweepMetric,
    ThresholdKind,
)


class ConfigError(ValueError):
    """A configuration problem, with the key path and how to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DemoData(_Section):
    n_rows: int = Field(3000, ge=100, description="rows of the generated demo dataset")
    noise_rate: float = Field(0.08, ge=0.0, lt=0.5, description="share of labels flipped on purpose")
    ambiguous_rate: float = Field(0.06, ge=0.0, lt=0.5, description="share of rows mixing two classes' cues")
    seed: int = 0


class DataConfig(_Section):
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


class FaultInjection(_Section):
    """Test-only: crash a fold's worker once, at the start of an epoch."""

    fold: int = Field(0, ge=0)
    epoch: int = Field(1, ge=0)


class TfidfConfig(_Section):
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


class OOFConfig(_Section):
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


class ScoreConfig(_Section):
    filter_by: FilterBy = Field("prune_by_noise_rate", description="cleanlab find_label_issues filter_by (default as cleanlab)")
    # default: keep equal to hardmine.scoring.DEFAULT_RANK_BY, the one place to change it (a test checks)
    rank_by: RankBy = Field(
        "self_confidence",
        description="cleanlab label-quality method (cleanlab.rank.get_label_quality_scores): fills label_quality, "
        "orders issue_rank and the `review export --budget` queue",
    )
    low_memory_threshold: int = Field(500_000, ge=1, description="rows above which cleanlab's batched low-memory path is used")
    top_pairs: int = Field(10, ge=0, description="confusion pairs shown in the hard-case analysis")
    top_tokens: int = Field(10, ge=0, description="distinctive phrases per class (words and word n-grams; character n-grams for text without spaces)")
    knn_k: int = Field(
        10, ge=1,
        description="neighbours for outlier_score and knn_label_agreement (frozen embeddings; for a run without a frozen member, embedded with oof.model)",
    )
    knn_index: Literal["auto", "exact", "hnsw"] = Field(
        "auto",
        description="nearest-neighbour search for the kNN scores: exact (brute force, O(n^2)), hnsw (FAISS HNSW graph, "
        "approximate), auto = hnsw above 50,000 rows (README, Other signals: the measured time and recall at 150,000 NSMC rows)",
    )
    outlier_quantile: float = Field(
        0.01, ge=0.0, lt=0.5, description="top share of rows by outlier_score flagged is_outlier (sent to review, never augmented); 0 = no outlier flags"
    )
    duplicates: Literal["near", "exact", "off"] = Field(
        "near", description="duplicate groups for is_conflicting_duplicate: exact (normalised text) and MinHash near duplicates, exact only, or off"
    )
    near_duplicate_threshold: float = Field(0.9, gt=0.0, le=1.0, description="MinHash Jaccard estimate at which two texts are near duplicates")
    dual_model: Literal["gbdt", "logreg", "off"] = Field(
        "gbdt",
        description="the dual model predicting where the OOF prediction is wrong (error_risk, cross-fitted over oof.folds): "
        "HistGradientBoosting, logistic regression, or off",
    )
    dual_features: Literal["independent", "all"] = Field(
        "independent",
        description="the dual model's meta-features: independent = those without the primary model's final verdict (entropy, "
        "variability, forgetting, the kNN scores, text length, class hard share); all = also p_true, margin, label_quality, "
        "confidence, correctness, AUM (which decide pred != label almost alone)",
    )
    review_rank_by: Literal["label_quality", "error_risk"] = Field(
        "label_quality", description="order of `review export --budget`: lowest label_quality, or highest error_risk (dual model)"
    )

    @model_validator(mode="after")
    def _check(self):
        if self.review_rank_by == "error_risk" and self.dual_model == "off":
            raise ValueError("score.review_rank_by error_risk needs the dual model: set score.dual_model gbdt or logreg, or rank by label_quality")
        return self


class SelectConfig(_Section):
    policy: Policy = Field(
        "hardness",
        description="which rows count as hard: hardness = by 1 - p_true (hardness_quantile / p_true_max); ambiguous = the "
        "data map's ambiguous region, the top ambiguous_quantile of rows by dyn_variability (std of p_true over OOF "
        "epochs; needs oof.epochs >= 2, refused otherwise)",
    )
    hardness_quantile: Optional[float] = Field(0.2, gt=0.0, le=1.0, description="top share of rows by hardness that counts as hard")
    ambiguous_quantile: Optional[float] = Field(
        None, gt=0.0, le=1.0,
        description="policy ambiguous: top share of rows by dyn_variability; null = hardness_quantile (the same share of rows; the augment count still differs, as fewer ambiguous rows are label issues)",
    )
    class_budget: ClassBudget = Field(
        "uniform",
        description="how the augment sources are spread over classes: uniform = as the policy chose them; hard_share = in "
        "proportion to each class's share of hard rows; low_f1 = to 1 - its out-of-fold F1 (same total, max_per_class respected)",
    )
    p_true_max: Optional[float] = Field(None, ge=0.0, le=1.0, description="hard only if p_true <= this (policy hardness)")
    max_confidence: Optional[float] = Field(None, gt=0.0, le=1.0, description="hard rows confidently predicted as another class go to review")
    min_length: int = Field(0, ge=0, description="characters a text needs to be augmented")
    classes: Optional[list[str]] = Field(None, description="only these class names may be augmented")
    max_per_class: Optional[int] = Field(None, ge=1)
    issue_action: IssueAction = "review"
    relabel_min_confidence: float = Field(0.7, ge=0.0, le=1.0, description="relabel only when the suggested label is this likely")

    @model_validator(mode="after")
    def _check(self):
        if self.policy == "ambiguous":
            if self.p_true_max is not None:
                raise ValueError("select.p_true_max belongs to select.policy hardness: with policy ambiguous set it to null "
                                 "and choose the share with select.ambiguous_quantile")
            if self.ambiguous_quantile is None and self.hardness_quantile is None:
                raise ValueError("select.policy ambiguous needs select.ambiguous_quantile (e.g. 0.2), or hardness_quantile for it to follow")
        return self


class AugmentConfig(_Section):
    generators: Union[Literal["auto"], list[dict[str, Any]]] = Field(
        "auto",
        description="auto: chosen for the detected language (en: offline-bt + eda; pt: offline-bt with source_lang pt + eda; any other language: eda), or a list of generator specs: {type: vllm|hf|offline-bt|eda, weight, ...} (see README)",
    )
    filters: dict[str, Any] = Field(
        default_factory=lambda: {"length": {"min_chars": 3}, "identical": True, "script": True, "similarity": True,
                                 # hard samples have a low p_true by definition: ask the fold models only to keep
                                 # the source label plausible, not confident
                                 "consistency": {"tau": 0.2}, "near_duplicate": True},
        description="filters to run: length, identical, script, similarity, consistency, near_duplicate (true/false or options)",
    )
    aug_ratio: Optional[float] = Field(0.2, ge=0.0, description="variants to generate, as a share of the training size")
    per_sample: Optional[int] = Field(None, ge=1, description="variants per source instead of aug_ratio")
    max_per_sample: Optional[int] = Field(None, ge=1)
    language: str = Field(
        "auto",
        description="auto: detected from the script of the texts (the augment sources, or the training set when fewer than 32 are selected): ko, ja, zh, en, pt, ..., latin (Latin script, not English/Portuguese), mul (mixed); or set it: en, ko, ...",
    )
    batch_size: int = Field(64, ge=1)
    random_control: bool = Field(True, description="also augment randomly chosen training rows (the evaluate stage's random arm)")

    @model_validator(mode="after")
    def _check(self):
        from hardmine.augment.filters import normalize_filter_config
        from hardmine.augment.pipeline import check_generators

        if (self.aug_ratio is None) == (self.per_sample is None):
            raise ValueError("set exactly one of augment.aug_ratio and augment.per_sample (the other: null)")
        if self.generators != "auto":
            from hardmine.augment.language import check_language_support

            gens = [dict(g) for g in self.generators]
            check_generators(gens)
            if self.language.strip().lower() != "auto":  # a refusal known from the config alone
                check_language_support(gens, self.language)
        normalize_filter_config(self.filters)
        return self

    def budget(self, aug_ratio: float | None = None) -> dict:
        if self.per_sample is not None:
            b = {"per_sample": self.per_sample}
        else:
            b = {"aug_ratio": self.aug_ratio if aug_ratio is None else aug_ratio}
        if self.max_per_sample:
            b["max_per_sample"] = self.max_per_sample
        return b


class TrainConfig(_Section):
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


class EvaluateConfig(_Section):
    backbone: Optional[RetrainBackbone] = Field(
        None, description="the model the arms and sweep trials retrain; null = the first trainable member of oof.backbones, with its settings"
    )
    arms: list[Arm] = Field(
        default_factory=lambda: list(DEFAULT_ARMS),
        description="training sets compared on the held-out split; hard_weighted: the baseline rows trained with "
        "train.hard_weighting (upweight when that is none); opt-in: adversarial (the baseline rows trained with FGM, finetune only), "
        "self_training (the baseline rows + pseudo-labelled rows of data.unlabelled_path, see pseudo.*), reviewed (the labels of "
        "the newest reviewed dataset version against those before review, version 0, on the same rows)",
    )
    seeds: int = Field(3, ge=1, description="retrains per arm; an arm's metric is the mean over its seeds")
    bootstrap: int = Field(
        1000, ge=100,
        description="resamples of the held-out rows for the paired-bootstrap intervals (every arm scored on the same resampled rows, seeds averaged); at least 100, or differences cannot be told from test-set noise",
    )
    confidence: float = Field(0.95, ge=0.5, lt=1.0, description="level of the bootstrap intervals; a difference to baseline is real only when its interval excludes zero")
    aug_ratio: float = Field(0.1, ge=0.0, description="augmented rows added, as a share of the training size")
    review_as: ReviewAs = Field("drop", description="how the clean arms treat rows selection sent to review")
    epochs: Optional[int] = Field(None, ge=1, description="default: oof.epochs")
    ece_bins: int = Field(15, ge=2)
    max_concurrent: Optional[int] = Field(None, ge=1, description="retrains at once (default: as resources allow)")


class PseudoConfig(_Section):
    """Self-training: which fold-ensemble predictions on data.unlabelled_path become pseudo-labelled rows
    (`hardmine pseudo-label` and evaluate's self_training arm use the same rule)."""

    threshold: float = Field(0.9, gt=0.0, le=1.0, description="a pool row is pseudo-labelled when the fold ensemble's highest class probability is at least this")
    max_per_class: Optional[int] = Field(None, ge=1, description="at most this many pseudo-labelled rows per class (those already in the dataset count); null = no fixed cap")
    max_class_share: Optional[float] = Field(
        0.5, gt=0.0,
        description="at most this share of a class's human-labelled rows as pseudo-labelled rows of that class (so one class cannot flood the set); null = no share cap; with max_per_class the smaller cap applies",
    )
    active_batch: int = Field(100, ge=0, description="pool rows nearest the decision boundary (lowest margin, not pseudo-labelled) written to the active-learning queue; 0 = none")


class SweepConfig(_Section):
    enabled: bool = Field(True, description="`hardmine run` includes the sweep")
    threshold: ThresholdKind = "hardness_quantile"
    thresholds: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.3], min_length=1)
    aug_ratios: list[float] = Field(default_factory=lambda: [0.0, 0.1, 0.2], min_length=1)
    issue_actions: list[IssueAction] = Field(default_factory=lambda: ["review", "drop"], min_length=1)
    search: Literal["grid", "random", "optuna"] = "grid"
    num_samples: int = Field(1, ge=1, description="random/optuna: cells tried; grid: 1 (a cell's repeats are sweep.seeds)")
    seeds: int = Field(
        3, ge=1,
        description="retrains per cell, and of the baseline (no action: aug_ratio 0, issue_action keep); seed s of every cell shares its initialisation and augmentation sample; a cell's metric is the mean over its seeds",
    )
    validation_size: float = Field(
        0.2, gt=0.0, lt=1.0,
        description="share of the training rows carved (stratified, seeded) as the validation split cells are compared and chosen on; trials train on the rest; the test split is read once, to confirm the choice",
    )
    metric: SweepMetric = Field(
        "accuracy", description="the cell chosen is the one whose validation difference to the baseline has the highest interval lower bound above zero (else the baseline)"
    )
    cpus_per_trial: float = Field(1.0, gt=0.0)
    gpus_per_trial: float = Field(0.0, ge=0.0)
    max_concurrent_trials: Optional[int] = Field(None, ge=1)

    @model_validator(mode="after")
    def _check(self):
        bad = [t for t in self.thresholds if not 0.0 < t <= 1.0]
        if bad:
            raise ValueError(f"sweep.thresholds must lie in (0, 1], got {bad}")
        if any(r < 0 for r in self.aug_ratios):
            raise ValueError("sweep.aug_ratios must be >= 0")
        if self.search == "grid" and self.num_samples != 1:
            raise ValueError(
                f"sweep.num_samples={self.num_samples} with search: grid: every grid cell already runs over sweep.seeds "
                "seeds; set sweep.seeds instead (num_samples counts the cells random/optuna search tries)"
            )
        return self


class RayConfig(_Section):
    address: Optional[str] = Field(None, description="null: join the cluster under `ray job submit`, else start a local one")
    num_cpus: Optional[int] = Field(None, ge=1, description="local cluster only")
    num_gpus: Optional[int] = Field(None, ge=0, description="local cluster only")
    autoscaling: Optional[bool] = Field(
        None,
        description="whether the cluster adds nodes on demand; null = detected (env HARDMINE_AUTOSCALING, or the cluster "
        "launcher's config that `ray up` leaves on the head). On an autoscaling cluster a run that no node holds yet "
        "waits for the autoscaler instead of being refused",
    )
    worker_resources: Optional[dict[str, float]] = Field(
        None,
        description="resources of one worker node the autoscaler adds, e.g. {CPU: 8, GPU: 1}: folds, trials and GPU "
        "actors are sized for it; null = the launcher config's worker type with the most GPUs, if found",
    )

    @model_validator(mode="after")
    def _check(self):
        w = self.worker_resources
        if w is not None and (any(v < 0 for v in w.values()) or w.get("CPU", 0) <= 0):
            raise ValueError(f"ray.worker_resources must give the worker's CPU count (> 0) and optionally GPU (>= 0), e.g. {{CPU: 8, GPU: 1}}; got {w}")
        return self


class Config(_Section):
    name: str = Field("run", pattern=r"^[A-Za-z0-9_.-]+$", description="run name: outputs go to <run_root>/<name>")
    run_root: str = Field(
        default_factory=lambda: os.environ.get("HARDMINE_RUN_ROOT", "runs"),
        description="local dir or URI (s3://, gs://, file://) holding runs; default $HARDMINE_RUN_ROOT or runs",
    )
    seed: int = 0
    data: DataConfig
    oof: OOFConfig = OOFConfig()
    train: TrainConfig = TrainConfig()
    score: ScoreConfig = ScoreConfig()
    select: SelectConfig = SelectConfig()
    augment: AugmentConfig = AugmentConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    pseudo: PseudoConfig = PseudoConfig()
    sweep: SweepConfig = SweepConfig()
    ray: RayConfig = RayConfig()

    @model_validator(mode="after")
    def _training(self):
        """``train.*`` against the models that would train with it (refused before anything trains)."""
        t, e, o = self.train, self.evaluate, self.oof
        retrain = self.retrain_backbone
        where = "evaluate.backbone" if e.backbone else "the first trainable member of oof.backbones"
        no_embeddings = {"frozen": "frozen (a head over fixed sentence embeddings)", "tfidf": "tfidf (TF-IDF features)"}
        if t.adversarial == "fgm" and retrain != "finetune":
            raise ValueError(
                f"train.adversarial: fgm perturbs the word embeddings of the finetune backbone, but the retrain backbone "
                f"({where}) is {no_embeddings.get(retrain, retrain)}, which has none to perturb: set evaluate.backbone: "
                "finetune, or train.adversarial: none"
            )
        if "adversarial" in e.arms and retrain != "finetune":
            raise ValueError(
                f"evaluate.arms has adversarial (FGM on the word embeddings), but the retrain backbone ({where}) is "
                f"{no_embeddings.get(retrain, retrain)}, which has no word embeddings: set evaluate.backbone: finetune, "
                "or remove adversarial from evaluate.arms"
            )
        if t.hard_weighting == "ohem":
            def linear(b: str) -> bool:
                return b == "tfidf" or (b == "frozen" and o.head == "logreg")

            bad = [b for b in o.trainable if linear(b)]
            what = [f"oof.backbones member{'s' if len(bad) > 1 else ''} {' and '.join(bad)}"] if bad else []
            if linear(retrain) and retrain not in o.trainable:
                what.append(f"the retrain backbone {retrain} ({where})")
            if what:
                raise ValueError(
                    "train.hard_weighting: ohem back-propagates the hardest rows of each batch, but "
                    + " and ".join(what) + f" {'are' if len(bad) > 1 or len(what) > 1 else 'is'} fitted by scikit-learn's "
                    "LogisticRegression to convergence (tfidf, or frozen with oof.head: logreg): there are no batches. Use "
                    "train.hard_weighting: upweight or oversample (evaluate's hard_weighted arm), or only torch-trained "
                    "models (finetune; frozen with oof.head: linear or mlp)"
                )
        return self

    @property
    def retrain_backbone(self) -> str:
        """The backbone evaluate and sweep retrain: ``evaluate.backbone``, else the first trainable OOF member."""
        return self.evaluate.backbone or self.oof.backbone

    @property
    def run_dir(self) -> str:
        return self.run_root.rstrip("/") + "/" + self.name

    def section_hash(self, *sections: str) -> str:
        """Stable hash of some sections (or all) for stage fingerprints."""
        d = self.model_dump(mode="json")
        payload = {s: d[s] for s in sections} if sections else d
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- loading


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Valid keys of the (sub)model at loc, for 'did you mean' hints."""
    cur: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        f = getattr(cur, "model_fields", {}).get(part)
        if f is None:
            return []
        ann = f.annotation
        args = getattr(ann, "__args__", ()) or ()
        nxt = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nxt is None:
            return []
        cur = nxt
    return list(getattr(cur, "model_fields", {}))


def format_validation_error(err: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for e in err.errors():
        loc = tuple(e["loc"])
        path = ".".join(str(p) for p in loc) or "<root>"
        if e["type"] == "extra_forbidden":
            valid = _fields_at(Config, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = f"did you mean {'.'.join(map(str, loc[:-1] + (close[0],)))!r}?" if close else ""
            lines.append(f"  {path}: unknown key. {hint} Valid keys here: {', '.join(valid)}")
        elif not loc:  # a check across sections (Config's own validators): the message names the keys and the fix
            lines.append(f"  {e['msg'].removeprefix('Value error, ')}")
        else:
            msg = e["msg"]
            got = e.get("input")
            got_s = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  {path}: {msg}{got_s}. Fix it in the YAML or with --set {path}=...")
    return "\n".join(lines)


def parse_overrides(overrides: list[str] | None) -> dict:
    """['oof.folds=3', 'data.demo.n_rows=500'] -> nested dict (values parsed as YAML scalars)."""
    out: dict = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. --set oof.folds=3")
        key, raw = item.split("=", 1)
        if not key.strip() or any(not p for p in key.strip().split(".")):
            raise ConfigError(f"--set {item!r}: the key is empty or has an empty part; expected key.path=value, e.g. --set oof.folds=3")
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError as e:
            problem = str(e).splitlines()[0]
            raise ConfigError(
                f"--set {item!r}: the value {raw!r} is not valid YAML ({problem}). Fix: quote it, e.g. "
                f"--set '{key}=\"{raw}\"', or write a list as [a, b]"
            ) from None
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p!r} is set to a value and a section at once")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def from_dict(raw: dict) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None) -> Config:
    """Load YAML, apply --set overrides (relative paths are relative to the working directory)."""
    raw: dict = dict(base or {})
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {str(p)!r} is not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(p)!r} must hold a mapping at the top level")
        raw = deep_merge(raw, loaded)
    raw = deep_merge(raw, parse_overrides(overrides))
    return from_dict(raw)


def reference_markdown() -> str:
    """The configuration reference (every key, type, default, meaning) as Markdown tables."""

    def type_name(ann) -> str:
        s = str(ann).replace("typing.", "").replace("hardmine.config.", "")
        return s.replace("<class '", "").replace("'>", "")

    out = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        rows, subs = [], []
        for name, f in model.model_fields.items():
            ann = f.annotation
            args = getattr(ann, "__args__", ()) or ()
            sub = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
            if sub is not None and name != "fault_injection":
                subs.append((sub, f"{prefix}{name}."))
                if ann is sub:
                    continue
            default = "required" if f.is_required() else (
                repr(f.default_factory()) if f.default_factory is not None else repr(f.default)
            )
            if isinstance(f.default, BaseModel):
                continue
            rows.append(f"| `{prefix}{name}` | `{type_name(ann)}` | `{default}` | {f.description or ''} |")
        if rows:
            out.append(f"\n**{prefix.rstrip('.') or 'top level'}**\n\n| key | type | default | meaning |\n|---|---|---|---|")
            out.extend(rows)
        for sub, p in subs:
            walk(sub, p)

    walk(Config, "")
    return "\n".join(out)

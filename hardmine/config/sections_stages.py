"""Config sections of the stages after the fold models: ``score``, ``select``, ``augment``,
``evaluate``, ``pseudo`` (self-training), ``sweep``, and ``ray`` (the cluster they run on)."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field, model_validator

from hardmine.config.base import Section
from hardmine.vocab import (
    DEFAULT_ARMS,
    Arm,
    ClassBudget,
    FilterBy,
    IssueAction,
    Policy,
    RankBy,
    RetrainBackbone,
    ReviewAs,
    SweepMetric,
    ThresholdKind,
)


class ScoreConfig(Section):
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


class SelectConfig(Section):
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


class AugmentConfig(Section):
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


class EvaluateConfig(Section):
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


class PseudoConfig(Section):
    """Self-training: which fold-ensemble predictions on data.unlabelled_path become pseudo-labelled rows
    (`hardmine pseudo-label` and evaluate's self_training arm use the same rule)."""

    threshold: float = Field(0.9, gt=0.0, le=1.0, description="a pool row is pseudo-labelled when the fold ensemble's highest class probability is at least this")
    max_per_class: Optional[int] = Field(None, ge=1, description="at most this many pseudo-labelled rows per class (those already in the dataset count); null = no fixed cap")
    max_class_share: Optional[float] = Field(
        0.5, gt=0.0,
        description="at most this share of a class's human-labelled rows as pseudo-labelled rows of that class (so one class cannot flood the set); null = no share cap; with max_per_class the smaller cap applies",
    )
    active_batch: int = Field(100, ge=0, description="pool rows nearest the decision boundary (lowest margin, not pseudo-labelled) written to the active-learning queue; 0 = none")


class SweepConfig(Section):
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


class RayConfig(Section):
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

"""One definition per JSON artifact: the typed contracts of the summaries stages write and the report reads.

Writers build plain dicts of these shapes (``evaluation/summary.json``: :func:`hardmine.evaluate.compare`
and :func:`hardmine.evaluate.run_evaluate`; ``sweep/best.json``: :func:`hardmine.sweep.sweep_best`;
``label_quality.json``: :func:`hardmine.scoring.score_table` plus the score stage's ``detection`` and
``signals``, :func:`hardmine.pipeline.score.score`).
Readers go through :func:`read_evaluation_summary`, :func:`read_sweep_best` and
:func:`read_label_quality`, which validate a loaded object against the type (pydantic) and say
which key is missing or wrong, and which stage to re-run, instead of guessing among spellings.

The contracts list what readers rely on; writers may add keys (readers drop unknown ones).
"""
from __future__ import annotations

from typing import Any, Literal, Optional, TypeVar, Union

from typing_extensions import NotRequired, TypedDict

from hardmine.vocab import LabelSet, Metric, SweepMetric

# ============================================================================ evaluation/summary.json

Verdict = Literal["higher", "lower", "not distinguishable"]


class Interval(TypedDict):
    """A metric (mean over seeds, on all held-out rows) and its paired-bootstrap percentile interval."""

    mean: float
    lo: float
    hi: float


class SeedSpread(TypedDict):
    """The metric's spread over seeds alone (t-interval; zero width when the retrain is deterministic)."""

    mean: float
    lo: float
    hi: float
    sd: float
    n: int
    note: NotRequired[str]


class Difference(TypedDict):
    """``arm - reference`` with its paired-bootstrap interval; real only when ``excludes_zero``."""

    mean: float
    lo: float
    hi: float
    excludes_zero: bool
    verdict: Verdict


class McNemar(TypedDict):
    """Exact McNemar test on per-row correctness (seeds pooled, see ``mcnemar_pooling``)."""

    only_arm_correct: int
    only_reference_correct: int
    rows: int
    p_value: float


class Comparison(TypedDict):
    """One arm against another on the same held-out rows."""

    accuracy: Difference
    macro_f1: Difference
    ece: Difference
    mcnemar: McNemar


class LabelScores(TypedDict):
    """An arm's held-out metrics against one set of held-out labels."""

    accuracy: Interval
    macro_f1: Interval
    ece: Interval
    seed_spread: dict[str, SeedSpread]
    vs_baseline: NotRequired[Comparison]


class ArmSummary(LabelScores):
    """Top-level metrics are against the *given* held-out labels; ``true_labels`` when truth is known."""

    seeds: list[int]
    n_seeds: int
    train_rows: NotRequired[float]
    n_augmented: NotRequired[float]
    true_labels: NotRequired[LabelScores]


class Pair(Comparison):
    true_labels: NotRequired[Comparison]


class BootstrapInfo(TypedDict):
    resamples: int
    confidence: float
    seed: int
    rows: int
    method: str


class TruthInfo(TypedDict):
    """Whether the held-out rows have known true labels (injected noise: the demo, benchmarks)."""

    available: bool
    rows: int
    flipped: int
    note: str


class EvaluationSummary(TypedDict):
    reference: Literal["baseline"]
    metrics: list[Metric]
    label_sets: list[LabelSet]
    bootstrap: BootstrapInfo
    mcnemar_pooling: str
    truth: TruthInfo
    arms: dict[str, ArmSummary]
    pairs: dict[str, Pair]
    notes: list[str]
    # added by run_evaluate (absent from a bare compare())
    test_rows: NotRequired[int]
    seconds: NotRequired[float]
    aug_ratio: NotRequired[float]
    review_as: NotRequired[str]
    backbone: NotRequired[str]
    training_sets: NotRequired[dict[str, dict[str, Any]]]


# ============================================================================ sweep/best.json


class SweepCell(LabelScores):
    """One cell of the sweep on the validation split (written by :func:`hardmine.sweep.summarize`).

    ``accuracy`` / ``macro_f1`` / ``ece``: mean over seeds with the paired-bootstrap interval over
    the validation rows; ``vs_baseline``: the cell minus the baseline (no action) on the same
    resampled rows, absent on the baseline itself. ``threshold`` is None for the baseline.
    ``same_as``: the cell whose runs it shares (identical training set), else None.
    """

    key: str
    threshold_kind: str
    threshold: Optional[float]
    aug_ratio: float
    issue_action: str
    no_action: bool
    same_as: Optional[str]
    seeds: list[int]
    n_seeds: int
    train_rows: NotRequired[float]
    n_augmented: NotRequired[float]


class SweepSelection(TypedDict):
    """How the cell was chosen: on a validation split carved from the training rows, never the test split."""

    split: Literal["validation"]
    rows: int
    validation_size: float
    seed: int
    train_rows: int
    seeds: list[int]
    per_class: dict[str, int]
    pool_rows_excluded: int
    rule: str
    reads: list[str]


class SweepCellName(TypedDict):
    key: str
    threshold_kind: str
    threshold: Optional[float]
    aug_ratio: float
    issue_action: str
    no_action: bool


class SweepConfirmation(TypedDict):
    """The chosen cell and the baseline retrained on the full training split, scored once on the test split.

    ``arms``: ``baseline`` and, unless the baseline was chosen, ``chosen`` (with ``vs_baseline``;
    ``true_labels`` when the test rows' truth is known); ``verdict``: the chosen cell's difference
    to the baseline in ``metric`` against the given test labels.
    """

    split: Literal["test"]
    rows: int
    train_rows: int
    metric: SweepMetric
    cell: SweepCellName
    seeds: list[int]
    arms: dict[str, ArmSummary]
    label_sets: list[LabelSet]
    truth: TruthInfo
    bootstrap: BootstrapInfo
    notes: list[str]
    verdict: NotRequired[Verdict]
    verdict_true_labels: NotRequired[Verdict]


class SweepBest(TypedDict):
    """``sweep/best.json``: every cell on validation (best first), the choice, and its test confirmation."""

    metric: SweepMetric
    reference: Literal["baseline"]
    baseline: Optional[SweepCell]
    best: Optional[SweepCell]
    configs: list[SweepCell]
    selection: SweepSelection
    bootstrap: Optional[BootstrapInfo]
    confirmation: Optional[SweepConfirmation]
    trials: dict[str, int]
    note: str
    notes: list[str]
    seconds: NotRequired[float]
    experiment: NotRequired[str]


# ============================================================================ label_quality.json (keys the report reads)


class ClassNoise(TypedDict):
    name: str
    count: int
    estimated_noise_rate: float
    estimated_mislabeled: int
    n_flagged: int


class LabelIssuesInfo(TypedDict):
    filter_used: str
    path: NotRequired[str]
    estimation_method: NotRequired[Optional[str]]
    rank_by: NotRequired[str]


class Detection(TypedDict):
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int


class OutlierSignal(TypedDict):
    """kNN over the frozen embeddings: ``outlier_score`` / ``knn_label_agreement`` / ``is_outlier`` of scores.parquet.

    ``flagged``: rows in the top ``quantile`` by outlier_score (mean cosine distance to the ``k``
    nearest rows), the lowest of them ``min_flagged_score`` (None when none is flagged);
    ``low_agreement_rows``: rows whose neighbours mostly (> half) carry another label;
    ``embeddings``: where the vectors came from; ``index``: exact or hnsw (``score.knn_index``).
    """

    k: int
    index: NotRequired[str]
    quantile: float
    flagged: int
    embeddings: str
    min_flagged_score: Optional[float]
    low_agreement_rows: int
    seconds: NotRequired[float]


class SkippedSignal(TypedDict):
    """A signal the score stage did not compute, and why (e.g. fewer rows than neighbours)."""

    skipped: str


class DuplicateSignal(TypedDict):
    """Exact / near-duplicate groups (``dup_group``) and those whose labels disagree (``is_conflicting_duplicate``)."""

    mode: Literal["near", "exact"]
    threshold: Optional[float]
    groups: int
    rows_in_groups: int
    conflicting_groups: int
    conflicting_rows: int
    seconds: NotRequired[float]


class DualModelSignal(TypedDict):
    """The dual model (:func:`hardmine.dual.error_risk_table`) behind ``error_risk``.

    ``auc``: how well the cross-fitted error_risk ranks the rows the OOF prediction got wrong
    (None when undefined); ``base_rate``: the share of such rows; ``importances``: per feature
    (written highest first, but label_quality.json is stored with sorted keys: order by value to read).
    """

    features: list[str]
    auc: Optional[float]
    base_rate: float
    importances: dict[str, float]
    model: str
    folds: int
    note: Optional[str]
    seconds: NotRequired[float]
    fold_auc: NotRequired[list[Optional[float]]]
    n_rows: NotRequired[int]
    n_errors: NotRequired[int]
    duplicates_dropped: NotRequired[dict[str, str]]


class Signals(TypedDict):
    """The score stage's signals beyond the probabilities; ``duplicates`` / ``dual_model`` absent when off."""

    outliers: Union[OutlierSignal, SkippedSignal]
    duplicates: NotRequired[DuplicateSignal]
    dual_model: NotRequired[DualModelSignal]


class LabelQuality(TypedDict):
    n_rows: int
    n_flagged: int
    estimated_label_errors: int
    estimated_label_error_fraction: float
    per_class: list[ClassNoise]
    label_issues: NotRequired[LabelIssuesInfo]
    detection: NotRequired[Detection]
    signals: NotRequired[Signals]


# ============================================================================ readers

T = TypeVar("T")


class SummaryError(ValueError):
    """A JSON artifact that does not match its contract."""


def _read(kind: Any, obj: Any, artifact: str, stage: str) -> Any:
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(kind).validate_python(obj)
    except ValidationError as e:
        errors = e.errors()
        where = [".".join(str(p) for p in err["loc"]) or "<top level>" for err in errors]
        missing = [w for w, err in zip(where, errors) if err["type"] == "missing"]
        other = [f"{w}: {err['msg']}" for w, err in zip(where, errors) if err["type"] != "missing"]
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + other[:5]
        more = f" (and {len(other) - 5} more)" if len(other) > 5 else ""
        raise SummaryError(
            f"{artifact} does not match the {kind.__name__} contract (hardmine.summaries): "
            f"{'; '.join(problems)}{more}. It was written by another hardmine version or edited: "
            f"re-run the {stage} stage"
        ) from None


def read_evaluation_summary(obj: Any) -> EvaluationSummary:
    """``evaluation/summary.json`` as loaded JSON -> :class:`EvaluationSummary` (validated)."""
    return _read(EvaluationSummary, obj, "evaluation/summary.json", "evaluate")


def read_sweep_best(obj: Any) -> SweepBest:
    """``sweep/best.json`` as loaded JSON -> :class:`SweepBest` (validated)."""
    return _read(SweepBest, obj, "sweep/best.json", "sweep")


def read_label_quality(obj: Any) -> LabelQuality:
    """``label_quality.json`` as loaded JSON -> :class:`LabelQuality` (validated)."""
    return _read(LabelQuality, obj, "label_quality.json", "score")


# ============================================================================ the run at a glance (console)


def _fmt_diff(d: dict, scale: float = 100.0) -> str:
    return f"{scale * d['mean']:+.2f} [{scale * d['lo']:+.2f}, {scale * d['hi']:+.2f}] points, {d['verdict']}"


def best_arm(ev: EvaluationSummary, metric: Metric = "accuracy") -> Optional[tuple[str, LabelSet, Difference]]:
    """The arm with the largest mean difference to the baseline (true labels when known), with its interval."""
    label_set: LabelSet = "true" if ev["truth"]["available"] else "given"
    best = None
    for name, arm in ev["arms"].items():
        scores = arm.get("true_labels") if label_set == "true" else arm
        cmp = (scores or {}).get("vs_baseline")
        if not cmp:
            continue
        d = cmp[metric]
        if best is None or (d["mean"], d["lo"]) > (best[2]["mean"], best[2]["lo"]):
            best = (name, label_set, d)
    return best


def run_overview(store, config_path: str | None = None) -> list[str]:
    """A few lines at the end of a run: what was found and where to look (read from the manifest)."""
    stages = store.manifest().get("stages", {})

    def summ(name: str) -> dict:
        return (stages.get(name) or {}).get("summary") or {}

    lines = [f"summary of {store.uri}:"]
    score, select, aug = summ("score"), summ("select"), summ("augment")
    n = summ("prepare").get("rows")
    if score:
        review = f"hardmine review export {config_path}" if config_path else "hardmine review export CONFIG"
        lines.append(f"  label issues: {score.get('label_issues')} of {n} training rows flagged "
                     f"(estimated wrong labels: {score.get('estimated_label_errors')}); review them: {review}")
    if select:
        aug_line = ""
        t = aug.get("targeted") or {}
        if t:
            aug_line = f"; {t.get('sources', 0)} augmented -> {t.get('kept', 0)} variants kept"
        hard = select.get("n_hard") or 0
        total = select.get("n_hard_with_issues", hard)  # the hard set, label issues included
        lines.append(f"  hard samples: {total} (policy {select.get('policy', 'hardness')}), {hard} of them not label issues"
                     + aug_line)
    ev = summ("evaluate")
    if ev.get("arms"):
        ev = read_evaluation_summary(ev)
        best = best_arm(ev)
        if best is not None:
            name, label_set, d = best
            where = f"({label_set} labels, {ev['bootstrap']['rows']} held-out rows)"
            if d["verdict"] == "higher":
                lines.append(f"  best arm: {name}, accuracy vs baseline {_fmt_diff(d)} {where}")
            else:
                lines.append(f"  no arm beats the baseline on held-out accuracy {where}; closest: {name} {_fmt_diff(d)}")
    sw = summ("sweep")
    if sw.get("chosen") is not None or sw.get("test_verdict") is not None:
        c = sw.get("chosen") or {}
        chosen = "baseline (no action)" if not c or c.get("no_action") else (
            f"{c.get('threshold_kind')}={c.get('threshold')}, aug_ratio={c.get('aug_ratio')}, issue_action={c.get('issue_action')}")
        lines.append(f"  sweep: chose {chosen} on validation; on test: {sw.get('test_verdict')}")
    looks = [p for p in ("report.html", "review", "analysis", "logs/hardmine.log") if store.exists(p)]
    if looks:
        lines.append("  look at: " + ", ".join(store.uri_of(p) for p in looks))
    return lines

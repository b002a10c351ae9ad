"""The project's vocabularies, defined once: each a ``Literal`` alias (used by the typed config) and
the tuple of its values (used by the code that validates or iterates over them).

Change a vocabulary here; config fields, checks, the report and the README's configuration
reference all read it from this module.
"""
from __future__ import annotations

from typing import Literal, get_args

#: model families of the OOF ensemble members (``external``: probabilities given as a file)
Backbone = Literal["tfidf", "frozen", "finetune", "external"]
BACKBONES: tuple[str, ...] = get_args(Backbone)
#: backbones evaluate's retrains can use
RetrainBackbone = Literal["tfidf", "frozen", "finetune"]

#: cleanlab filters accepted by ``cleanlab.filter.find_label_issues`` (in-memory path)
FilterBy = Literal[
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_normalized_margin",
    "low_self_confidence",
]
FILTERS: tuple[str, ...] = get_args(FilterBy)
#: label-quality score methods (``cleanlab.rank.get_label_quality_scores(method=...)``)
RankBy = Literal["self_confidence", "normalized_margin", "confidence_weighted_entropy"]
RANK_BY: tuple[str, ...] = get_args(RankBy)

#: what the selection does with each row (the ``action`` column of selected.parquet)
Action = Literal["augment", "review", "drop", "relabel", "none"]
ACTIONS: tuple[str, ...] = get_args(Action)
#: what happens to likely label errors (``select.issue_action``, the sweep's ``issue_actions``)
IssueAction = Literal["review", "drop", "relabel", "keep"]
ISSUE_ACTIONS: tuple[str, ...] = get_args(IssueAction)
#: which rows count as hard: by hardness (1 - p_true) or by the data map's ambiguous region
Policy = Literal["hardness", "ambiguous"]
POLICIES: tuple[str, ...] = get_args(Policy)
#: how the augmentation sources are spread over classes
ClassBudget = Literal["uniform", "hard_share", "low_f1"]
CLASS_BUDGETS: tuple[str, ...] = get_args(ClassBudget)
#: data-map regions (Swayamdipta et al., 2020)
Region = Literal["easy", "ambiguous", "hard"]
REGIONS: tuple[str, ...] = get_args(Region)

#: hard-example emphasis of the training loop (``train.hard_weighting``)
HardWeighting = Literal["none", "upweight", "oversample", "ohem"]
HARD_WEIGHTINGS: tuple[str, ...] = get_args(HardWeighting)
#: the modes the hard_weighted arm trains with (``none`` falls back to ``upweight``)
HARD_ARM_MODES: tuple[str, ...] = tuple(m for m in HARD_WEIGHTINGS if m != "none")
#: adversarial training of the finetune backbone (``train.adversarial``)
Adversarial = Literal["none", "fgm"]

#: evaluate's arms (``evaluate.arms``)
Arm = Literal["baseline", "clean", "targeted", "clean+targeted", "random", "hard_weighted", "adversarial", "self_training", "reviewed"]
ARMS: tuple[str, ...] = get_args(Arm)
#: the arms ``evaluate.arms`` runs unless told otherwise; the others are opt-in (adversarial needs
#: finetune, self_training a pool, reviewed a review). hard_weighted is in by measurement: README,
#: Benchmarks -> Lift (frozen retrains: +0.69 to +2.22 points over baseline on banking77/clinc150 at 20/class
#: and full size, every interval above zero; with the CPU finetune recipe it cost 13 points, and no arm beat
#: that recipe's baseline trained 2 epochs longer)
DEFAULT_ARMS: tuple[str, ...] = ("baseline", "clean", "targeted", "clean+targeted", "random", "hard_weighted")
#: the arm the reviewed arm is compared with: the same rows with the labels before review
BEFORE_REVIEW = "before_review"
#: every arm name a runs table can hold, in the order the report shows them
ARM_ORDER: tuple[str, ...] = (*ARMS, BEFORE_REVIEW)
#: how the clean arms treat rows the selection sent to review
ReviewAs = Literal["drop", "relabel", "keep"]
REVIEW_AS: tuple[str, ...] = get_args(ReviewAs)

#: metrics of a retrain on held-out rows (``ece``: lower is better)
Metric = Literal["accuracy", "macro_f1", "ece"]
METRICS: tuple[str, ...] = get_args(Metric)
#: the metrics a sweep can choose by (higher is better)
SweepMetric = Literal["accuracy", "macro_f1"]
SWEEP_METRICS: tuple[str, ...] = get_args(SweepMetric)
#: the hardness rule a sweep varies
ThresholdKind = Literal["hardness_quantile", "p_true_max"]
THRESHOLD_KINDS: tuple[str, ...] = get_args(ThresholdKind)
#: which labels a comparison scores against: as given, or the injected truth
LabelSet = Literal["given", "true"]

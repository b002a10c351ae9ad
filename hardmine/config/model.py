"""The whole configuration: ``Config`` holds every section, checks settings against each other
across sections (refused before anything trains), and derives the run directory and the
section hashes of stage fingerprints."""
from __future__ import annotations

import hashlib
import json
import os

from pydantic import Field, model_validator

from hardmine.config.base import Section
from hardmine.config.sections_stages import (
    AugmentConfig,
    EvaluateConfig,
    PseudoConfig,
    RayConfig,
    ScoreConfig,
    SelectConfig,
    SweepConfig,
)
from hardmine.config.sections_train import DataConfig, OOFConfig, TrainConfig

#: (section, key) of the settings naming a file whose content a stage fingerprint hashes: data.path, test_path and
#: truth_path (prepare's inputs), data.unlabelled_path (evaluate's self_training pool), oof.probs_path (the external member)
CONTENT_HASHED = (("data", "path"), ("data", "test_path"), ("data", "truth_path"), ("data", "unlabelled_path"),
                  ("oof", "probs_path"))


class Config(Section):
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

    def hash_payload(self, *sections: str) -> dict:
        """Some sections (or all) as hashed for stage fingerprints: the settings as dumped, except that a file named in
        :data:`CONTENT_HASHED` counts only by how it is read (its extension). The stage fingerprints hash those files'
        content, so the same data spelled by another path (relative or absolute, another checkout, the working_dir
        `ray job submit` unpacks) is the same input and re-runs nothing."""
        from hardmine.data.readers import format_suffix

        d = self.model_dump(mode="json")
        payload = {s: d[s] for s in sections} if sections else d
        for section, key in CONTENT_HASHED:
            if isinstance(payload.get(section), dict) and payload[section].get(key):
                payload[section] = dict(payload[section], **{key: format_suffix(payload[section][key])})
        return payload

    def section_hash(self, *sections: str) -> str:
        """Stable hash of some sections (or all) for stage fingerprints (:meth:`hash_payload`)."""
        return hashlib.sha256(json.dumps(self.hash_payload(*sections), sort_keys=True).encode()).hexdigest()[:16]

"""The stages, declared once: their order, what each fingerprints, what each writes, and the code that runs it.

Everything else reads :data:`STAGES`: :func:`hardmine.pipeline.run.fingerprint` derives every stage's
fingerprint from its declaration, :func:`hardmine.pipeline.run.run_all` runs the stages in this order, the
CLI has a subcommand per stage, the report lists them in this order, and README's "What a run writes"
table is checked against the declared outputs (tests/test_stages.py).

A stage's fingerprint hashes, in this order: the fingerprint of its ``upstream`` stage, the hash of its
config ``sections``, then its ``extras`` (what the config does not name: file contents, derived settings).
Changing anything upstream therefore makes everything downstream stale.

Light on purpose: nothing here imports pyarrow, torch or Ray; a stage's code and the heavier parts of its
fingerprint are imported on first use (:class:`Lazy`).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from hardmine.config import Config
    from hardmine.pipeline.run import Context


class Lazy:
    """The function ``"module:name"``, imported on its first call."""

    def __init__(self, target: str):
        self.target = target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Lazy({self.target!r})"


@dataclass(frozen=True)
class Output:
    """One output path, spelled as README's data contract spells it.

    ``<member>`` expands over ``members(cfg)`` (OOF members) and ``fold-k`` over the folds
    (``fold-0`` .. ``fold-{oof.folds - 1}``); ``when``: written only when it holds for the config.
    """

    path: str
    when: Callable[[Config], bool] | None = None
    members: Callable[[Config], list[str]] | None = None

    def paths(self, cfg: Config) -> list[str]:
        if self.when is not None and not self.when(cfg):
            return []
        paths = [self.path]
        if self.members is not None:
            paths = [p.replace("<member>", m) for p in paths for m in self.members(cfg)]
        if "fold-k" in self.path:
            paths = [p.replace("fold-k", f"fold-{k}") for p in paths for k in range(cfg.oof.folds)]
        return paths


class Stage(str):
    """A stage's declaration. A stage is also its name: it compares, hashes and prints as the name, so
    ``"score" in STAGES`` and ``manifest["stages"][stage]`` work as with plain names.

    ``upstream``: the stage whose fingerprint this one's includes; ``sections``: the config sections it
    hashes; ``extras(ctx)``: the fingerprint's other parts; ``writes``: its outputs; ``run(ctx)``: the stage
    (skips when up to date, see :func:`hardmine.pipeline.run.run_stage`).
    """

    upstream: str | None
    sections: tuple[str, ...]
    extras: Callable[[Context], list[str]] | None
    writes: tuple[Output, ...]
    run: Callable[[Context], dict]

    def __new__(cls, name: str, *, run: Callable[[Context], dict], writes: tuple[Output, ...], upstream: str | None = None,
                sections: tuple[str, ...] = (), extras: Callable[[Context], list[str]] | None = None) -> Stage:
        self = super().__new__(cls, name)
        self.upstream, self.sections, self.extras, self.writes, self.run = upstream, sections, extras, writes, run
        return self

    @property
    def name(self) -> str:
        return str(self)

    def outputs(self, cfg: Config) -> list[str]:
        """The paths this stage writes under ``cfg`` (what resume checks)."""
        return [p for o in self.writes for p in o.paths(cfg)]


def _has_test(cfg: Config) -> bool:
    return bool(cfg.data.test_path or cfg.data.test_size)


def _has_truth(cfg: Config) -> bool:
    return cfg.data.demo is not None or bool(cfg.data.truth_path)


def _frozen(cfg: Config) -> bool:
    return "frozen" in cfg.oof.backbones


STAGES: tuple[Stage, ...] = (
    Stage(
        "prepare", extras=Lazy("hardmine.pipeline.prepare:fingerprint_parts"), run=Lazy("hardmine.pipeline.prepare:prepare"),
        writes=(Output("dataset.parquet"), Output("test.parquet", when=_has_test), Output("truth.parquet", when=_has_truth),
                Output("test_truth.parquet", when=lambda c: _has_test(c) and _has_truth(c))),
    ),
    Stage(
        "oof", upstream="prepare", sections=("oof", "seed"), extras=Lazy("hardmine.pipeline.oof:fingerprint_parts"),
        run=Lazy("hardmine.pipeline.oof:oof"),
        writes=(Output("oof.parquet"), Output("oof/<member>.parquet", members=lambda c: c.oof.backbones),
                Output("embeddings.parquet", when=_frozen),
                # the fold models: the holdout, review and filters load them
                Output("models/<member>/fold-k", members=lambda c: c.oof.trainable)),
    ),
    Stage(
        "holdout", upstream="oof", extras=lambda ctx: ["holdout"], run=Lazy("hardmine.pipeline.oof:holdout"),
        writes=(Output("test_probs.parquet"), Output("test_embeddings.parquet", when=_frozen)),
    ),
    Stage(
        "score", upstream="oof", sections=("score",), run=Lazy("hardmine.pipeline.score:score"),
        writes=(Output("scores.parquet"), Output("label_quality.json")),
    ),
    Stage(
        "select", upstream="score", sections=("select", "seed"), run=Lazy("hardmine.pipeline.select:select_stage"),
        writes=(Output("selected.parquet"), Output("analysis/analysis.json"), Output("plots/hardness_histogram.png")),
    ),
    Stage(
        "augment", upstream="select", sections=("augment", "seed"), extras=Lazy("hardmine.pipeline.augment:fingerprint_parts"),
        run=Lazy("hardmine.pipeline.augment:augment"),
        writes=(Output("augmented.parquet"), Output("selected_random.parquet", when=lambda c: c.augment.random_control),
                Output("augmented_random.parquet", when=lambda c: c.augment.random_control)),
    ),
    Stage(
        "evaluate", upstream="augment", sections=("evaluate", "oof", "train", "seed"),
        extras=Lazy("hardmine.pipeline.evaluate:fingerprint_parts"), run=Lazy("hardmine.pipeline.evaluate:evaluate_stage"),
        writes=(Output("evaluation/runs.parquet"), Output("evaluation/heldout.parquet"), Output("evaluation/summary.json")),
    ),
    Stage(
        "sweep", upstream="augment", sections=("sweep", "select", "augment", "oof", "train", "seed"),
        extras=Lazy("hardmine.pipeline.sweep:fingerprint_parts"), run=Lazy("hardmine.pipeline.sweep:sweep_stage"),
        writes=(Output("sweep/pool.parquet"), Output("sweep/results.parquet"), Output("sweep/validation.parquet"),
                Output("sweep/confirmation.parquet"), Output("sweep/best.json")),
    ),
)


def stage_named(name: str) -> Stage:
    for stage in STAGES:
        if stage == name:
            return stage
    raise KeyError(f"no stage {name!r}: the stages are {', '.join(STAGES)}")


def stages_through(name: str) -> tuple[Stage, ...]:
    """The stages in order, up to and including ``name``."""
    return STAGES[: STAGES.index(stage_named(name)) + 1]

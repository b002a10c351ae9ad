"""Running the declared stages: the run's context, a stage's fingerprint (derived from its declaration),
one stage with resume (:func:`run_stage`), and every stage in order (:func:`run_all`)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from hardmine.pipeline.stages import STAGES, Stage, stage_named

if TYPE_CHECKING:
    from hardmine.config import Config
    from hardmine.store import RunStore


@dataclass
class Context:
    cfg: Config
    store: RunStore
    log: Callable[[str], None] = print
    #: what a stage's fingerprint computed and its body reuses (prepare's input hashes: files are hashed once)
    memo: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self, stage: str) -> str:
        fp = self.store.stage_fingerprint(stage)
        if fp is None:
            raise RuntimeError(f"stage {stage!r} has not run in {self.store.uri}: run it first (hardmine run)")
        return fp


def fingerprint(ctx: Context, stage: Stage) -> str:
    """The upstream stage's fingerprint, the hash of the stage's config sections, then its extras (what is absent is left out)."""
    from hardmine.store import fingerprint_bytes

    parts = [ctx.fingerprint(stage.upstream)] if stage.upstream else []
    if stage.sections:
        parts.append(ctx.cfg.section_hash(*stage.sections))
    if stage.extras is not None:
        parts += stage.extras(ctx)
    return fingerprint_bytes(*parts)


def run_stage(ctx: Context, name: str, fingerprint: str, outputs: list[str], fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Skip when done with the same fingerprint and intact outputs; else run and record.

    Outputs may be files or directories; a done stage whose outputs are missing, empty, unreadable
    (a truncated Parquet file) or changed since completion re-runs (:meth:`RunStore.why_not_done`).
    """
    store = ctx.store
    why = store.why_not_done(name, fingerprint, outputs)
    if why is None:
        ctx.log(f"[{name}] up to date (fingerprint {fingerprint}): skipped")
        return store.manifest()["stages"][name].get("summary", {})
    rec = store.manifest().get("stages", {}).get(name) or {}
    if rec.get("status") == "done" and rec.get("fingerprint") == fingerprint:
        ctx.log(f"[{name}] outputs damaged since it completed ({why}): running again")
    else:
        ctx.log(f"[{name}] running")
    store.mark(name, "running", fingerprint=fingerprint, started=time.time())
    t0 = time.time()
    store.reads.clear()
    try:
        summary = fn()
    except BaseException as e:
        store.mark(name, "failed", error=f"{type(e).__name__}: {e}")
        raise
    seconds = time.time() - t0
    reads = sorted(set(store.reads))
    signatures = store.signatures(outputs)
    rows = {o: sig["rows"] for o, sig in signatures.items() if "rows" in sig}
    store.mark(
        name, "done", fingerprint=fingerprint, seconds=round(seconds, 3), outputs=outputs, rows=rows, reads=reads, summary=summary,
        signatures=signatures,
    )
    problem = store.output_problem(store.manifest()["stages"][name], outputs)
    if problem:  # a stage that does not write what it declares would re-run every time
        ctx.log(f"warning: [{name}] finished but {problem}: it will run again next time")
    ctx.log(f"[{name}] done in {seconds:.1f}s")
    return summary


def run_declared(ctx: Context, name: str, body: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """The declared stage ``name`` through :func:`run_stage`: ``body(fingerprint)`` runs unless it is up to date."""
    stage = stage_named(name)
    fp = fingerprint(ctx, stage)
    return run_stage(ctx, stage.name, fp, stage.outputs(ctx.cfg), lambda: body(fp))


def run_all(cfg: Config, log=print, until: str | None = None) -> RunStore:
    """Every stage up to ``until`` (all, then the report), holding the run's lock throughout.

    Raises :class:`hardmine.store.RunLockedError` when another process uses the run directory
    (re-entrant: a caller of this process that already holds the lock may call it).
    """
    from hardmine.store import RunStore

    store = RunStore(cfg.run_dir, log=log)
    with store.lock():
        store.update_manifest(config=cfg.model_dump(mode="json"), config_hash=cfg.section_hash(), name=cfg.name)
        ctx = Context(cfg, store, log)
        for stage in STAGES:
            stage.run(ctx)
            if stage == until:
                break
        if until is None:
            from hardmine.report import write_report

            log(f"report: {write_report(store.uri)}")
    return store

"""Checks that need no cluster, run before Ray starts: input files, model names and paths, resource requests.

The config's own validation (types, ranges, generator and filter options) runs when it is
loaded; the prepare stage validates the data rows and the truth file. What is left — things
that depend on this machine, not on the YAML alone — is checked here, so a wrong path or an
impossible request fails in a second instead of after Ray has started and a stage has run.
"""
from __future__ import annotations

import os
from pathlib import Path

from hardmine.config import Config, ConfigError
from hardmine.data import DataError

LOCAL_PREFIXES = ("/", "./", "../", "~", "file://")


def looks_local(name: str) -> bool:
    """A model name written as a filesystem path (not a hub id such as ``org/model``)."""
    return name.startswith(LOCAL_PREFIXES) or (os.sep == "\\" and ":" in name[:3])


def check_model(name: str, key: str) -> None:
    """``packaged:*`` must be a known packaged model (and installed); a local path must exist and be a model."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{key} is empty: give packaged:minilm, a hub name (org/model) or a local model directory")
    if name.startswith("packaged:"):
        from hardmine.embed import PACKAGED

        if name not in PACKAGED:
            raise ConfigError(f"{key}: unknown packaged model {name!r}; choose one of {sorted(PACKAGED)}, a hub name or a local path")
        import importlib.util

        module = PACKAGED[name].replace("-", "_")
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"{key}: {name!r} needs the package {PACKAGED[name]!r}, which is not installed. "
                              "Fix: pip install 'hardmine[offline]'")
        return
    if looks_local(name):
        path = Path(os.path.expanduser(name.removeprefix("file://")))
        if not path.exists():
            raise ConfigError(f"{key}: the local model path {name!r} does not exist. Fix: point it at a directory saved with "
                              "save_pretrained (config.json + weights), or use a hub name such as org/model")
        if path.is_dir() and not (path / "config.json").exists():
            raise ConfigError(f"{key}: {name!r} has no config.json, so it is not a transformers model directory. "
                              "Fix: point it at the folder save_pretrained wrote")


def check_inputs(cfg: Config) -> None:
    d = cfg.data
    for key in ("path", "test_path", "truth_path", "unlabelled_path"):
        value = getattr(d, key, None)
        if not value or "://" in str(value):
            continue
        p = Path(value)
        if not p.exists():
            raise DataError(f"data.{key}: {value!r} does not exist (working directory {os.getcwd()}). "
                            f"Fix: correct data.{key}; relative paths are relative to the working directory")
        if p.is_file() and not os.access(p, os.R_OK):
            raise DataError(f"data.{key}: {value!r} is not readable (permission denied). Fix: chmod it or copy it")
    if d.demo is None and not d.path:
        raise ConfigError("data.path is not set: give your CSV/TSV/JSONL/Parquet file, or data.demo: {} for the demo dataset")


def check_models(cfg: Config) -> None:
    o = cfg.oof
    if any(b in ("frozen", "finetune") for b in o.backbones) or cfg.score.knn_k:
        check_model(o.model, "oof.model")


def check_resources(cfg: Config) -> None:
    """A local cluster (no address) cannot grant GPUs this machine does not have."""
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        return  # a cluster: what it can grant is known once connected (or after the autoscaler adds nodes)
    wants_gpu = cfg.oof.gpus_per_fold > 0 and any(b in ("frozen", "finetune") for b in cfg.oof.backbones)
    if not wants_gpu:
        return
    if cfg.ray.num_gpus is not None:
        if cfg.ray.num_gpus == 0:
            raise ConfigError(f"oof.gpus_per_fold={cfg.oof.gpus_per_fold:g} but ray.num_gpus=0 for the local cluster. "
                              "Fix: set oof.gpus_per_fold: 0 (CPU), or ray.num_gpus to the GPUs this machine has")
        return
    try:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no torch CUDA runtime: no GPU
        gpus = 0
    if gpus == 0:
        raise ConfigError(f"oof.gpus_per_fold={cfg.oof.gpus_per_fold:g} asks for a GPU, but this machine has none and no "
                          "Ray cluster address is set. Fix: set oof.gpus_per_fold: 0 to train on CPU, or run on a GPU "
                          "cluster (ray job submit, or ray.address)")


def check_run_root(cfg: Config) -> None:
    root = cfg.run_root
    if "://" in root and not root.startswith("file://"):
        return
    p = Path(root.removeprefix("file://"))
    for parent in (p, *p.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"run_root {root!r}: {str(parent)!r} is a file, not a directory. Fix: set run_root to a directory")
            if not os.access(parent, os.W_OK):
                raise ConfigError(f"run_root {root!r}: {str(parent)!r} is not writable. Fix: set run_root to a writable directory")
            break


def preflight(cfg: Config) -> None:
    """Everything checkable before Ray starts; raises ConfigError / DataError with the key and the fix."""
    check_run_root(cfg)
    check_inputs(cfg)
    check_models(cfg)
    check_resources(cfg)


#: above this share of texts with no token the encoder knows, the run is refused (the encoder cannot read the data)
MAX_UNKNOWN_SHARE = 0.5


def unknown_token_rows(texts: list[str], model_name: str) -> list[int] | None:
    """Rows whose text has no token the encoder's tokenizer knows (empty, or only ``[UNK]``): they all embed alike.

    None when the model has no transformers tokenizer (``packaged:use-multilingual``).
    """
    if model_name == "packaged:use-multilingual":
        return None
    from transformers import AutoTokenizer

    from hardmine.embed import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path(model_name))
    unk = tok.unk_token_id
    special = set(tok.all_special_ids) - ({unk} if unk is not None else set())
    bad: list[int] = []
    step = 2048
    for start in range(0, len(texts), step):
        chunk = ["" if t is None else str(t) for t in texts[start:start + step]]
        for i, ids in enumerate(tok(chunk, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]):
            known = [x for x in ids if x not in special and x != unk]
            if not known:
                bad.append(start + i)
    return bad


def check_known_tokens(ids: list[str], texts: list[str], cfg: Config, log=print) -> int:
    """Warn (or refuse, above :data:`MAX_UNKNOWN_SHARE`) when texts have no token the encoder knows; returns the count."""
    if not any(b in ("frozen", "finetune") for b in cfg.oof.backbones) and cfg.score.knn_k == 0:
        return 0
    try:
        bad = unknown_token_rows(texts, cfg.oof.model)
    except (OSError, ValueError) as e:  # a hub tokenizer not reachable from here: the workers load it later
        log(f"note: could not load the tokenizer of oof.model={cfg.oof.model!r} here ({type(e).__name__}), so texts it "
            "cannot read are not checked before training")
        return 0
    if not bad:
        return 0
    share = len(bad) / max(len(texts), 1)
    examples = ", ".join(f"{ids[i]!r} ({texts[i][:20]!r})" for i in bad[:5])
    what = (f"{len(bad)} of {len(texts)} texts ({100 * share:.1f}%) have no token that oof.model={cfg.oof.model!r} knows "
            f"(its tokenizer reads them as [UNK] only), e.g. {examples}: the encoder embeds them all alike, so their "
            "neighbours, outlier scores and frozen-member probabilities say nothing about the text")
    fix = ("Fix: use an encoder whose vocabulary covers these characters (e.g. oof.model: packaged:use-multilingual "
           "with backbones [tfidf, frozen], or a multilingual hub model), or remove those rows")
    if share > MAX_UNKNOWN_SHARE:
        raise DataError(f"{what}. {fix}")
    log(f"warning: {what}. {fix}")
    return len(bad)

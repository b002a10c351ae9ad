"""One training loop for both backbones, checkpointing every epoch and resuming.

The loop is agnostic of where it runs: a ``Checkpoints`` object gives it the last checkpoint
(if a previous attempt died) and persists a new one after every epoch. Inside a Ray Train
worker that is ``ray.train.get_checkpoint``/``ray.train.report``; in a plain Ray task it is a
directory of the run store (see ``hardmine.oof.runner``). The per-row loss (weights, OHEM, FGM)
is in :mod:`hardmine.oof.losses`.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Protocol

import numpy as np
import torch

from hardmine.faults import fold_fault
from hardmine.oof.losses import FGM, batch_loss, fgm_backward, ohem_mask, row_coefficients, row_tensors  # noqa: F401 - re-exported
from hardmine.oof.models import Head, autocast_dtype, heldout_probs, load_finetune
from hardmine.runtime import torch_device

ARRAYS = "arrays.npz"
STATE = "state.pt"
META = "meta.json"
MODEL_DIR = "model"


class Checkpoints(Protocol):
    def latest(self) -> str | None:
        """Local directory holding the newest checkpoint, or None."""

    def save(self, local_dir: str, metrics: dict) -> None:
        """Persist ``local_dir`` as the new checkpoint and report ``metrics``."""


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


class _Backbone:
    """What differs between finetune and frozen: model, batches, prediction."""

    def __init__(self, cfg: dict, device: torch.device):
        self.cfg = cfg
        self.device = device
        data = cfg["data"]
        if cfg["backbone"] == "finetune":
            self.tokenizer, self.model = load_finetune(cfg["model_path"], cfg["num_labels"])
        else:
            dim = int(np.asarray(data["train_x"]).shape[1])
            self.model = Head(dim, cfg["num_labels"], cfg["head"], cfg["head_hidden"])
        self.model.to(device)

    def _inputs(self, xs) -> dict:
        if self.cfg["backbone"] == "finetune":
            enc = self.tokenizer(
                [str(t) for t in xs], padding=True, truncation=True, max_length=self.cfg["max_length"], return_tensors="pt"
            )
            return {k: v.to(self.device) for k, v in enc.items()}
        return {"x": torch.tensor(np.asarray(xs), dtype=torch.float32, device=self.device)}

    def logits(self, inputs: dict) -> torch.Tensor:
        if self.cfg["backbone"] == "finetune":
            return self.model(**inputs).logits
        return self.model(inputs["x"])

    def batch_size(self) -> int:
        return self.cfg["batch_size"] if self.cfg["backbone"] == "finetune" else self.cfg["head_batch_size"]

    def lr(self) -> float:
        return self.cfg["lr"] if self.cfg["backbone"] == "finetune" else self.cfg["head_lr"]

    @torch.inference_mode()
    def predict(self, xs) -> np.ndarray:
        """Held-out probabilities by a full float32 forward pass, whatever the training's autocast.

        They feed cleanlab (label quality, issue ranking) and the training dynamics: bf16 logits
        would quantise them (bf16 keeps 8 bits of mantissa). The master weights are float32
        under autocast, so this is the exact float32 model; the cost is a forward pass over the
        held-out fold per epoch, small next to training."""
        self.model.eval()
        out = []
        bs = self.batch_size() * 2
        for i in range(0, len(xs), bs):
            with torch.autocast(self.device.type, enabled=False):  # float32, even if a caller enabled autocast
                logits = self.logits(self._inputs(xs[i : i + bs]))
            out.append(heldout_probs(logits).cpu().numpy())
        if not out:
            return np.zeros((0, self.cfg["num_labels"]), dtype=np.float32)
        probs = np.concatenate(out).astype(np.float32)
        return probs / probs.sum(axis=1, keepdims=True)

    def save_model(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        if self.cfg["backbone"] == "finetune":
            self.model.save_pretrained(path)
            self.tokenizer.save_pretrained(path)
        else:
            torch.save(self.model.state_dict(), os.path.join(path, "head.pt"))
        with open(os.path.join(path, "hardmine_model.json"), "w") as f:
            json.dump(
                {
                    "backbone": self.cfg["backbone"],
                    "encoder": self.cfg.get("encoder"),
                    "max_length": self.cfg["max_length"],
                    "num_labels": self.cfg["num_labels"],
                    "head": getattr(self.model, "meta", None),
                },
                f,
            )


def scaler_state(scaler: torch.amp.GradScaler) -> dict:
    """``{"scaler": state}`` for a checkpoint when loss scaling is on (fp16), else ``{}``.

    The scale grows and shrinks with overflows over thousands of steps; a resumed fold that
    restarted it at 65536 would skip steps on overflow until it had found its scale again."""
    return {"scaler": scaler.state_dict()} if scaler.is_enabled() else {}


def restore_scaler(scaler: torch.amp.GradScaler, state: dict) -> None:
    """Load the GradScaler state of a checkpoint written by :func:`scaler_state` (if any)."""
    if scaler.is_enabled() and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])


def is_linear(cfg: dict) -> bool:
    """Fitted by scikit-learn to convergence (``hardmine.oof.linear``): tfidf, and frozen with the logreg head."""
    return cfg["backbone"] == "tfidf" or (cfg["backbone"] == "frozen" and cfg.get("head") == "logreg")


def _set_threads(threads: Callable[[], int] | None) -> None:
    if threads is not None:
        n = max(1, int(threads()))
        if n != torch.get_num_threads():
            torch.set_num_threads(n)


def train_fold(
    cfg: dict, ckpts: Checkpoints, log: Callable[[str], None] = print, threads: Callable[[], int] | None = None
) -> dict[str, Any]:
    """Train one fold; return held-out probs per epoch, final probs, test probs and timings.

    ``threads``, when given, is asked before every step how many torch threads to use (see
    :class:`hardmine.oof.runner.ElasticThreads`); otherwise ``cfg["threads"]`` holds throughout.

    ``cfg`` holds: fold, seed, backbone, num_labels, model_path / head settings, max_length,
    batch_size, head_batch_size, lr, head_lr, epochs, warmup_ratio, weight_decay,
    mixed_precision, threads, fault, fault_marker, the ``train.*`` keys (hard_weighting,
    hard_weight_cap, ohem_keep, adversarial, fgm_epsilon; see :func:`hardmine.oof.settings.fold_training`)
    and ``data`` = {train_x, train_y, val_x, val_y, val_ids, test_x (optional), train_w (optional:
    per-row loss weights, upweight), train_exempt (optional: rows OHEM never picks, label issues)}
    where x are texts (finetune) or embeddings (frozen).
    """
    if is_linear(cfg):
        from hardmine.oof.linear import train_linear_fold

        return train_linear_fold(cfg, ckpts, log)
    started = time.time()
    if cfg.get("threads"):
        torch.set_num_threads(max(1, int(cfg["threads"])))
    device = torch_device()  # cuda only where Ray gave this worker a GPU (or outside Ray)
    amp = autocast_dtype(cfg["mixed_precision"], device)
    _seed_all(cfg["seed"] * 1000 + cfg["fold"])
    data = cfg["data"]
    train_x, train_y = data["train_x"], np.asarray(data["train_y"], dtype=np.int64)
    val_x = data["val_x"]
    epochs = cfg["epochs"]

    bb = _Backbone(cfg, device)
    loaded = time.time()
    decay, no_decay = [], []
    for n, p in bb.model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in n.lower() else decay).append(p)
    optim = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}], lr=bb.lr()
    )
    steps_per_epoch = max(1, math.ceil(len(train_y) / bb.batch_size()))
    total = steps_per_epoch * epochs
    warmup = int(total * cfg["warmup_ratio"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    # fp16 needs loss scaling (bf16 and float32 do not); its scale is part of the training state
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    # train.*: per-row weights (upweight), OHEM, FGM (finetune)
    weights, exempt = row_tensors(cfg, data, len(train_y))
    ohem_keep = float(cfg.get("ohem_keep", 0.5)) if cfg.get("hard_weighting") == "ohem" else None
    fgm = None
    if cfg.get("adversarial", "none") == "fgm":
        if cfg["backbone"] != "finetune":
            raise ValueError(f"train.adversarial: fgm needs the finetune backbone (word embeddings), not {cfg['backbone']}")
        fgm = FGM(bb.model, cfg["fgm_epsilon"])

    start_epoch, epoch_probs, first_started, resumed = 0, [], started, []
    latest = ckpts.latest()
    if latest:
        state = torch.load(os.path.join(latest, STATE), map_location=device, weights_only=False)
        bb.model.load_state_dict(state["model"])
        if "optim" in state:  # the final epoch's checkpoint has no optimiser state: nothing follows it
            optim.load_state_dict(state["optim"])
            sched.load_state_dict(state["sched"])
            restore_scaler(scaler, state)
        start_epoch = state["epoch"] + 1
        epoch_probs = list(np.load(os.path.join(latest, ARRAYS))["epoch_probs"])
        first_started = state.get("started", started)
        resumed = [*state.get("resumed_after_epochs", []), int(state["epoch"])]  # recorded in every later checkpoint
        log(f"fold {cfg['fold']}: resumed from checkpoint after epoch {state['epoch']}")

    metrics: dict[str, Any] = {}
    test_probs = None
    for epoch in range(start_epoch, epochs):
        _seed_all(cfg["seed"] * 1000003 + cfg["fold"] * 1009 + epoch)
        perm = np.random.default_rng(cfg["seed"] * 7919 + cfg["fold"] * 131 + epoch).permutation(len(train_y))
        bb.model.train()
        total_loss = 0.0
        for step in range(steps_per_epoch):
            fold_fault(cfg, epoch, step, steps_per_epoch)
            _set_threads(threads)
            idx = perm[step * bb.batch_size() : (step + 1) * bb.batch_size()]
            xb = [train_x[i] for i in idx] if cfg["backbone"] == "finetune" else np.asarray(train_x)[idx]
            yb = torch.as_tensor(train_y[idx], device=device)
            wb = None if weights is None else torch.as_tensor(weights[idx], device=device)
            eb = None if exempt is None else torch.as_tensor(exempt[idx], device=device)
            inputs = bb._inputs(xb)

            def compute_loss() -> torch.Tensor:
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    return batch_loss(bb.logits(inputs).float(), yb, weights=wb, ohem_keep=ohem_keep, exempt=eb)

            loss = compute_loss()
            optim.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if fgm is not None:
                fgm_backward(fgm, compute_loss, lambda adv: scaler.scale(adv).backward())
            scaler.unscale_(optim)
            torch.nn.utils.clip_grad_norm_(bb.model.parameters(), 1.0)
            scaler.step(optim)
            scaler.update()
            sched.step()
            total_loss += float(loss.detach())
        _set_threads(threads)
        probs = bb.predict(val_x)
        epoch_probs.append(probs)
        last = epoch == epochs - 1
        val_acc = float((probs.argmax(1) == np.asarray(data["val_y"])).mean())
        metrics = {"fold": cfg["fold"], "epoch": epoch, "loss": total_loss / steps_per_epoch, "val_accuracy": val_acc}
        with tempfile.TemporaryDirectory(prefix="hardmine-ckpt-") as tmp:
            torch.save(
                {
                    "model": bb.model.state_dict(),
                    # AdamW's moments are twice the model's size; the last epoch's checkpoint only serves
                    # to return its arrays and model, so it is written without them
                    **({} if last else {"optim": optim.state_dict(), "sched": sched.state_dict(), **scaler_state(scaler)}),
                    "epoch": epoch,
                    "started": first_started,
                    "resumed_after_epochs": resumed,
                },
                os.path.join(tmp, STATE),
            )
            arrays = {"epoch_probs": np.stack(epoch_probs)}
            if last:
                if data.get("test_x") is not None and len(data["test_x"]):
                    test_probs = bb.predict(data["test_x"])
                    arrays["test_probs"] = test_probs
                bb.save_model(os.path.join(tmp, MODEL_DIR))
            np.savez(os.path.join(tmp, ARRAYS), **arrays)
            with open(os.path.join(tmp, META), "w") as f:
                json.dump({**metrics, "started": first_started, "loaded": loaded, "finished": time.time(), "resumed_after_epochs": resumed}, f)
            ckpts.save(tmp, metrics)
        log(f"fold {cfg['fold']} epoch {epoch}: loss {metrics['loss']:.4f} held-out acc {val_acc:.4f}")
    return {"metrics": metrics, "val_probs": epoch_probs[-1], "started": first_started, "finished": time.time()}


def read_checkpoint(path: str) -> dict[str, Any]:
    """Arrays and timing of a final fold checkpoint directory."""
    arrays = np.load(os.path.join(path, ARRAYS))
    with open(os.path.join(path, META)) as f:
        meta = json.load(f)
    return {
        "epoch_probs": arrays["epoch_probs"],
        "test_probs": arrays["test_probs"] if "test_probs" in arrays.files else None,
        "meta": meta,
    }


class DirCheckpoints:
    """Checkpoints as ``epoch-NNNN`` folders under a directory (plain Ray tasks; local or URI)."""

    def __init__(self, root: str):
        from hardmine.store import RunStore

        self.uri = root
        self.store = RunStore(root)  # writes each checkpoint atomically
        self.fs, self.root = self.store.fs, self.store.root
        self._local = tempfile.mkdtemp(prefix="hardmine-restore-")

    def _epochs(self) -> list[str]:
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        return sorted(i.path for i in infos if i.type == pafs.FileType.Directory and i.base_name.startswith("epoch-"))

    def latest(self) -> str | None:
        import pyarrow.fs as pafs

        eps = self._epochs()
        if not eps:
            return None
        if isinstance(self.fs, pafs.LocalFileSystem):
            return eps[-1]
        dst = os.path.join(self._local, os.path.basename(eps[-1]))
        pafs.copy_files(eps[-1], dst, source_filesystem=self.fs, destination_filesystem=pafs.LocalFileSystem())
        return dst

    def save(self, local_dir: str, metrics: dict) -> None:
        self.store.put_dir(local_dir, f"epoch-{metrics['epoch']:04d}")
        for old in self._epochs()[:-2]:  # keep the two newest
            self.fs.delete_dir(old)


def _checkpoint_epoch(fs, path: str) -> int | None:
    """Epoch of a checkpoint directory on ``fs``, or None when it is incomplete or unreadable."""
    import pyarrow.fs as pafs

    try:
        infos = fs.get_file_info([f"{path}/{name}" for name in (STATE, ARRAYS, META)])
        if any(i.type != pafs.FileType.File for i in infos):
            return None
        with fs.open_input_stream(f"{path}/{META}") as f:
            return int(json.loads(f.read())["epoch"])
    except (OSError, ValueError, KeyError):
        return None


class TrainCheckpoints:
    """Checkpoints through Ray Train (``get_checkpoint`` / ``report``) inside a TorchTrainer worker."""

    def __init__(self):
        self._ctx = None

    def latest(self) -> str | None:
        """The newest complete checkpoint of this run: Ray Train's, or a newer one already in storage.

        Ray Train registers a reported checkpoint only when its controller next polls the worker
        (every couple of seconds), so a worker that dies sooner after ``report`` would restart from
        an older checkpoint (or from scratch) although the newer one is persisted. Reading the run's
        storage too closes that gap.
        """
        import pyarrow.fs as pafs
        import ray.train

        found = []
        ckpt = ray.train.get_checkpoint()
        if ckpt is not None:
            found.append(ckpt)
        storage = ray.train.get_context().get_storage()
        fs = storage.storage_filesystem
        for info in fs.get_file_info(pafs.FileSelector(storage.experiment_fs_path, allow_not_found=True)):
            if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_"):
                found.append(ray.train.Checkpoint(info.path, filesystem=fs))
        complete = [(e, -n) for n, c in enumerate(found) if (e := _checkpoint_epoch(c.filesystem, c.path)) is not None]
        if not complete:
            return None
        best = found[-max(complete)[1]]  # the newest epoch; Ray Train's own checkpoint on a tie
        local = tempfile.mkdtemp(prefix="hardmine-restore-")
        shutil.copytree(best.to_directory(), local, dirs_exist_ok=True)
        if best is not ckpt:  # register it with Ray Train too, so the run's result is right even if nothing follows
            with open(os.path.join(local, META)) as f:
                meta = json.load(f)
            metrics = {k: meta[k] for k in ("fold", "epoch", "loss", "val_accuracy") if k in meta}
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(local))
        return local

    def save(self, local_dir: str, metrics: dict) -> None:
        import ray.train

        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(local_dir))

"""Predict new texts with the K fold models saved by the OOF stage (mean of their probabilities)."""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from hardmine.store import RunStore


def _local_dir(store: RunStore, name: str) -> str:
    """A local directory with the contents of ``name`` (copied when the run is remote)."""
    import pyarrow.fs as pafs

    if isinstance(store.fs, pafs.LocalFileSystem):
        return store.path(name)
    dst = tempfile.mkdtemp(prefix="hardmine-model-")
    pafs.copy_files(store.path(name), dst, source_filesystem=store.fs, destination_filesystem=pafs.LocalFileSystem())
    return dst


class _Member:
    """The K fold models of one ensemble member; ``predict(texts)`` averages their probabilities."""

    def __init__(self, dirs: list[str], device):
        import torch

        with open(os.path.join(dirs[0], "hardmine_model.json")) as f:
            self.meta = json.load(f)
        self.backbone = self.meta["backbone"]
        self.device = device
        self.encoder = None
        self.last_embeddings: np.ndarray | None = None
        if self.backbone == "tfidf":
            from hardmine.oof.linear import TfidfModel

            self.models = [TfidfModel(d) for d in dirs]
        elif self.backbone == "frozen":
            from hardmine.embed import load_encoder
            from hardmine.oof.models import Head

            self.encoder = load_encoder(self.meta["encoder"], max_length=self.meta["max_length"], chunk=True)
            h = self.meta["head"]
            self.models = []
            for d in dirs:
                head = Head(h["dim"], h["num_labels"], h["kind"], h["hidden"])
                head.load_state_dict(torch.load(os.path.join(d, "head.pt"), map_location="cpu"))
                self.models.append(head.to(device).eval())
        else:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(dirs[0])
            self.models = [AutoModelForSequenceClassification.from_pretrained(d).to(device).eval() for d in dirs]

    def predict_embeddings(self, emb: np.ndarray) -> np.ndarray:
        import torch

        x = torch.tensor(np.asarray(emb), dtype=torch.float32, device=self.device)
        with torch.inference_mode():
            return np.mean([torch.softmax(m(x).float(), -1).cpu().numpy() for m in self.models], axis=0).astype(np.float32)

    def predict(self, texts: list[str], batch_size: int) -> np.ndarray:
        import torch

        k = int(self.meta["num_labels"])
        if self.backbone == "tfidf":
            return np.mean([m.predict(texts) for m in self.models], axis=0).astype(np.float32)
        if self.backbone == "frozen":
            self.last_embeddings = self.encoder.encode(texts, batch_size)
            return self.predict_embeddings(self.last_embeddings)
        out = np.zeros((len(texts), k), dtype=np.float64)
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                enc = self.tokenizer(
                    texts[i : i + batch_size], padding=True, truncation=True,
                    max_length=self.meta["max_length"], return_tensors="pt",
                ).to(self.device)
                for m in self.models:
                    # float32 logits: the probabilities feed cleanlab and the filters
                    out[i : i + batch_size] += torch.softmax(m(**enc).logits.float(), -1).cpu().numpy()
        return (out / len(self.models)).astype(np.float32)


class FoldEnsemble:
    """The fold models of a run, every trainable ensemble member; ``predict(texts)`` returns (n, K)
    probabilities combined with the OOF stage's weights (and temperature, when calibrated).

    An ``external`` member has no models: new texts are predicted by the trainable members, their
    weights renormalised."""

    def __init__(self, run_dir: str, threads: int | None = None, batch_size: int = 64):
        import torch

        if threads:
            torch.set_num_threads(threads)
        store = RunStore(run_dir)
        manifest = store.manifest()
        folds = manifest.get("config", {}).get("oof", {}).get("folds")
        summary = manifest.get("stages", {}).get("oof", {}).get("summary", {}) or {}
        weights = summary.get("weights") or {}
        names = [b for b in (summary.get("backbones") or list(weights)) if b != "external"]
        if not folds or not names or not all(store.exists(f"models/{b}/fold-0") for b in names):
            raise FileNotFoundError(
                f"{run_dir} has no fold models: run the oof stage first"
                + (" (an external-only ensemble has no models to predict new texts: add a trainable member to oof.backbones)"
                   if summary.get("backbones") == ["external"] else "")
            )
        self.batch_size = batch_size
        from hardmine.runtime import torch_device

        # a filter actor holding no GPU predicts on CPU, even on a GPU node (Ray 2.60 does not hide the GPUs)
        self.device = torch_device()
        self.members = {b: _Member([_local_dir(store, f"models/{b}/fold-{k}") for k in range(folds)], self.device) for b in names}
        w = np.array([float(weights.get(b, 1.0)) for b in names])
        self.weights = w / w.sum() if w.sum() > 0 else np.full(len(names), 1.0 / len(names))
        cal = summary.get("calibration") or {}
        self.temperature = float(cal["temperature"]) if cal.get("method") == "temperature" and cal.get("temperature") else None
        self.meta = next(iter(self.members.values())).meta

    @property
    def num_labels(self) -> int:
        return int(self.meta["num_labels"])

    @property
    def models(self) -> list:
        return [m for member in self.members.values() for m in member.models]

    @property
    def frozen(self) -> "_Member | None":
        return self.members.get("frozen")

    def predict(self, texts: list[str]) -> np.ndarray:
        from hardmine.oof.combine import apply_temperature, combine

        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        probs = combine([m.predict(texts, self.batch_size) for m in self.members.values()], self.weights)
        return apply_temperature(probs, self.temperature) if self.temperature else probs


def fold_predictor_factory(run_dir: str, threads: int = 1):
    """A zero-argument factory (picklable) that loads the ensemble inside a Ray actor."""

    def factory():
        return FoldEnsemble(run_dir, threads=threads).predict

    return factory

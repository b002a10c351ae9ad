"""Test helpers: tiny real transformers models built from configs, small datasets."""
from __future__ import annotations

import random
from pathlib import Path

WORDS = {
    "billing": "invoice charge bill payment card fee overcharged statement price paid".split(),
    "shipping": "package delivery arrive courier tracking shipped parcel late address box".split(),
    "account": "password login account locked email reset username signin profile access".split(),
}


def tiny_bert_dir(path: Path, num_labels: int = 3) -> str:
    """Save a tiny random BERT classifier + a tokenizer with a deterministic vocab."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted({w for ws in WORDS.values() for w in ws} | {"my", "the", "is", "a", "please", "help"})
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(str(path / "vocab.txt"))
    cfg = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, num_labels=num_labels,
    )
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def make_rows(n_per_class: int = 20, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for label, words in WORDS.items():
        for i in range(n_per_class):
            text = " ".join(["my"] + rng.sample(words, 4) + ["please", "help"])
            rows.append({"id": f"{label}-{i}", "text": text, "label": label})
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, rows: list[dict]) -> str:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return str(path)

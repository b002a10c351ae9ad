"""The data-map plot (dataset cartography) from a scores table written by hardmine.scoring.score_table."""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest

from hardmine.plots import data_map, data_map_inputs, data_map_png
from hardmine.scoring import score_table
from hardmine.select import data_map_regions

NAMES = ["billing", "배송", "account"]


def _scores(n=240, epochs=3, seed=0, with_dynamics=True):
    """Seeded random OOF probabilities over ``epochs`` epochs, the given label favoured by a per-row amount."""
    rng = np.random.default_rng(seed)
    k = len(NAMES)
    labels = rng.integers(0, k, n)
    ep = rng.dirichlet(np.ones(k), (n, epochs)).astype(np.float32)
    ep[np.arange(n), :, labels] += rng.uniform(0, 3, (n, 1)) * rng.uniform(0.3, 1.5, (n, epochs))
    ep /= ep.sum(-1, keepdims=True)
    ids = [f"r{i}" for i in range(n)]
    table, _ = score_table(ids, labels, ep[:, -1], ep if with_dynamics else None, label_names=NAMES)
    return table


def _regions(table):
    return data_map_regions(table.column("dyn_confidence").to_numpy(), table.column("dyn_variability").to_numpy(),
                            table.column("id").to_pylist())


def _image(data):
    from PIL import Image

    img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    img.load()
    return img


def test_data_map_writes_a_png_with_and_without_regions(tmp_path):
    scores = _scores()
    assert scores.column("dyn_variability").null_count == 0
    path = data_map(scores, tmp_path / "plots" / "data_map.png", label_names=NAMES, regions=_regions(scores).tolist())
    assert path.endswith("data_map.png") and (tmp_path / "plots" / "data_map.png").stat().st_size > 5_000
    img = _image(path)
    assert img.format == "PNG" and img.size[0] >= 600 and img.size[1] >= 400
    assert np.asarray(img.convert("L")).std() > 5  # not a blank canvas
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.startswith(".")]  # atomic: no temp file left
    plain = data_map_png(scores)
    assert plain.startswith(b"\x89PNG") and _image(plain).size[0] >= 600


def test_data_map_subsamples_deterministically():
    scores = _scores(n=500)
    a = data_map_inputs(scores, None, 100)
    b = data_map_inputs(scores.take(pa.array(np.arange(500)[::-1])), None, 100)  # same rows, reversed
    assert a["n"] == 500 and a["shown"] == 100
    assert sorted(a["conf"].tolist()) == sorted(b["conf"].tolist())  # chosen by id hash, not by position
    full = data_map_inputs(scores, _regions(scores), 100)
    # region boundaries come from every row, not the subsample
    reg = _regions(scores)
    assert full["ambiguous_min_variability"] == pytest.approx(scores.column("dyn_variability").to_numpy()[reg == "ambiguous"].min())
    assert data_map_png(scores, reg, max_points=100) != data_map_png(scores, reg)


def test_data_map_without_dynamics_raises(tmp_path):
    scores = _scores(with_dynamics=False)
    assert scores.column("dyn_confidence").null_count == scores.num_rows
    with pytest.raises(ValueError, match=r"no training dynamics: oof\.epochs >= 2"):
        data_map(scores, tmp_path / "dm.png")
    with pytest.raises(ValueError, match="no training dynamics"):
        data_map_png(scores)
    assert not (tmp_path / "dm.png").exists()


def test_data_map_rejects_misaligned_or_unknown_regions(tmp_path):
    scores = _scores(n=60)
    with pytest.raises(ValueError, match="60 scores rows"):
        data_map(scores, tmp_path / "dm.png", regions=["easy"] * 59)
    with pytest.raises(ValueError, match="regions must be one of"):
        data_map(scores, tmp_path / "dm.png", regions=["easy"] * 59 + ["weird"])
    # all-null regions (scores without dynamics at select time) draw like no regions
    assert data_map(scores, tmp_path / "dm.png", regions=[None] * 60).endswith("dm.png")

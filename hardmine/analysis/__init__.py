"""Hard-case analysis: where the hard samples are, what they are confused with, what they look like
(distinctive phrases: words and word n-grams, or character n-grams for text written without spaces).

The hard set is the selection's (:func:`hardmine.select.hard_mask`), whatever its policy. Pure
functions over the scores and dataset tables; results are pyarrow tables plus JSON-able dicts
(:func:`analyze`), rendered for the console (:func:`format_tables`) or written to disk
(:func:`write_analysis`).

Modules: :mod:`~hardmine.analysis.hard_cases` (:func:`analyze`, per class, confusion pairs, lengths),
:mod:`~hardmine.analysis.tokens` (distinctive phrases), :mod:`~hardmine.analysis.phrases` (words and
phrase growing), :mod:`~hardmine.analysis.console` (text tables) and :mod:`~hardmine.analysis.files`
(analysis/ on disk).
"""
from hardmine.analysis.console import format_tables, render_table
from hardmine.analysis.files import to_jsonable, write_analysis
from hardmine.analysis.hard_cases import CONFUSION_PAIRS, PER_CLASS, analyze, length_stats
from hardmine.analysis.phrases import phrase_unit
from hardmine.analysis.tokens import DISTINCTIVE_TOKENS, distinctive_tokens, token_sample

__all__ = [
    "CONFUSION_PAIRS", "DISTINCTIVE_TOKENS", "PER_CLASS", "analyze", "distinctive_tokens",
    "format_tables", "length_stats", "phrase_unit", "render_table", "to_jsonable", "token_sample", "write_analysis",
]

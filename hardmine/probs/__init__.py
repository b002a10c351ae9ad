"""Validation of predicted-probability matrices (the one place where inputs are checked).

Every scoring function takes probabilities of shape ``(n, K)`` (or ``(n, E, K)`` for
per-epoch probabilities) and integer labels in ``[0, K)``. This package turns what the
OOF stage writes (numpy arrays, lists of lists, Arrow list columns) into checked
float32 arrays, and fails with errors that name the offending rows and say how to fix
them. Errors are ``ValueError``; soft problems come back as warning strings.

Modules: :mod:`~hardmine.probs.rows` (naming offending rows: :func:`row_namer`,
:func:`describe_rows`), :mod:`~hardmine.probs.convert` (Arrow list columns and lists to numpy:
:func:`probs_from_arrow`), :mod:`~hardmine.probs.validate` (:func:`validate_probs`,
:func:`validate_epoch_probs`, :func:`validate_labels`, :func:`check_label_array`) and
:mod:`~hardmine.probs.external` (probabilities computed elsewhere: :func:`load_external_probs`).
"""
from hardmine.probs.convert import probs_from_arrow
from hardmine.probs.external import load_external_probs
from hardmine.probs.rows import MAX_ROWS_NAMED, RowNamer, describe_rows, row_namer
from hardmine.probs.validate import check_label_array, validate_epoch_probs, validate_labels, validate_probs

__all__ = [
    "MAX_ROWS_NAMED", "RowNamer", "check_label_array", "describe_rows", "load_external_probs", "probs_from_arrow",
    "row_namer", "validate_epoch_probs", "validate_labels", "validate_probs",
]

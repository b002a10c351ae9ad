"""Input data: readers by format -> the canonical table (id, text, label, label_name); validation.

Every bad input raises one :class:`DataError` that says what is wrong, where (file, line or row
numbers and ids, column) and the fix.

* ``errors``: :class:`DataError` and how its messages list rows
* ``readers``: a file or folder by format -> a frame of strings (CSV and TSV in ``delimited``,
  cells in ``cells``)
* ``labels``: label cells -> class names and the vocabulary, with its checks
* ``canonical``: the canonical table, one configured file read and checked, folds and hold-out
* ``truth``: the injected truth file
* ``splits``: the training / held-out split of a prepared run, and the truth split between them
* ``versions``: a reviewed or pseudo-labelled dataset version as the training table
* ``demo``: the embedded demo dataset with planted label noise
"""
from hardmine.data.canonical import Loaded, check_folds, load_split, stratified_holdout, to_canonical
from hardmine.data.errors import DataError
from hardmine.data.readers import check_path, read_raw
from hardmine.data.truth import read_truth

__all__ = [
    "DataError",
    "Loaded",
    "check_folds",
    "check_path",
    "load_split",
    "read_raw",
    "read_truth",
    "stratified_holdout",
    "to_canonical",
]

"""The injected truth file (``id,true_label[,is_noisy,is_ambiguous]``), checked against the dataset."""
from __future__ import annotations

import pyarrow as pa

from hardmine.checks import duplicate_ids
from hardmine.data.cells import NON_SCALAR, cell, non_scalar, non_scalar_error
from hardmine.data.errors import MAX_LISTED, DataError, listed
from hardmine.data.labels import INTEGER, MISSING_LABELS, canon_number, case_hint, label_key
from hardmine.data.readers import read_raw

#: is_noisy / is_ambiguous cells (numbers in one spelling, lower case) read as true and as false
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


def read_truth(
    path: str,
    labels: list[str],
    given: dict[str, int] | None = None,
    dropped: set[str] | frozenset = frozenset(),
    encoding: str = "utf-8",
) -> pa.Table:
    """Injected truth ``id,true_label[,is_noisy,is_ambiguous]`` -> (id, true_label index, is_noisy[, is_ambiguous]).

    ``true_label`` is a label name of ``labels`` (numbers match however they are written: ``1.0``
    is ``1``). With ``given`` (the dataset's id -> given label index, training and held-out rows),
    every id must be one of them (or of ``dropped``, rows dropped as empty; their truth is left
    out), and ``is_noisy`` is derived as ``true_label != given`` when the file has no such column,
    and must agree with it when it has.
    """
    df = read_raw(path, "auto", encoding)
    need = [c for c in ("id", "true_label") if c not in df.columns]
    if need:
        raise DataError(
            f"{path}: the truth file needs columns id,true_label; {need} not found (it has {list(df.columns)}). "
            "Fix: name the columns id,true_label (true_label: the correct label name of each row; optional is_noisy, "
            "is_ambiguous: true/false)"
        )
    raw_ids, raw_true = df["id"].tolist(), df["true_label"].tolist()
    problems = [non_scalar_error(path, kind, c, rows, vals, None)
                for kind, c, vals in (("id", "id", raw_ids), ("label", "true_label", raw_true)) if (rows := non_scalar(vals))]
    if problems:
        raise DataError("\n".join(problems))
    ids = [cell(v).strip() for v in raw_ids]
    true = [label_key(cell(v).strip()) for v in raw_true]
    errors: list[str] = []
    empty = [i for i, v in enumerate(ids) if not v]
    if empty:
        errors.append(f"missing id at rows {listed(empty)}. Fix: give every row the id of its data row")
    dups = duplicate_ids(ids)
    if dups:
        errors.append(f"duplicate ids: {listed(dups)}. Fix: one truth row per id")
    keyed = {label_key(str(n).strip()): i for i, n in enumerate(labels)}
    missing_tokens = MISSING_LABELS - set(labels)
    missing = [i for i, v in enumerate(true) if v == "" or v in missing_tokens]
    if missing:
        errors.append(f"missing true_label at rows {listed(missing, [ids[i] for i in missing])}. Fix: fill them or remove those rows")
    missing_set = set(missing)
    bad = [i for i, v in enumerate(true) if v not in keyed and i not in missing_set]
    if bad:
        vals = sorted({true[i] for i in bad})
        hint = case_hint(vals, labels)
        if not hint and all(INTEGER.fullmatch(v) for v in vals) and not any(canon_number(str(n)) for n in labels):
            hint = " (true_label holds label names, not class indices)"
        errors.append(
            f"true_label values {vals[:MAX_LISTED]} at rows {listed(bad, [ids[i] for i in bad])} are not in the dataset's "
            f"labels {labels}{hint}. Fix: write each row's true label as one of those names"
        )
    if given is not None:
        unknown = [i for i, v in enumerate(ids) if v and v not in given and v not in dropped]
        if unknown:
            eg = [ids[i] for i in unknown[:5]]
            errors.append(
                f"{len(unknown)} of {len(ids)} ids are not in the dataset (data.path / data.test_path), e.g. {eg} at rows "
                f"{listed(unknown)}. Fix: use the data's ids (data.id_column; row numbers 0, 1, ... when it is null), "
                "or remove those rows"
            )
    flags: dict[str, list[bool]] = {}
    for c in ("is_noisy", "is_ambiguous"):
        if c in df.columns:
            vals = [label_key(cell(v).strip()).lower() if not isinstance(v, NON_SCALAR) else "?" for v in df[c].tolist()]
            odd = [i for i, v in enumerate(vals) if v not in _TRUE and v not in _FALSE]
            if odd:
                shown = sorted({vals[i] for i in odd})[:5]
                errors.append(f"column {c!r} has values {shown} at rows {listed(odd, [ids[i] for i in odd])} that are not true/false. "
                              "Fix: write true or false (1 or 0) on every row")
            flags[c] = [v in _TRUE for v in vals]
    if errors:
        raise DataError(f"{path}:\n  " + "\n  ".join(errors))
    index = [keyed[v] for v in true]
    if given is not None:
        derived = [given.get(i) is not None and given[i] != t for i, t in zip(ids, index)]
        if "is_noisy" in flags:
            off = [r for r, (i, f, d) in enumerate(zip(ids, flags["is_noisy"], derived)) if i in given and f != d]
            if off:
                r = off[0]
                raise DataError(
                    f"{path}: is_noisy disagrees with true_label vs the data's label at rows {listed(off, [ids[i] for i in off])} "
                    f"(e.g. id {ids[r]!r}: label {labels[given[ids[r]]]!r}, true_label {labels[index[r]]!r}, is_noisy "
                    f"{str(flags['is_noisy'][r]).lower()}). Fix: is_noisy must be true exactly where true_label differs from "
                    "the given label; or drop the is_noisy column and it is derived"
                )
        else:
            flags["is_noisy"] = derived
    keep = [i for i, v in enumerate(ids) if v not in dropped]
    cols = {"id": pa.array([ids[i] for i in keep], pa.string()), "true_label": pa.array([index[i] for i in keep], pa.int32())}
    for c in ("is_noisy", "is_ambiguous"):
        if c in flags:
            cols[c] = pa.array([flags[c][i] for i in keep], pa.bool_())
    return pa.table(cols)

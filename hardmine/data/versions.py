"""A dataset version (a review import or a pseudo-label round) as the training rows, checked against the
rows read from data.path."""
from __future__ import annotations

import pyarrow as pa

from hardmine.data.errors import DataError


def versioned_table(version_table: pa.Table, table: pa.Table, test: pa.Table | None, pseudo: set[str], version: int,
                    where: str) -> tuple[pa.Table, int]:
    """Dataset version ``version`` (``version_table``, stored at ``where``) as the training rows of ``table``.

    Every training row of data.path must be in it (a review changes labels only); its other rows must be
    pseudo-labelled rows (the ids ``pseudo``); none may be a held-out row; it must have ``table``'s columns.
    Returns (table, pseudo-labelled rows).
    """
    ids = table.column("id").to_pylist()
    v_ids = version_table.column("id").to_pylist()
    missing = sorted(set(ids) - set(v_ids))
    extra = sorted(set(v_ids) - set(ids) - pseudo)
    if missing or extra:
        eg = missing or extra
        raise DataError(
            f"dataset version {version} ({where}) does not match the training rows of data.path: "
            f"{len(missing)} rows of data.path are not in it, {len(extra)} of its rows are neither in data.path nor "
            f"pseudo-labelled (e.g. {eg[:5]}); data.path changed since the version was made. Fix: set data.version: 0 "
            "to train on data.path as it is now"
        )
    if test is not None:
        on_test = sorted(set(v_ids) & set(test.column("id").to_pylist()))
        if on_test:
            raise DataError(f"dataset version {version} has {len(on_test)} held-out ids (e.g. {on_test[:5]}): the held-out "
                            "split must stay out of the training rows. Fix: set data.version: 0")
    missing_cols = [c for c in table.column_names if c not in version_table.column_names]
    if missing_cols:
        raise DataError(f"dataset version {version} ({where}) lacks the columns {missing_cols}: set data.version: 0")
    return version_table.select(table.column_names).cast(table.schema), len(set(v_ids) & pseudo)

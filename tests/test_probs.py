"""hardmine.probs: every bad-probability case errors with row names and a fix; Arrow conversion."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from hardmine.probs import (
    probs_from_arrow,
    validate_epoch_probs,
    validate_labels,
    validate_probs,
)


def good(n=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k), size=n)
    labels = p.argmax(axis=1)
    return p, labels


IDS = [f"row-{i}" for i in range(6)]


def test_valid_input_returns_float32_and_no_warnings_when_all_classes_used():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    out, warns = validate_probs(p, [0, 1, 2])
    assert out.dtype == np.float32 and out.shape == (3, 3)
    np.testing.assert_allclose(out, p, atol=1e-7)
    assert warns == []


def test_list_of_lists_is_accepted():
    out, _ = validate_probs([[0.5, 0.5], [0.9, 0.1]], [0, 0])
    np.testing.assert_allclose(out, [[0.5, 0.5], [0.9, 0.1]])


@pytest.mark.parametrize("shape", [(6,), (2, 3, 3)])
def test_not_2d_errors(shape):
    with pytest.raises(ValueError, match="must be 2-D"):
        validate_probs(np.full(shape, 1.0 / shape[-1]))


def test_zero_rows_errors():
    with pytest.raises(ValueError, match="zero rows"):
        validate_probs(np.zeros((0, 3)))


def test_wrong_number_of_columns_vs_n_classes():
    p, _ = good()
    with pytest.raises(ValueError, match="3 columns but n_classes=4"):
        validate_probs(p, n_classes=4)


def test_single_column_errors():
    with pytest.raises(ValueError, match="at least 2 classes"):
        validate_probs(np.ones((4, 1)))


def test_labels_beyond_columns_error_with_ids():
    p, labels = good()
    labels[[1, 4]] = [3, 5]
    with pytest.raises(ValueError, match=r"out of range \[0, 3\).*row-1.*row-4.*values \[3, 5\]"):
        validate_probs(p, labels, ids=IDS)


def test_negative_labels_error():
    p, labels = good()
    labels[0] = -1
    with pytest.raises(ValueError, match=r"out of range.*rows \[0\]"):
        validate_probs(p, labels)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_error_names_ids(bad):
    p, labels = good()
    p[2, 1] = bad
    p[5, 0] = bad
    with pytest.raises(ValueError, match=r"\['row-2', 'row-5'\].*NaN or inf"):
        validate_probs(p, labels, ids=IDS)


def test_negative_values_error_says_logits():
    p, labels = good()
    p[3] = [1.2, -0.1, -0.1]
    with pytest.raises(ValueError, match=r"\['row-3'\].*negative.*not logits"):
        validate_probs(p, labels, ids=IDS)


def test_row_sums_off_by_more_than_atol_error_with_sums_and_fix():
    p, labels = good()
    p[1] *= 1.5
    with pytest.raises(ValueError, match=r"\['row-1'\].*do not sum to 1.*sums \[1\.5\].*softmax"):
        validate_probs(p, labels, ids=IDS)


def test_small_deviation_is_renormalised_with_warning():
    p, labels = good()
    p[[0, 2]] *= 1.0005
    out, warns = validate_probs(p, labels, atol=1e-3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    assert any("renormalised 2 of 6 rows" in w for w in warns)
    # the same deviation errors when atol is tighter
    with pytest.raises(ValueError, match="do not sum to 1"):
        validate_probs(p, labels, atol=1e-4)


def test_at_most_ten_rows_named():
    p = np.full((30, 2), 0.5)
    p[:, 0] = np.nan
    with pytest.raises(ValueError) as err:
        validate_probs(p)
    msg = str(err.value)
    assert "30 in total, first 10 shown" in msg
    assert "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in msg and "10," not in msg.split("]")[0]


def test_float_labels_error_with_cast_hint():
    p, labels = good()
    with pytest.raises(ValueError, match=r"integer class indices.*astype\(int\)"):
        validate_probs(p, labels.astype(float))


def test_string_labels_error_with_vocabulary_hint():
    p, _ = good()
    with pytest.raises(ValueError, match="label vocabulary"):
        validate_probs(p, np.array(["a", "b", "c", "a", "b", "c"]))


def test_labels_length_mismatch():
    p, labels = good()
    with pytest.raises(ValueError, match="labels has 5 entries but probs has 6 rows"):
        validate_probs(p, labels[:5])


def test_ids_length_mismatch():
    p, labels = good()
    with pytest.raises(ValueError, match="ids has 5 entries"):
        validate_probs(p, labels, ids=IDS[:5])


def test_numpy_and_arrow_ids_are_named_as_plain_strings():
    p, labels = good()
    p[4, 0] = np.nan
    for ids in (np.array(IDS), pa.array(IDS)):
        with pytest.raises(ValueError, match=r"rows \['row-4'\]"):
            validate_probs(p, labels, ids=ids)


def test_warns_classes_never_predicted_and_absent_from_labels():
    p = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    _, warns = validate_probs(p, [0, 0, 1])
    assert any("classes [2] are never predicted" in w for w in warns)
    assert any("classes [2] never occur in the labels" in w for w in warns)


def test_validate_labels_returns_int64():
    out = validate_labels(np.array([0, 2, 1], dtype=np.int8), 3, 3)
    assert out.dtype == np.int64 and out.tolist() == [0, 2, 1]


def test_arrow_null_labels_error():
    with pytest.raises(ValueError, match=r"\['b'\] \(1 in total\) are null"):
        validate_labels(pa.array([0, None, 1]), 3, 2, ids=["a", "b", "c"])


# --------------------------------------------------------------------------- arrow
def test_probs_from_arrow_list_column_matches_numpy():
    p, _ = good(50, 4)
    col = pa.array(p.astype(np.float32).tolist(), pa.list_(pa.float32()))
    out = probs_from_arrow(col)
    assert out.shape == (50, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out, p.astype(np.float32))
    # and validate_probs accepts the column directly
    np.testing.assert_allclose(validate_probs(col)[0], p, atol=1e-6)


def test_probs_from_arrow_chunked_sliced_and_fixed_size():
    p, _ = good(20, 3)
    rows = p.astype(np.float32).tolist()
    chunked = pa.chunked_array([pa.array(rows[:7], pa.list_(pa.float32())), pa.array(rows[7:], pa.list_(pa.float32()))])
    np.testing.assert_array_equal(probs_from_arrow(chunked), np.asarray(rows, np.float32))
    sliced = pa.array(rows, pa.list_(pa.float32())).slice(5, 10)
    np.testing.assert_array_equal(probs_from_arrow(sliced), np.asarray(rows[5:15], np.float32))
    fixed = pa.array(rows, pa.list_(pa.float32(), 3))
    np.testing.assert_array_equal(probs_from_arrow(fixed), np.asarray(rows, np.float32))


def test_probs_from_arrow_nested_epochs():
    rng = np.random.default_rng(1)
    ep = rng.dirichlet(np.ones(3), size=(8, 4)).astype(np.float32)  # (n, E, K)
    col = pa.array(ep.tolist(), pa.list_(pa.list_(pa.float32())))
    out = probs_from_arrow(col)
    assert out.shape == (8, 4, 3)
    np.testing.assert_array_equal(out, ep)


def test_probs_from_arrow_ragged_rows_named():
    col = pa.array([[0.5, 0.5], [0.2, 0.3, 0.5], [0.1, 0.9], [1.0]], pa.list_(pa.float32()))
    with pytest.raises(ValueError, match=r"ragged.*\['b', 'd'\].*than the first row \(2\)"):
        probs_from_arrow(col, ids=["a", "b", "c", "d"])


def test_probs_from_arrow_ragged_inner_epochs_named():
    col = pa.array(
        [[[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [0.2, 0.3, 0.5]], [[1.0, 0.0], [0.0, 1.0]]],
        pa.list_(pa.list_(pa.float32())),
    )
    with pytest.raises(ValueError, match=r"ragged.*\['y'\].*nesting level 1"):
        probs_from_arrow(col, ids=["x", "y", "z"])


def test_probs_from_arrow_null_row_named():
    col = pa.array([[0.5, 0.5], None, [0.1, 0.9]], pa.list_(pa.float32()))
    with pytest.raises(ValueError, match=r"\[1\].*are null"):
        probs_from_arrow(col)


def test_probs_from_arrow_null_value_becomes_nan_and_validation_names_it():
    col = pa.array([[0.5, 0.5], [None, 1.0]], pa.list_(pa.float32()))
    with pytest.raises(ValueError, match=r"\['q'\].*NaN"):
        validate_probs(col, ids=["p", "q"])


def test_probs_from_arrow_rejects_non_list():
    with pytest.raises(ValueError, match="expected an Arrow list column"):
        probs_from_arrow(pa.array([0.1, 0.2]))


def test_ragged_list_of_lists_named():
    with pytest.raises(ValueError, match=r"ragged rows.*\[1\]"):
        validate_probs([[0.5, 0.5], [0.2, 0.3, 0.5], [0.4, 0.6]])


# --------------------------------------------------------------------------- epochs
def test_validate_epoch_probs_names_row_and_epoch():
    rng = np.random.default_rng(0)
    ep = rng.dirichlet(np.ones(3), size=(4, 3))
    ep[2, 1] = [0.9, 0.9, 0.9]
    with pytest.raises(ValueError, match=r"\['c \(epoch 1\)'\].*do not sum to 1"):
        validate_epoch_probs(ep, ids=["a", "b", "c", "d"])


def test_validate_epoch_probs_shape_and_classes():
    with pytest.raises(ValueError, match="must be 3-D"):
        validate_epoch_probs(np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match="3 classes per epoch but n_classes=2"):
        validate_epoch_probs(np.full((4, 2, 3), 1 / 3), n_classes=2)
    out, warns = validate_epoch_probs(np.full((4, 2, 3), 1 / 3), [0, 1, 2, 0])
    assert out.shape == (4, 2, 3) and out.dtype == np.float32 and warns == []

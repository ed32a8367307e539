"""Checks of what an estimator receives: dtypes, ragged rows, shapes, sizes, outputs."""

from __future__ import annotations

import numbers

import keras
import numpy as np
import scipy.sparse as sp

__all__ = [
    "as_csr",
    "as_shape",
    "check_fits_floatx",
    "check_not_ragged",
    "check_sparse",
    "count",
    "is_numeric_dtype",
    "is_numeric_dtype_pd",
    "isnan_mask",
    "keras_accepts",
    "model_input_shapes",
    "n_samples_for_full_batch",
    "same_value",
    "several_outputs",
    "shape_message",
]


def is_numeric_dtype(dtype) -> bool:
    return np.issubdtype(np.dtype(dtype), np.number) or np.dtype(dtype) == np.bool_


def check_not_ragged(X, name: str) -> None:
    """Raise a ``ValueError`` when ``X`` is a list of rows of different lengths."""
    if not isinstance(X, (list, tuple, np.ndarray)) or len(X) == 0:
        return
    lengths = [len(row) if hasattr(row, "__len__") else None for row in X]
    first = lengths[0]
    odd = next((i for i, n in enumerate(lengths) if n != first), None)
    if odd is None:
        return
    raise ValueError(
        f"Input X is ragged: every sample must have the same number of features, but row 0 "
        f"has {first} and row {odd} has {lengths[odd]} (row lengths seen: "
        f"{sorted({n for n in lengths if n is not None})}). {name} needs a rectangular X: "
        "pad or truncate the rows to one length first (for sequences: "
        "keras.utils.pad_sequences)."
    )


def check_fits_floatx(arr: np.ndarray, name: str) -> None:
    """Raise a ``ValueError`` when finite values of ``arr`` overflow Keras's float type."""
    floatx = keras.backend.floatx()
    limit = float(np.finfo(floatx).max)
    info = np.finfo(arr.dtype) if arr.dtype.kind == "f" else np.iinfo(arr.dtype)
    if float(info.max) <= limit:  # every value of this dtype fits: nothing to scan
        return
    low, high = float(arr.min()), float(arr.max())
    largest = max(abs(low), abs(high))
    if largest <= limit:
        return
    raise ValueError(
        f"Input X holds finite values too large for {floatx}, the type {name} trains in: the "
        f"largest magnitude is {largest:.3g}, above {floatx}'s maximum of {limit:.3g}, so "
        "those values would become infinity. Rescale those features (divide by a constant "
        "or take a log) or clip or drop the outliers before fitting."
    )


def check_sparse(X, name: str) -> tuple[int, ...]:
    """Check a scipy sparse ``X`` without densifying it; return its shape.

    Only the stored values are read: the rules are those of dense input
    (numeric, finite, within Keras's float type, at least one sample and one
    feature).
    """
    shape = tuple(int(d) for d in X.shape)
    if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
        raise ValueError(
            f"Found a sparse X of shape {shape}, while {name} needs at least 1 sample and "
            "1 feature."
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} needs numeric features, but the sparse X has dtype {X.dtype}.")
    # lil and dok keep no one array of stored values
    data = X.data if X.format in ("csr", "csc", "coo", "bsr", "dia") else X.tocsr().data
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise ValueError(
            f"Input X contains NaN or infinity ({int(np.isnan(data).sum())} NaN, "
            f"{int(np.isinf(data).sum())} infinite stored values); {name} cannot train on "
            "them. Impute them first, e.g. SimpleImputer in a Pipeline."
        )
    if data.size and data.dtype.kind in "fiu":
        check_fits_floatx(data, name)
    return shape


def as_csr(X):
    """A scipy sparse ``X`` in CSR, the format Keras slices; the same object when it is one."""
    if sp.isspmatrix_csr(X) or (isinstance(X, sp.csr_array)):
        return X
    return sp.csr_matrix(X) if sp.isspmatrix(X) else sp.csr_array(X)


def model_input_shapes(model, X) -> list[tuple[tuple, tuple]]:
    """``(declared, got)`` per sample for each input of ``model`` that ``X`` (encoded) feeds.

    ``X`` is what the model receives: one array for a single-input model, a
    list or tuple (by position) or a dict (by input name) for several inputs.
    Pairs that cannot be matched are left out (Keras reports them).
    """
    inputs = list(getattr(model, "inputs", None) or [])
    if not inputs:
        return []
    if isinstance(X, dict):
        names = [getattr(t, "name", None) for t in inputs]
        pairs = [(t, X.get(n)) for t, n in zip(inputs, names, strict=True)]
    elif isinstance(X, (list, tuple)):
        if len(X) != len(inputs):
            return []
        pairs = list(zip(inputs, X, strict=True))
    elif len(inputs) == 1:
        pairs = [(inputs[0], X)]
    else:
        return []
    out = []
    for tensor, arr in pairs:
        shape = getattr(arr, "shape", None)
        if shape is None or len(shape) < 1:
            continue
        out.append((tuple(tensor.shape[1:]), tuple(int(d) for d in shape[1:])))
    return out


def n_samples_for_full_batch(X, key: str) -> int:
    """The batch size that ``-1`` stands for: all samples of ``X``, which must have a shape."""
    try:
        return int(X.shape[0])
    except AttributeError:
        raise ValueError(
            f"`{key}=-1` requires that `X` implement `shape`: -1 means one batch of all "
            f"samples, but X reached the model as a {type(X).__name__} (for example from a "
            f"feature_encoder that splits X into several inputs). Set {key} to a number of "
            "samples instead."
        ) from None


def count(value) -> int | None:
    """``value`` as one count, or ``None`` when it is a list (one entry per output) or unset."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return int(value)
    return None


def several_outputs(estimator) -> bool:
    """Whether the target encoder maps ``y`` to several Keras outputs.

    A custom ``target_encoder`` for multi-output models sets
    ``n_outputs_expected_`` above 1 (or list-valued metadata); one
    ``output_units`` value cannot describe such a model, so none is inferred.
    """
    expected = getattr(estimator, "n_outputs_expected_", None)
    if expected is not None and not isinstance(expected, numbers.Integral):
        return True
    return expected is not None and int(expected) > 1


def same_value(a, b) -> bool:
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def isnan_mask(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind in "fc":
        return np.isnan(arr)
    return np.zeros(arr.shape, dtype=bool)


def is_numeric_dtype_pd(dtype) -> bool:
    try:
        import pandas as pd

        return bool(pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
    except ImportError:  # pragma: no cover - pandas is a dependency
        return is_numeric_dtype(dtype)


def as_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        return (int(shape),)
    return tuple(int(d) for d in shape)


def keras_accepts(declared: tuple, got: tuple) -> bool:
    """Whether a model whose input declares ``declared`` per sample takes samples ``got``.

    ``None`` entries match any size. Like Keras's functional models, a rank
    that differs by one trailing axis of size 1 is accepted (Keras squeezes or
    expands that axis).
    """
    if len(got) == len(declared) + 1 and got[-1] == 1:
        got = got[:-1]
    elif len(declared) == len(got) + 1 and declared[-1] == 1:
        declared = declared[:-1]
    return len(declared) == len(got) and all(
        d is None or d == g for d, g in zip(declared, got, strict=True)
    )


def shape_message(name, got, expected, where="this estimator") -> str:
    got_n = int(np.prod(got)) if len(got) == 1 else got
    exp_n = int(np.prod(expected)) if len(expected) == 1 else expected
    if len(got) != len(expected):
        head = (
            f"X has {len(got) + 1} dimensions, but this {name} is expecting "
            f"{len(expected) + 1} dimensions in X"
        )
    else:
        head = f"X has {got_n} features, but {name} is expecting {exp_n} features as input"
    return (
        f"{head}: "
        f"{where} declares an input shape of {tuple(expected)} per sample and X has samples "
        f"of shape {tuple(got)}. Pass data with the declared shape, or fix input_shape= "
        "(or the builder's Input layer)."
    )

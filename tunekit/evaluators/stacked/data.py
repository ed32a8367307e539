"""Fold data: the target in the loss's encoding, the copies of X, the validation rows.

A pipeline's steps before its last one are fitted on each fold's training
rows and transform that fold's rows, so each (preprocessing variant, fold)
is one transformed copy of ``X``; members address the copies by row offset.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.model_selection import train_test_split
from sklearn.utils import _safe_indexing
from sklearn.utils.multiclass import type_of_target

from tunekit.evaluators._base import _freeze
from tunekit.evaluators.stacked.grouping import split_params

__all__ = [
    "SPARSE_REASON",
    "Copies",
    "Target",
    "as_matrix",
    "carve_validation",
    "end_to_end",
    "prepare_target",
    "task_of",
]


def end_to_end(parts: list):
    """The parts' rows, one part after the other, in the first part's kind.

    Sparse matrices stack as CSR, pandas objects concatenate with a fresh
    index, anything else as NumPy arrays; parts that are all ``None`` (no
    ``y``) give ``None``.
    """
    first = parts[0]
    if all(p is None for p in parts):
        return None
    if sp.issparse(first):
        return sp.vstack(parts, format="csr")
    if isinstance(first, pd.DataFrame | pd.Series):
        return pd.concat(parts, ignore_index=True)
    return np.concatenate([np.asarray(p) for p in parts])


@dataclass
class Target:
    """``y`` in the loss's encoding, or why it cannot be stacked.

    Attributes
    ----------
    task : {"binary", "multiclass", "regression"} or None
        ``None`` when the target cannot be stacked (see ``reason``).
    Y : ndarray or None
        The target as the loss reads it: 0/1 codes, one-hot rows or values.
    codes, classes : ndarray or None
        Class codes of every row and the labels they stand for (classifiers).
    n_outputs, y_ndim : int
        Width of the output layer; dimensions of the target.
    reason : str or None
    """

    task: str | None
    Y: np.ndarray | None = None
    codes: np.ndarray | None = None
    classes: np.ndarray | None = None
    n_outputs: int = 1
    y_ndim: int = 1
    reason: str | None = None

    @property
    def classifier(self) -> bool:
        """Whether the task is a classification."""
        return self.task in ("binary", "multiclass")


def task_of(estimator) -> str | None:
    """``"classifier"``, ``"regressor"`` or ``None``."""
    kind = getattr(estimator, "_estimator_type", None)
    if is_classifier(estimator) or kind == "classifier":
        return "classifier"
    if is_regressor(estimator) or kind == "regressor":
        return "regressor"
    return None


def prepare_target(estimator, y) -> Target:
    """Encode y for the loss; say why not if the target cannot be stacked."""
    kind = task_of(estimator)
    if kind is None:
        return Target(None, reason="the estimator is neither a classifier nor a regressor")
    y_arr = np.asarray(y)
    if kind == "classifier":
        target = type_of_target(y_arr)
        if target not in ("binary", "multiclass") or y_arr.ndim != 1:
            return Target(None, reason=f"a {target} target is not stacked")
        classes, codes = np.unique(y_arr, return_inverse=True)
        if target == "binary" or len(classes) == 2:
            return Target("binary", codes[:, None].astype("float32"), codes, classes, 1)
        Y = np.eye(len(classes), dtype="float32")[codes]
        return Target("multiclass", Y, codes, classes, len(classes))
    try:
        ya = y_arr.astype("float32")
    except (TypeError, ValueError):
        return Target(None, reason="y is not numeric")
    if ya.ndim not in (1, 2) or not np.all(np.isfinite(ya)):
        return Target(None, reason="y is not a finite 1-D or 2-D array")
    Y = ya[:, None] if ya.ndim == 1 else ya
    return Target("regression", Y, None, None, Y.shape[1], ya.ndim)


SPARSE_REASON = (
    "X reaches the model as a scipy sparse matrix, which only the mlp() trainer of the "
    "stacked engine takes; the standard path trains on it without densifying"
)


def as_matrix(X, any_shape: bool = False) -> tuple[np.ndarray | None, str | None]:
    """``X`` as a float32 array (2-D unless ``any_shape``), or why it cannot be stacked."""
    if sp.issparse(X):  # the mlp() trainer densifies it a batch at a time
        if any_shape:
            return None, SPARSE_REASON
        Xs = sp.csr_matrix(X, dtype="float32")
        if not np.all(np.isfinite(Xs.data)):
            return None, "X is not finite"
        return Xs, None
    try:
        Xa = np.asarray(X, dtype="float32")
    except (TypeError, ValueError):
        return None, "X is not numeric"
    if (Xa.ndim != 2 and not any_shape) or not np.all(np.isfinite(Xa)):
        return None, "X is not a finite 2-D array" if not any_shape else "X is not finite"
    return Xa, None


def _too_few(fraction: float, n: int, n_val: int) -> str:
    return (
        f"validation_fraction={fraction} of {n} samples leaves {n_val} for validation and "
        f"{n - n_val} for training; both need at least 1 sample. Use more data or "
        "early_stopping=None."
    )


def carve_validation(train: np.ndarray, codes, fraction: float, seed: int, classifier: bool):
    """Split validation rows off a training fold as the estimators do (never the test part).

    Parameters
    ----------
    train : ndarray of int
        The fold's training rows.
    codes : ndarray of int or None
        Every row's class code (classifiers: the split is stratified when it can be).
    fraction : float
        ``validation_fraction``: ``ceil(fraction * len(train))`` rows are carved.
    seed : int
        Seed of the split.
    classifier : bool

    Returns
    -------
    fit_rows, val_rows : ndarray of int
    """
    n = len(train)
    n_val = int(np.ceil(fraction * n))
    if n_val < 1 or n - n_val < 1:
        raise ValueError(_too_few(fraction, n, n_val))
    stratify = None
    if classifier:
        fold_codes = codes[train]
        _, counts = np.unique(fold_codes, return_counts=True)
        if counts.min() >= 2 and n_val >= counts.size:
            stratify = fold_codes
    fit_pos, val_pos = train_test_split(
        np.arange(n), test_size=n_val, random_state=seed, stratify=stratify
    )
    return train[fit_pos], train[val_pos]


@dataclass
class Copies:
    """The transformed copies of X one group trains on (one per variant and fold).

    Attributes
    ----------
    X : ndarray, scipy sparse CSR matrix or None
        The copies, one after the other (sparse when X or the preprocessing
        gives sparse rows; the ``mlp()`` trainer densifies them a batch at a time).
    where : dict
        ``(variant, fold) -> (offset, width)``, or the reason that copy failed.
    n_copies : int
    fallback : str or None
        Why the group takes the standard path instead (the preprocessing
        gives a sparse matrix); no copy is made then.
    """

    X: np.ndarray | None = None
    where: dict = field(default_factory=dict)
    n_copies: int = 0
    fallback: str | None = None

    @property
    def all_failed(self) -> bool:
        """Whether no copy could be made."""
        return self.X is None and all(isinstance(w, str) for w in self.where.values())


def variant_key(pre, candidate: dict, prefix: str):
    """The candidate's preprocessing variant (``None`` without preprocessing)."""
    return _freeze(split_params(candidate, prefix)[0]) if pre is not None else None


def variants(pre, cands: list[dict], prefix: str) -> dict:
    """Preprocessing variant -> positions of the candidates that use it."""
    out: dict = {}
    for k, cand in enumerate(cands):
        out.setdefault(variant_key(pre, cand, prefix), []).append(k)
    return out


def transformed_copies(pre, prefix, cands, splits, X, y, *, raise_errors, any_shape):
    """One float32 copy of X per (preprocessing variant, fold); the reason where not."""
    if pre is None:
        Xa, why = as_matrix(X, any_shape)
        if why is not None:
            return Copies(None, {(None, s): why for s in range(len(splits))})
        width = Xa.shape[1] if Xa.ndim > 1 else 1
        return Copies(Xa, {(None, s): (0, width) for s in range(len(splits))}, 1)
    blocks, where, offset = [], {}, 0
    for key, members in variants(pre, cands, prefix).items():
        pre_params, _ = split_params(cands[members[0]], prefix)
        for s, (train, _test) in enumerate(splits):
            try:
                steps = clone(pre).set_params(**clone(pre_params, safe=False))
                steps.fit(_safe_indexing(X, train), _safe_indexing(y, train))
                Xt = steps.transform(X)
                if sp.issparse(Xt) and any_shape:
                    return Copies(None, {}, 0, SPARSE_REASON)
                Xt, why = as_matrix(Xt, any_shape)
                if why is not None:
                    raise ValueError(f"the pipeline's steps before its last give: {why}")
            except Exception:
                if raise_errors:
                    raise
                where[(key, s)] = traceback.format_exc()
                continue
            where[(key, s)] = (offset, Xt.shape[1] if Xt.ndim > 1 else 1)
            blocks.append(Xt)
            offset += Xt.shape[0]
    if any(sp.issparse(b) for b in blocks):
        X_all = sp.vstack([sp.csr_matrix(b) for b in blocks], format="csr")
    else:
        X_all = np.concatenate(blocks) if blocks else None
    return Copies(X_all, where, len(blocks))

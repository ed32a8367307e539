"""Sparse X on the stacked trainer: padded rows on the device, one dense batch at a time.

A scipy sparse ``X`` is kept as two ``(n_samples, k)`` arrays, the column and
the value of each row's stored entries, padded to ``k``, the most any row
stores (padding: column 0, value 0). A step gathers its rows and scatters
them into a dense ``(members, batch, features)`` block, the only dense form
of X that exists; the block must fit :data:`MAX_DENSE_BATCH_BYTES`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from keras import ops

__all__ = [
    "MAX_DENSE_BATCH_BYTES",
    "dense_rows",
    "padded_rows",
    "rows_that_fit",
    "sparse_refusal",
]

#: The most memory one step's densified batch may take (members x batch x features x 4 B).
MAX_DENSE_BATCH_BYTES = 256 * 2**20
#: Padding may at most multiply the stored entries by this (rows of very unequal length).
_MAX_PADDING = 4


def sparse_refusal(X, n_members: int, batch_size: int) -> str | None:
    """Why the trainer does not take this sparse ``X`` for such a stack, or ``None``."""
    n, width = X.shape
    block = int(n_members) * int(batch_size) * int(width) * 4
    if block > MAX_DENSE_BATCH_BYTES:
        return (
            f"a densified batch of {n_members} members x {batch_size} rows x {width} features "
            f"would take {block / 2**20:.0f} MiB, above the stacked engine's cap of "
            f"{MAX_DENSE_BATCH_BYTES // 2**20} MiB for sparse X"
        )
    counts = np.diff(sp.csr_matrix(X).indptr)
    k = max(int(counts.max()), 1) if n else 1
    if n * k > _MAX_PADDING * max(int(counts.sum()), 1):
        return (
            f"the rows of the sparse X store very unequal numbers of values (at most {k}, "
            f"{counts.mean():.1f} on average), which the stacked engine pads to one length"
        )
    return None


def padded_rows(X) -> tuple:
    """A scipy sparse ``X`` as device tensors ``(cols, vals)`` of shape ``(n_samples, k)``."""
    X = sp.csr_matrix(X)  # duplicate entries stay: the scatter adds them up, as CSR does
    n = X.shape[0]
    counts = np.diff(X.indptr)
    k = max(int(counts.max()) if n else 1, 1)
    cols = np.zeros((n, k), dtype="int32")
    vals = np.zeros((n, k), dtype="float32")
    rows = np.repeat(np.arange(n), counts)
    slot = np.arange(X.nnz) - np.repeat(X.indptr[:-1], counts)
    cols[rows, slot] = X.indices
    vals[rows, slot] = X.data
    return ops.convert_to_tensor(cols), ops.convert_to_tensor(vals)


def dense_rows(X, rows, n_features: int):
    """``X[rows]`` as a dense tensor, ``rows`` of shape ``(M, B)``; ``X`` dense or padded."""
    if not isinstance(X, tuple):
        return ops.take(X, rows, axis=0)
    cols = ops.take(X[0], rows, axis=0)  # (M, B, k)
    vals = ops.take(X[1], rows, axis=0)
    m, b, k = ops.shape(cols)  # tensors where the trace leaves a dimension unknown
    member = ops.broadcast_to(ops.reshape(ops.arange(m, dtype="int32"), (m, 1, 1)), (m, b, k))
    row = ops.broadcast_to(ops.reshape(ops.arange(b, dtype="int32"), (1, b, 1)), (m, b, k))
    where = ops.stack([member, row, cols], axis=-1)
    return ops.scatter(ops.reshape(where, (-1, 3)), ops.reshape(vals, (-1,)), (m, b, n_features))


def rows_that_fit(n_members: int, n_features: int, wanted: int) -> int:
    """Validation rows per member per call such that a dense block fits the cap."""
    fit = MAX_DENSE_BATCH_BYTES // max(1, int(n_members) * int(n_features) * 4)
    return max(1, min(int(wanted), int(fit)))

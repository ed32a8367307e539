"""The one writer of a trial's record (:class:`TrialRecord`) and the encodings it stores."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from tunekit.record.keys import (
    BEST_EPOCHS,
    CURVE_VALUES,
    CURVES,
    CV_TEST_SCORES,
    CV_TRAIN_SCORES,
    EPOCHS_SPENT,
    FAILURE_REASON,
    FAILURE_TRACEBACK,
    FIT_TIMES,
    FOLD_KEYS,
    N_EPOCHS,
    OOF_PREDICTIONS,
    SCORE_TIMES,
    TRACEBACK_CHARS,
    epoch_list,
    finite_or_none,
    jsonable,
    last_line,
)


# ------------------------------------------------------------------ writer
class TrialRecord:
    """A trial's cross-validation, fold by fold, as the user attributes it is stored in.

    Parameters
    ----------
    keys : sequence of str, default=FOLD_KEYS
        The per-fold lists this record holds; :meth:`add_fold` fills only
        these (the learning curve, for instance, keeps no best epochs).

    Examples
    --------
    >>> from tunekit.record import TrialRecord
    >>> record = TrialRecord()
    >>> record.add_fold(test_score=0.8, fit_time=1.5, score_time=0.1, n_epochs=12)
    >>> record.attrs(epochs_spent=record.epochs_spent())["cv_test_scores"]
    [0.8]
    """

    def __init__(self, keys: Sequence[str] = FOLD_KEYS) -> None:
        unknown = set(keys) - set(FOLD_KEYS)
        if unknown:
            raise ValueError(f"keys must be among {FOLD_KEYS}, got {sorted(unknown)}")
        self.folds: dict[str, list] = {key: [] for key in keys}
        self.predictions: np.ndarray | None = None
        self.curves: dict[int, list] = {}

    def set_predictions(self, values: np.ndarray | None) -> None:
        """Keep the trial's out-of-fold predictions; :meth:`attrs` stores them encoded."""
        self.predictions = values

    def add_fold(
        self,
        *,
        test_score: Any,
        fit_time: float,
        score_time: float,
        train_score: Any = None,
        best_epoch: Any = None,
        n_epochs: Any = None,
    ) -> None:
        """Add one fold: scores and epochs that are not finite numbers are stored as None."""
        values = {
            CV_TEST_SCORES: finite_or_none(test_score),
            CV_TRAIN_SCORES: finite_or_none(train_score),
            FIT_TIMES: float(fit_time),
            SCORE_TIMES: float(score_time),
            BEST_EPOCHS: finite_or_none(best_epoch),
            N_EPOCHS: finite_or_none(n_epochs),
        }
        for key, folds in self.folds.items():
            folds.append(values[key])

    def add_curves(self, fold: int, rows: Iterable[Mapping[str, Any]]) -> list:
        """Set fold ``fold``'s per-epoch rows (``epoch`` from 1, curve columns); the
        stored list is returned, for the caller to go on filling."""
        self.curves[int(fold)] = list(rows)
        return self.curves[int(fold)]

    def curves_attr(self) -> dict[str, list] | None:
        """The ``epoch_curves`` attribute of the curves added so far (None: none added)."""
        folds = [self.curves.get(f, []) for f in range(max(self.curves, default=-1) + 1)]
        out = {name: [epoch_list(rows, name) for rows in folds] for name in CURVE_VALUES}
        return {k: v for k, v in out.items() if any(x is not None for f in v for x in f)} or None

    @property
    def test_scores(self) -> list:
        """The per-fold test scores so far (None where one was not finite)."""
        return self.folds[CV_TEST_SCORES]

    def epochs_spent(self) -> float:
        """Epochs trained over the folds recorded so far."""
        return sum(e or 0 for e in self.folds.get(N_EPOCHS, ()))

    def attrs(
        self,
        *,
        epochs_spent: float | None = None,
        traceback_text: str | None = None,
        reason: str | None = None,
        curves: bool = True,
        **extra: Any,
    ) -> dict[str, Any]:
        """The user attributes to store on the trial, in one write.

        Parameters
        ----------
        epochs_spent : int or float, default=None
            Stored as ``epochs_spent`` when given.
        traceback_text : str, default=None
            The traceback of a failure: ``failure_traceback`` keeps its last
            :data:`TRACEBACK_CHARS` characters, ``failure_reason`` its last
            line unless ``reason`` is given.
        reason : str, default=None
            ``failure_reason``.
        curves : bool, default=True
            Store the per-epoch curves added (``epoch_curves``); a trial
            written fold by fold stores them with its last write only.
        **extra
            Further attributes, stored as given.

        Returns
        -------
        attrs : dict
        """
        out: dict[str, Any] = {key: list(values) for key, values in self.folds.items()}
        if epochs_spent is not None:
            out[EPOCHS_SPENT] = epochs_spent
        if reason is not None or traceback_text is not None:
            out[FAILURE_REASON] = reason if reason is not None else last_line(traceback_text)
        if traceback_text is not None:
            out[FAILURE_TRACEBACK] = traceback_text[-TRACEBACK_CHARS:]
        if self.predictions is not None:
            out[OOF_PREDICTIONS] = encode_oof_predictions(self.predictions)
        stored = self.curves_attr() if curves else None
        if stored is not None:
            out[CURVES] = stored
        out.update(extra)
        return out


def encode_oof_predictions(values: np.ndarray) -> dict[str, Any]:
    """The ``oof_predictions`` user attribute of an array (float32 bytes in base64)."""
    array = np.ascontiguousarray(values, dtype="<f4")
    return {"dtype": "float32", "shape": list(array.shape),
            "data": base64.b64encode(array.tobytes()).decode("ascii")}  # fmt: skip


def oof_target_attr(y: Any, classifier: bool) -> dict[str, Any]:
    """The study attribute ``tunekit_oof_target``: targets (class codes and ``classes``)."""
    if not classifier:
        return {"classes": None, **encode_oof_predictions(np.asarray(y, dtype=float))}
    classes, codes = np.unique(np.asarray(y), return_inverse=True)
    return {"classes": jsonable(list(classes)), **encode_oof_predictions(codes)}


def params_attr(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``params`` user attribute: a candidate's parameters as JSON."""
    return {key: jsonable(value) for key, value in params.items()}

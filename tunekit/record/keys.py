"""The trial record's keys, states and layout constants, and the JSON helpers it uses."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

# ------------------------------------------------------------------ trial states
#: Optuna trial states (``trial.state.name``) and ``cv_results_["state"]`` values.
COMPLETE = "COMPLETE"
PRUNED = "PRUNED"
FAIL = "FAIL"
RUNNING = "RUNNING"
WAITING = "WAITING"
#: The states a finished trial (a ``cv_results_`` row) can have.
STATES = (COMPLETE, PRUNED, FAIL)
#: ``state`` of a leaderboard row that is a baseline, not a candidate.
BASELINE = "BASELINE"

# ------------------------------------------------------- trial user attributes
PARAMS = "params"
CV_TEST_SCORES = "cv_test_scores"
CV_TRAIN_SCORES = "cv_train_scores"
FIT_TIMES = "fit_times"
SCORE_TIMES = "score_times"
BEST_EPOCHS = "best_epochs"
N_EPOCHS = "n_epochs"
EPOCHS_SPENT = "epochs_spent"
FAILURE_REASON = "failure_reason"
FAILURE_TRACEBACK = "failure_traceback"
ENGINE = "engine"
HELDOUT_TEST_SCORE = "heldout_test_score"
OOF_PREDICTIONS = "oof_predictions"
OOF_TARGET_ATTR = "tunekit_oof_target"
#: Per-epoch curves of every fold (layout 2; see the module docstring).
CURVES = "epoch_curves"
#: Columns of the per-epoch curves as a DataFrame, as every search has them in
#: ``epoch_curves_``; the curves stored per fold are the last three.
CURVE_COLUMNS = ("candidate", "fold", "epoch", "train_loss", "test_score", "val_loss")
CURVE_VALUES = CURVE_COLUMNS[3:]
#: The per-fold lists of a trial, in the order they are stored.
FOLD_KEYS = (CV_TEST_SCORES, CV_TRAIN_SCORES, FIT_TIMES, SCORE_TIMES, BEST_EPOCHS, N_EPOCHS)
#: A stored traceback keeps its last this many characters.
TRACEBACK_CHARS = 4000

# ------------------------------------------------------- study user attributes
SPACE_ATTR = "tunekit_space"
SCORING_ATTR = "scoring"
N_SPLITS_ATTR = "n_splits"
TEST_TRAIN_RATIO_ATTR = "test_train_ratio"
#: Optuna study user attribute that holds the baselines' scores (plain JSON).
BASELINES_ATTR = "tunekit_baselines"

# ------------------------------------------------------------ the stored layout
#: Study user attribute: ``{"version", "min_reader", "written_by"}`` (see above).
LAYOUT_ATTR = "tunekit_layout"
#: The layout this tunekit writes, and the newest it reads.
LAYOUT_VERSION = 2
#: The oldest layout version whose reader reads what this tunekit writes.
MIN_READER = 1


# ------------------------------------------------------------------ values
def jsonable(value: Any) -> Any:
    """``value`` as plain JSON: NaN/inf and masked entries become None, tuples lists.

    NumPy scalars and arrays become Python numbers and lists, mappings get
    string keys, and anything else becomes its ``str``.

    Parameters
    ----------
    value : object
        A parameter value, a ``cv_results_`` array or a report's metadata.

    Returns
    -------
    value : None, bool, int, float, str, list or dict
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ma.MaskedArray):  # masked entries are None, never the fill value
        mask = np.ma.getmaskarray(value)
        data = np.asarray(value.data, dtype=object)
        return [None if hidden else jsonable(v) for v, hidden in zip(data, mask, strict=True)]
    if isinstance(value, list | tuple | np.ndarray | pd.Series | pd.Index):
        return [jsonable(v) for v in list(value)]
    if value is None or value is np.ma.masked:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def param_value(value: Any) -> Any:
    """A parameter read back from JSON: lists become (nested) tuples, as they were given."""
    if isinstance(value, list):
        return tuple(param_value(v) for v in value)
    return value


def finite_or_none(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else None (JSON has no NaN)."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def epoch_list(rows: Sequence[Mapping[str, Any]], name: str) -> list:
    """One fold's ``name`` by epoch: 6 significant digits, None when not a finite number."""
    values: list = [None] * max((int(r["epoch"]) for r in rows), default=0)
    for row in rows:
        value = finite_or_none(row.get(name))
        values[int(row["epoch"]) - 1] = None if value is None else float(f"{value:.6g}")
    return values


def last_line(traceback_text: str) -> str:
    """The exception line of a formatted traceback."""
    lines = [line for line in str(traceback_text).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""

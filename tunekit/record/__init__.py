"""The trial record: what tunekit stores on an Optuna study, written and read here.

Every trial of a study that tunekit runs holds its cross-validation fold by
fold in its user attributes: :class:`TrialRecord` writes them (the Optuna
strategy, its batches on the stacked engine and the learning curve all
write through it), :func:`read_trial` reads one trial back, and
:func:`cv_results_from_study` turns a whole study into scikit-learn's
``cv_results_`` schema. The stored layout (keys, JSON value types) stays
readable by studies of earlier versions.

Trial user attributes
---------------------
``params``
    The candidate's estimator parameters as JSON (tuples as lists).
``cv_test_scores``, ``cv_train_scores``
    Per-fold scores, ``None`` where a score was not finite or not asked for.
``fit_times``, ``score_times``
    Per-fold seconds.
``best_epochs``, ``n_epochs``
    Per fold: the epoch whose weights early stopping kept and the epochs
    trained (``None`` for estimators without epochs).
``epochs_spent``
    Epochs trained over all folds, a pruned fold's included.
``failure_reason``, ``failure_traceback``
    Why the trial failed: one line, and the traceback's last
    :data:`TRACEBACK_CHARS` characters.
``engine``
    ``"stacked"`` or ``"sklearn"``: what trained the trial.
``heldout_test_score``
    The score on the held-out test set, when one was computed.
``oof_predictions``
    The trial's out-of-fold predictions over the rows of the searched data:
    ``{"dtype": "float32", "shape": [n_rows, ...], "data": BASE64}``, the
    array's little-endian float32 bytes in base64 (NaN where no fold
    predicted), read back with :func:`read_oof_predictions` (never pickle);
    complete trials only. Older readers ignore it (layout 1 still reads); the
    study attribute ``tunekit_oof_target`` holds the targets the same way.
``epoch_curves`` (layout 2; layout-1 readers ignore it)
    Written once, with the trial's last record: ``{"train_loss": [fold, ...],
    "test_score": [...], "val_loss": [...]}``, each fold a list with epoch ``e``
    at ``e - 1`` (6 significant digits, ``None`` where not finite); a curve no
    fold recorded is left out, a pruned trial's folds end where it stopped.

The study's stored layout
-------------------------
A study that tunekit creates or resumes holds the study user attribute
``tunekit_layout``: ``{"version": V, "min_reader": R, "written_by": "X.Y.Z"}``.
``V`` is the layout its trials were written in, ``R`` the oldest layout
version whose reader still reads them correctly: a new key that older readers
may ignore keeps ``R``; a changed meaning of a stored key raises it. A study
without the attribute was written before layouts had versions, in layout 1.
A tunekit reads a study whose ``R`` is at most its :data:`LAYOUT_VERSION`,
and writes trials only into a study whose ``V`` is at most its own (so that
no trial of an older layout lands among newer ones); otherwise
:class:`~tunekit.exceptions.LayoutError` names both versions.

The ``cv_results_`` schema
--------------------------
Besides scikit-learn's own keys (``params``, ``param_<name>``,
``split{i}_test_score``, ``mean_test_score``, ``std_test_score``,
``rank_test_score``, the ``*_train_score`` keys and the fit/score times), a
tunekit search may add arrays of length ``n_candidates``:

``state``
    ``"COMPLETE"``, ``"PRUNED"`` or ``"FAIL"``.
``failure_reason``
    Why a candidate failed, ``""`` when it did not.
``heldout_test_score``
    Score on the held-out test set, NaN where the candidate was not refit.
``split{i}_best_epoch``
    1-based epoch whose weights early stopping kept, NaN when it did not run.
``split{i}_n_epochs``
    Epochs actually trained in fold ``i``.
``trial_number``
    The Optuna trial behind each candidate (studies only).
"""

from __future__ import annotations

from tunekit.record.keys import (
    BASELINE as BASELINE,
)
from tunekit.record.keys import (
    BASELINES_ATTR as BASELINES_ATTR,
)
from tunekit.record.keys import (
    BEST_EPOCHS as BEST_EPOCHS,
)
from tunekit.record.keys import (
    COMPLETE as COMPLETE,
)
from tunekit.record.keys import (
    CURVE_COLUMNS as CURVE_COLUMNS,
)
from tunekit.record.keys import (
    CURVE_VALUES as CURVE_VALUES,
)
from tunekit.record.keys import (
    CURVES as CURVES,
)
from tunekit.record.keys import (
    CV_TEST_SCORES as CV_TEST_SCORES,
)
from tunekit.record.keys import (
    CV_TRAIN_SCORES as CV_TRAIN_SCORES,
)
from tunekit.record.keys import (
    ENGINE as ENGINE,
)
from tunekit.record.keys import (
    EPOCHS_SPENT as EPOCHS_SPENT,
)
from tunekit.record.keys import (
    FAIL as FAIL,
)
from tunekit.record.keys import (
    FAILURE_REASON as FAILURE_REASON,
)
from tunekit.record.keys import (
    FAILURE_TRACEBACK as FAILURE_TRACEBACK,
)
from tunekit.record.keys import (
    FIT_TIMES as FIT_TIMES,
)
from tunekit.record.keys import (
    FOLD_KEYS as FOLD_KEYS,
)
from tunekit.record.keys import (
    HELDOUT_TEST_SCORE as HELDOUT_TEST_SCORE,
)
from tunekit.record.keys import (
    LAYOUT_ATTR as LAYOUT_ATTR,
)
from tunekit.record.keys import (
    LAYOUT_VERSION as LAYOUT_VERSION,
)
from tunekit.record.keys import (
    MIN_READER as MIN_READER,
)
from tunekit.record.keys import (
    N_EPOCHS as N_EPOCHS,
)
from tunekit.record.keys import (
    N_SPLITS_ATTR as N_SPLITS_ATTR,
)
from tunekit.record.keys import (
    OOF_PREDICTIONS as OOF_PREDICTIONS,
)
from tunekit.record.keys import (
    OOF_TARGET_ATTR as OOF_TARGET_ATTR,
)
from tunekit.record.keys import (
    PARAMS as PARAMS,
)
from tunekit.record.keys import (
    PRUNED as PRUNED,
)
from tunekit.record.keys import (
    RUNNING as RUNNING,
)
from tunekit.record.keys import (
    SCORE_TIMES as SCORE_TIMES,
)
from tunekit.record.keys import (
    SCORING_ATTR as SCORING_ATTR,
)
from tunekit.record.keys import (
    SPACE_ATTR as SPACE_ATTR,
)
from tunekit.record.keys import (
    STATES as STATES,
)
from tunekit.record.keys import (
    TEST_TRAIN_RATIO_ATTR as TEST_TRAIN_RATIO_ATTR,
)
from tunekit.record.keys import (
    TRACEBACK_CHARS as TRACEBACK_CHARS,
)
from tunekit.record.keys import (
    WAITING as WAITING,
)
from tunekit.record.keys import (
    epoch_list as epoch_list,
)
from tunekit.record.keys import (
    finite_or_none as finite_or_none,
)
from tunekit.record.keys import (
    jsonable as jsonable,
)
from tunekit.record.keys import (
    last_line as last_line,
)
from tunekit.record.keys import (
    param_value as param_value,
)
from tunekit.record.layout import (
    StoredLayout as StoredLayout,
)
from tunekit.record.layout import (
    check_readable as check_readable,
)
from tunekit.record.layout import (
    check_resumable as check_resumable,
)
from tunekit.record.layout import (
    stamp_layout as stamp_layout,
)
from tunekit.record.layout import (
    stored_layout as stored_layout,
)
from tunekit.record.reader import (
    TrialRow as TrialRow,
)
from tunekit.record.reader import (
    curves_from_study as curves_from_study,
)
from tunekit.record.reader import (
    curves_rows as curves_rows,
)
from tunekit.record.reader import (
    cv_results_from_study as cv_results_from_study,
)
from tunekit.record.reader import (
    failed_in_the_model as failed_in_the_model,
)
from tunekit.record.reader import (
    fold_columns as fold_columns,
)
from tunekit.record.reader import (
    oof_predictions_of as oof_predictions_of,
)
from tunekit.record.reader import (
    param_arrays as param_arrays,
)
from tunekit.record.reader import (
    rank_like_sklearn as rank_like_sklearn,
)
from tunekit.record.reader import (
    read_oof_predictions as read_oof_predictions,
)
from tunekit.record.reader import (
    read_oof_target as read_oof_target,
)
from tunekit.record.reader import (
    read_trial as read_trial,
)
from tunekit.record.writer import (
    TrialRecord as TrialRecord,
)
from tunekit.record.writer import (
    encode_oof_predictions as encode_oof_predictions,
)
from tunekit.record.writer import (
    oof_target_attr as oof_target_attr,
)
from tunekit.record.writer import (
    params_attr as params_attr,
)

__all__ = [
    "BASELINE",
    "BASELINES_ATTR",
    "BEST_EPOCHS",
    "COMPLETE",
    "CURVES",
    "CURVE_COLUMNS",
    "CV_TEST_SCORES",
    "CV_TRAIN_SCORES",
    "ENGINE",
    "EPOCHS_SPENT",
    "FAIL",
    "FAILURE_REASON",
    "FAILURE_TRACEBACK",
    "FIT_TIMES",
    "FOLD_KEYS",
    "HELDOUT_TEST_SCORE",
    "LAYOUT_ATTR",
    "LAYOUT_VERSION",
    "MIN_READER",
    "N_EPOCHS",
    "N_SPLITS_ATTR",
    "OOF_PREDICTIONS",
    "PARAMS",
    "PRUNED",
    "RUNNING",
    "SCORE_TIMES",
    "SCORING_ATTR",
    "SPACE_ATTR",
    "STATES",
    "TEST_TRAIN_RATIO_ATTR",
    "TRACEBACK_CHARS",
    "WAITING",
    "TrialRecord",
    "TrialRow",
    "check_readable",
    "check_resumable",
    "curves_from_study",
    "curves_rows",
    "cv_results_from_study",
    "finite_or_none",
    "fold_columns",
    "jsonable",
    "last_line",
    "oof_predictions_of",
    "param_arrays",
    "param_value",
    "params_attr",
    "rank_like_sklearn",
    "read_oof_predictions",
    "read_oof_target",
    "read_trial",
    "stamp_layout",
    "stored_layout",
]


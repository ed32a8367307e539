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

import base64
import math
import numbers
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.ma import MaskedArray

from tunekit._version import __version__
from tunekit.exceptions import LayoutError, ReportError

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
_CURVE_VALUES = CURVE_COLUMNS[3:]
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


@dataclass(frozen=True)
class StoredLayout:
    version: int
    min_reader: int
    written_by: str | None


def stored_layout(study: Any) -> StoredLayout:
    """The layout a study was written in; layout 1 for a study from before versions."""
    raw = dict(getattr(study, "user_attrs", {}) or {}).get(LAYOUT_ATTR)
    if raw is None:
        return StoredLayout(1, 1, None)
    try:
        version, min_reader = int(raw["version"]), int(raw["min_reader"])
    except (TypeError, KeyError, ValueError):
        raise LayoutError(
            f"study {_study_name(study)!r} has an unreadable {LAYOUT_ATTR!r} attribute "
            f"({raw!r}); expected {{'version': int, 'min_reader': int}}"
        ) from None
    return StoredLayout(version, min_reader, raw.get("written_by"))


def _study_name(study: Any) -> str:
    return getattr(study, "study_name", "?")


def _written_by(layout: StoredLayout) -> str:
    return f" by tunekit {layout.written_by}" if layout.written_by else ""


def check_readable(study: Any) -> StoredLayout:
    """Refuse a study whose stored layout this tunekit would misread."""
    layout = stored_layout(study)
    if layout.min_reader > LAYOUT_VERSION:
        raise LayoutError(
            f"study {_study_name(study)!r} was written{_written_by(layout)} in stored layout "
            f"version {layout.version}, which needs a reader of layout {layout.min_reader} or "
            f"newer; this tunekit {__version__} reads layouts 1 to {LAYOUT_VERSION}. Upgrade "
            "tunekit to read it."
        )
    return layout


def check_resumable(study: Any) -> StoredLayout:
    """Refuse to add trials to a study whose stored layout is newer than this tunekit's."""
    layout = check_readable(study)
    if layout.version > LAYOUT_VERSION:
        raise LayoutError(
            f"study {_study_name(study)!r} holds trials{_written_by(layout)} in stored layout "
            f"version {layout.version}; this tunekit {__version__} writes layout "
            f"{LAYOUT_VERSION}, so it may report on the study but not add trials to it. "
            "Upgrade tunekit to resume it."
        )
    return layout


def stamp_layout(study: Any) -> None:
    """Before trials are written: refuse a newer study, record this tunekit's layout.

    A study of an older layout that this tunekit reads is taken over: its
    attribute says the newest layout among its trials, and the oldest reader
    that still reads them all.
    """
    layout = check_resumable(study)
    stamp = {
        "version": LAYOUT_VERSION,
        "min_reader": max(layout.min_reader, MIN_READER),
        "written_by": __version__,
    }
    if study.user_attrs.get(LAYOUT_ATTR) != stamp:
        study.set_user_attr(LAYOUT_ATTR, stamp)


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


def _epoch_list(rows: Sequence[Mapping[str, Any]], name: str) -> list:
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

    def set_predictions(self, values: np.ndarray | None) -> None:
        """Keep the trial's out-of-fold predictions; :meth:`attrs` stores them encoded."""
        self.predictions = values
        self.curves: dict[int, list] = {}

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
        out = {name: [_epoch_list(rows, name) for rows in folds] for name in _CURVE_VALUES}
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


def read_oof_predictions(trial: Any) -> np.ndarray | None:
    """A trial's (or its ``user_attrs``') ``oof_predictions`` as float32 (``None``: none);
    ``ReportError`` if the value is not an array :func:`encode_oof_predictions` wrote."""
    attrs = trial if isinstance(trial, Mapping) else trial.user_attrs
    stored = attrs.get(OOF_PREDICTIONS)
    if stored is None:
        return None
    try:
        data = base64.b64decode(stored["data"], validate=True)
        return np.frombuffer(data, "<f4").reshape([int(n) for n in stored["shape"]]).copy()
    except (KeyError, TypeError, ValueError) as err:
        raise ReportError(
            f"the trial's {OOF_PREDICTIONS!r} attribute is not a base64 float32 array with a "
            f"shape ({type(err).__name__}: {err})"
        ) from None


def oof_target_attr(y: Any, classifier: bool) -> dict[str, Any]:
    """The study attribute ``tunekit_oof_target``: targets (class codes and ``classes``)."""
    if not classifier:
        return {"classes": None, **encode_oof_predictions(np.asarray(y, dtype=float))}
    classes, codes = np.unique(np.asarray(y), return_inverse=True)
    return {"classes": jsonable(list(classes)), **encode_oof_predictions(codes)}


def read_oof_target(study: Any) -> np.ndarray | None:
    """The searched rows' targets a study stored (``None`` when it stored none)."""
    stored = dict(getattr(study, "user_attrs", {}) or {}).get(OOF_TARGET_ATTR)
    values = read_oof_predictions({OOF_PREDICTIONS: stored}) if stored else None
    if values is None or stored.get("classes") is None:
        return values
    return np.asarray(stored["classes"])[values.astype(np.intp)]


def oof_predictions_of(trials: Sequence[Any], n_rows: int | None = None) -> list | None:
    """Every trial's out-of-fold predictions (``None``: none stored), NaN for a trial that
    is not COMPLETE or stored them over other than ``n_rows`` rows (``None``: the first's).
    """
    stored = [read_oof_predictions(t) if t.state.name == COMPLETE else None for t in trials]
    known = [a for a in stored if a is not None and (n_rows is None or len(a) == n_rows)]
    if not known:
        return None
    shape = known[0].shape
    return [a if a is not None and a.shape == shape else np.full(shape, np.nan, "f4")
            for a in stored]  # fmt: skip


def failed_in_the_model(trial: Any) -> bool:
    """Whether a FAIL trial failed in the candidate itself, not because it was stopped.

    A candidate failed when a fit or a score raised (the record keeps the
    traceback) or a fold's score was not finite (the record keeps None for it).
    A trial that a signal interrupted or whose worker died recorded neither:
    only the folds it finished, with their scores. Decided from the record's
    fields, never from the wording of its reason.
    """
    attrs = trial.user_attrs
    if FAILURE_TRACEBACK in attrs:
        return True
    return any(score is None for score in attrs.get(CV_TEST_SCORES) or ())


def params_attr(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``params`` user attribute: a candidate's parameters as JSON."""
    return {key: jsonable(value) for key, value in params.items()}


# ------------------------------------------------------------------ reader
@dataclass
class TrialRow:
    """One finished trial, read back: a ``cv_results_`` row.

    Per-fold arrays have ``n_splits`` entries, NaN for folds never run; the
    ``has_*`` flags say whether the trial recorded that kind at all.
    """

    number: int
    params: dict
    state: str
    reason: str
    test: np.ndarray
    train: np.ndarray
    fit: np.ndarray
    score: np.ndarray
    best_epochs: np.ndarray
    n_epochs: np.ndarray
    heldout: float
    has_train: bool
    has_best: bool
    has_epochs: bool


def _float_list(values: Any, length: int) -> np.ndarray:
    """A list of numbers (None meaning missing) padded with NaN to ``length``."""
    out = np.full(length, np.nan)
    if values is None:
        return out
    if isinstance(values, numbers.Real):
        values = [values]
    for i, value in enumerate(list(values)[:length]):
        if value is None:
            continue
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def read_trial(trial: Any, n_splits: int, sign: float = 1.0) -> TrialRow:
    """Read one finished trial's record.

    Parameters
    ----------
    trial : optuna.trial.FrozenTrial
        A COMPLETE, PRUNED or FAIL trial.
    n_splits : int
        Folds of the study.
    sign : float, default=1.0
        ``-1.0`` for a minimized study: a trial without ``cv_test_scores``
        (not run by tunekit) scores its value times ``sign`` in its first fold.

    Returns
    -------
    row : TrialRow
        A COMPLETE trial with a non-finite value or fold score becomes FAIL
        with the reason ``"non-finite score"``; its non-finite fold scores
        become NaN. A FAIL trial without a reason gets ``"trial failed"``.
    """
    attrs = trial.user_attrs
    raw_params = attrs.get(PARAMS)
    if not isinstance(raw_params, Mapping):
        raw_params = trial.params
    state = trial.state.name
    reason = str(attrs.get(FAILURE_REASON) or "")
    test = np.full(n_splits, np.nan)
    if CV_TEST_SCORES in attrs:
        test = _float_list(attrs.get(CV_TEST_SCORES), n_splits)
    elif trial.value is not None:
        test[0] = sign * float(trial.value)
    value_bad = trial.value is not None and not math.isfinite(trial.value)
    if np.isinf(test).any() or (state == COMPLETE and value_bad):
        state = FAIL
        reason = reason or "non-finite score"
    test[~np.isfinite(test)] = np.nan
    if state == FAIL and not reason:
        reason = "trial failed"
    heldout = attrs.get(HELDOUT_TEST_SCORE)
    return TrialRow(
        number=trial.number,
        params={k: param_value(v) for k, v in raw_params.items()},
        state=state,
        reason=reason,
        test=test,
        train=_float_list(attrs.get(CV_TRAIN_SCORES), n_splits),
        fit=_float_list(attrs.get(FIT_TIMES), n_splits),
        score=_float_list(attrs.get(SCORE_TIMES), n_splits),
        best_epochs=_float_list(attrs.get(BEST_EPOCHS), n_splits),
        n_epochs=_float_list(attrs.get(N_EPOCHS), n_splits),
        heldout=np.nan if heldout is None else float(heldout),
        # scikit-learn has train keys only with return_train_score
        has_train=any(v is not None for v in attrs.get(CV_TRAIN_SCORES) or []),
        has_best=attrs.get(BEST_EPOCHS) is not None,
        has_epochs=attrs.get(N_EPOCHS) is not None,
    )


# ------------------------------------------------------------ cv_results_
def rank_like_sklearn(means: np.ndarray) -> np.ndarray:
    """Rank mean scores the way scikit-learn's ``_format_results`` does.

    Higher is better; ties share the smallest rank (``method="min"``). NaN
    means (failed candidates) are ranked below the worst finite mean, tied
    with each other; when every mean is NaN, all ranks are 1.

    Parameters
    ----------
    means : ndarray of shape (n_candidates,)
        Mean test scores, NaN for failed candidates.

    Returns
    -------
    ranks : ndarray of shape (n_candidates,), dtype int32
        1 for the best candidate.
    """
    from scipy.stats import rankdata  # SciPy: imported when a study is ranked

    means = np.asarray(means, dtype=np.float64)
    if means.size == 0 or np.isnan(means).all():
        return np.ones(means.shape, dtype=np.int32)
    filled = np.where(np.isnan(means), np.nanmin(means) - 1, means)
    return rankdata(-filled, method="min").astype(np.int32, copy=False)


def param_arrays(candidate_params: Sequence[Mapping[str, Any]]) -> dict[str, MaskedArray]:
    """``param_<name>`` masked arrays, as ``BaseSearchCV._format_results`` builds them."""
    n_candidates = len(candidate_params)
    by_name: dict[str, dict[int, Any]] = {}
    for index, params in enumerate(candidate_params):
        for name, value in params.items():
            by_name.setdefault(f"param_{name}", {})[index] = value
    arrays = {}
    for key, values in by_name.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                inferred = np.array(list(values.values()))
        except ValueError:  # ragged sequences
            dtype = np.dtype(object)
        else:
            dtype = inferred.dtype if inferred.dtype.kind != "U" and inferred.ndim == 1 else object
        array = MaskedArray(np.empty(n_candidates, dtype=dtype), mask=True)
        for index, value in values.items():
            array[index] = value
        arrays[key] = array
    return arrays


def fold_columns(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """``split{i}_<name>`` columns from an ``(n_candidates, n_splits)`` array."""
    values = np.asarray(values, dtype=float)
    return {f"split{i}_{name}": values[:, i].copy() for i in range(values.shape[1])}


def _nan_stat(func, rows: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(rows, axis=1)


def _direction_sign(study: Any) -> float:
    """1.0 for a maximized study, -1.0 for a minimized one; refuses several objectives."""
    directions = getattr(study, "directions", None)
    if directions is not None and len(directions) > 1:
        raise ReportError(
            f"a leaderboard ranks one score, but study {getattr(study, 'study_name', '?')!r} "
            f"has {len(directions)} objectives; report a single-objective study"
        )
    if directions is not None and directions[0].name == "MINIMIZE":
        return -1.0
    return 1.0


def _finished_trials(study: Any) -> list:
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name in STATES]
    return sorted(trials, key=lambda t: t.number)


def _count_splits(study: Any, trials: Iterable[Any]) -> int:
    declared = dict(getattr(study, "user_attrs", {}) or {}).get(N_SPLITS_ATTR)
    longest = max((len(t.user_attrs.get(CV_TEST_SCORES) or []) for t in trials), default=0)
    return max(int(declared or 0), longest) or 1


def _stack(rows: Sequence[TrialRow], field: str, n_splits: int) -> np.ndarray:
    if not rows:
        return np.full((0, n_splits), np.nan)
    return np.vstack([getattr(row, field) for row in rows])


def _rows_to_cv_results(rows: Sequence[TrialRow], n_splits: int) -> dict[str, Any]:
    """scikit-learn's ``cv_results_`` keys, then tunekit's, from the trials' rows."""
    n = len(rows)
    test, train = _stack(rows, "test", n_splits), _stack(rows, "train", n_splits)
    states = np.array([row.state for row in rows], dtype=object)
    results: dict[str, Any] = {}
    for key, field in (("fit_time", "fit"), ("score_time", "score")):
        times = _stack(rows, field, n_splits)
        results[f"mean_{key}"] = _nan_stat(np.nanmean, times)
        results[f"std_{key}"] = _nan_stat(np.nanstd, times)
    params = [row.params for row in rows]
    results.update(param_arrays(params))
    results["params"] = params
    results.update(fold_columns("test_score", test))
    # scikit-learn's rule: a candidate that is not COMPLETE has no mean and ranks last
    complete = states == COMPLETE
    means = np.where(complete, test.mean(axis=1), np.nan) if n else np.empty(0)
    results["mean_test_score"] = means
    results["std_test_score"] = np.where(complete, test.std(axis=1), np.nan) if n else np.empty(0)
    results["rank_test_score"] = rank_like_sklearn(means)
    if any(row.has_train for row in rows):
        results.update(fold_columns("train_score", train))
        results["mean_train_score"] = train.mean(axis=1)
        results["std_train_score"] = train.std(axis=1)
    results["state"] = states
    results["failure_reason"] = np.array([row.reason for row in rows], dtype=object)
    results["heldout_test_score"] = np.array([row.heldout for row in rows], dtype=float)
    results["trial_number"] = np.array([row.number for row in rows], dtype=np.int64)
    if any(row.has_best for row in rows):
        results.update(fold_columns("best_epoch", _stack(rows, "best_epochs", n_splits)))
    if any(row.has_epochs for row in rows):
        results.update(fold_columns("n_epochs", _stack(rows, "n_epochs", n_splits)))
    return results


def cv_results_from_study(study: Any) -> dict[str, Any]:
    """Convert an Optuna study that tunekit ran into a ``cv_results_`` dict.

    Each finished trial becomes one candidate: COMPLETE, PRUNED and FAIL
    trials are kept (in trial-number order), RUNNING and WAITING trials are
    skipped. Per-fold scores come from the trial's ``user_attrs``
    (``cv_test_scores``, ``cv_train_scores``, ``fit_times``, ``score_times``,
    ``best_epochs``, ``n_epochs``, ``heldout_test_score``, ``failure_reason``,
    ``params``); folds a pruned trial never ran are NaN.

    Parameters
    ----------
    study : optuna.study.Study
        A single-objective study. Its ``user_attrs`` may give ``n_splits``.
        A study not run by tunekit (no ``cv_test_scores``) is accepted too:
        each trial's value is then its only "fold", negated when the study
        minimizes, so that higher is better as in scikit-learn.

    Returns
    -------
    cv_results : dict
        scikit-learn's schema (``params``, ``param_<name>`` masked arrays,
        ``split{i}_test_score``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``, train scores when recorded, ``mean_fit_time``,
        ``std_fit_time``, ``mean_score_time``, ``std_score_time``) plus
        ``state``, ``failure_reason``, ``heldout_test_score``,
        ``trial_number`` and, when recorded, ``split{i}_best_epoch`` and
        ``split{i}_n_epochs``.

    Raises
    ------
    ReportError
        If the study has several objectives.
    LayoutError
        If the study was written in a stored layout newer than this tunekit reads.

    Notes
    -----
    Means follow scikit-learn's rule: a candidate that is not COMPLETE (pruned
    or failed, whatever folds it scored) has a NaN ``mean_test_score`` and is
    ranked below every complete candidate; its fold scores are kept. A trial
    that Optuna recorded as COMPLETE with a non-finite value or fold score
    (Optuna stores ``inf`` as COMPLETE) is reported as FAIL with the reason
    ``"non-finite score"``; its non-finite fold scores become NaN. Lists in
    ``user_attrs["params"]`` become tuples, since JSON cannot store tuples
    such as ``hidden=(16, 16)``.

    Examples
    --------
    >>> import optuna
    >>> from tunekit.report import cv_results_from_study
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(direction="maximize")
    >>> study.add_trial(optuna.trial.create_trial(
    ...     params={"C": 1.0},
    ...     distributions={"C": optuna.distributions.FloatDistribution(0.1, 10)},
    ...     value=0.8, user_attrs={"cv_test_scores": [0.7, 0.9]}))
    >>> cv_results_from_study(study)["mean_test_score"]
    array([0.8])
    """
    check_readable(study)
    sign = _direction_sign(study)
    trials = _finished_trials(study)
    n_splits = _count_splits(study, trials)
    rows = [read_trial(trial, n_splits, sign) for trial in trials]
    return _rows_to_cv_results(rows, n_splits)


# ------------------------------------------------------------ per-epoch curves
def curves_rows(attrs: Mapping[str, Any], candidate: int) -> list[tuple]:
    """A trial's stored curves as ``(candidate, fold, epoch, *curves)`` rows, NaN where
    unreadable; none without ``epoch_curves`` (layout 1, no epochs)."""
    raw = attrs.get(CURVES)
    raw = raw if isinstance(raw, Mapping) else {}
    columns = [raw.get(name) if isinstance(raw.get(name), list) else [] for name in _CURVE_VALUES]
    rows = []
    for fold in range(max(len(c) for c in columns)):
        per = [c[fold] if fold < len(c) and isinstance(c[fold], list) else [] for c in columns]
        for k in range(max(len(p) for p in per)):
            rows.append((candidate, fold, k + 1, *(_float_list(p[k : k + 1], 1)[0] for p in per)))
    return rows


def curves_from_study(study: Any) -> pd.DataFrame:
    """A study's stored per-epoch curves as a DataFrame of :data:`CURVE_COLUMNS`.

    The same frame as a search's ``epoch_curves_``: ``candidate`` is the trial's
    row in :func:`cv_results_from_study`; trials without curves (layout 1,
    estimators without epochs) add no rows, so the frame may be empty.
    """
    check_readable(study)
    rows = []
    for candidate, trial in enumerate(_finished_trials(study)):
        rows.extend(curves_rows(trial.user_attrs, candidate))
    frame = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    return frame.astype({"candidate": np.int64, "fold": np.int64, "epoch": np.int64})

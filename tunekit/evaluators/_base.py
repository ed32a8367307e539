"""The seam: what an evaluator is given, what it returns, and the pieces both share.

A strategy decides *which* candidates to try; an evaluator decides *how* a
batch of candidates is cross-validated. Every evaluator returns the same
:class:`Evaluation`, one entry per (candidate, fold) in the form of
scikit-learn's ``_fit_and_score`` (``test_scores``, ``train_scores``,
``fit_time``, ``score_time``, ``n_test_samples``, ``fit_error``) plus
``best_epoch`` and ``n_epochs``, so the search that formats them writes the
same ``cv_results_`` keys whatever trained the candidates.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.utils import _safe_indexing

from tunekit.evaluators._steps import final_estimator
from tunekit.evaluators.diagnosis import non_finite_reason
from tunekit.evaluators.fast_scores import exact_score, fast_score
from tunekit.evaluators.oof import PREDICTIONS, predictions_of
from tunekit.exceptions import DivergedError

__all__ = [
    "MODEL",
    "Evaluation",
    "Evaluator",
    "Family",
    "Fold",
    "Scoring",
    "epoch_families",
    "fail_entry",
    "final_estimator",
    "score_entry",
]

#: The entry key of a fitted fold model, kept when the evaluator's ``keep_models`` is set: a
#: fitted estimator on the standard path, a stacked member on the engine.
MODEL = "model"

#: Columns of an evaluation's per-epoch curve rows.
CURVE_COLUMNS = ("candidate", "fold", "epoch", "train_loss", "test_score", "val_loss")


@dataclass
class Evaluation:
    """What :meth:`Evaluator.evaluate` returns for a batch of candidates.

    Attributes
    ----------
    entries : list of list of dict
        ``entries[c][s]``: candidate ``c`` on fold ``s``, in
        ``_fit_and_score``'s form plus ``best_epoch`` and ``n_epochs``.
    engines : list of str
        Per candidate, ``"stacked"`` or ``"sklearn"``: what trained it.
    curves : list of dict
        Per-epoch rows (:data:`CURVE_COLUMNS`); ``candidate`` is the
        position in the batch. Empty for models that have no epochs.
    n_trained : int
        Models (standard path) or members (engine) actually trained: a
        candidate read from a longer run of another costs nothing.
    n_epochs : int
        Epochs trained over all of them.
    pruned : dict of int -> int
        Candidates stopped by the evaluator's ``on_epoch`` hook (or a
        refill's ``epoch_end``), with the epoch they stopped after.
    refilled : bool
        Whether the batch ran with refilled slots: its candidates came and
        went one by one through the caller's refill, and the lists above
        grew with the candidates it seated.
    started : dict of int -> int
        With refilled slots, each candidate seated in a running stack, with
        the epochs the stack had run when it joined.
    """

    entries: list
    engines: list
    curves: list = field(default_factory=list)
    n_trained: int = 0
    n_epochs: int = 0
    pruned: dict = field(default_factory=dict)
    refilled: bool = False
    started: dict = field(default_factory=dict)
    _by_candidate: dict = field(default_factory=dict, repr=False, compare=False)
    _indexed: tuple = field(default=(None, 0), repr=False, compare=False)  # (list id, rows)

    def curves_of(self, c: int) -> list[dict]:
        """Candidate ``c``'s curve rows, in the order they were added.

        Indexed as :attr:`curves` grows (rows are only ever appended), so asking
        for every candidate of a large batch costs one pass over the rows, not
        one per candidate. A list put in its place, or shortened, is indexed anew.
        """
        owner, done = self._indexed
        if owner != id(self.curves) or done > len(self.curves):
            self._by_candidate, done = {}, 0
        for row in self.curves[done:]:
            self._by_candidate.setdefault(row["candidate"], []).append(row)
        self._indexed = (id(self.curves), len(self.curves))
        return list(self._by_candidate.get(c, ()))

    def merge(self, other: Evaluation, positions: list[int], folds=None) -> None:
        """Put ``other`` (an evaluation of the candidates at ``positions``) into this one.

        ``folds``: the positions of ``other``'s folds here (``None``: the same folds).
        """
        for k, c in enumerate(positions):
            if folds is None:
                self.entries[c] = other.entries[k]
            else:
                for s, entry in zip(folds, other.entries[k], strict=True):
                    self.entries[c][s] = entry
            self.engines[c] = other.engines[k]
        self.curves.extend(
            {**row, "candidate": positions[row["candidate"]],
             **({} if folds is None else {"fold": folds[row["fold"]]})}
            for row in other.curves
        )  # fmt: skip
        self.n_trained += other.n_trained
        self.n_epochs += other.n_epochs
        self.pruned.update({positions[c]: e for c, e in other.pruned.items()})


@dataclass(frozen=True)
class Scoring:
    """How every (candidate, fold) of a batch is scored, as scikit-learn's searches do.

    Attributes
    ----------
    scorers : callable
        From ``BaseSearchCV._get_scorers`` (one scorer or a multimetric one).
    error_score : "raise" or float, default=np.nan
        Score of a failed fit or scoring.
    train_score : bool, default=True
        Score the training part of every fold too.
    predictions : bool, default=False
        Keep each fold model's predictions on its test rows in the entry
        (``"predictions"``, see :mod:`tunekit.evaluators.oof`).
    models : bool, default=False
        Keep each fitted fold model in its entry (:data:`MODEL`).
    """

    scorers: Any
    error_score: Any = np.nan
    train_score: bool = True
    predictions: bool = False
    models: bool = False


@dataclass(frozen=True)
class Fold:
    """One fold: the data and the positions of its training and test rows.

    Attributes
    ----------
    X, y : indexable
        The data the positions index.
    train, test : ndarray of int
        Row positions of the training and test parts.
    X_train, X_test : array or None
        ``X``'s rows at ``train`` and ``test``, where the caller has taken
        them already (a member whose predictions on those arrays are known).
    """

    X: Any
    y: Any
    train: Any
    test: Any
    X_train: Any = None
    X_test: Any = None


class Evaluator:
    """Base class of evaluators: cross-validate a batch of candidates.

    Subclasses implement :meth:`evaluate`. The contract:

    - every (candidate, fold) gets an entry, failed or not: a fit that raises
      gives ``error_score`` and its traceback in ``fit_error`` (or raises when
      ``error_score="raise"``);
    - a fold's test part is only ever scored, never trained or early-stopped
      on;
    - with an integer ``random_state`` on the estimator, every fit starts
      from that seed: a candidate's scores do not depend on its position in
      the batch nor on the other candidates.

    Parameters
    ----------
    error_score : "raise" or float, default=np.nan
        Score of a failed fit.
    return_train_score : bool, default=True
        Score the training part of every fold too.
    epoch_curves : bool, default=True
        Score every fold's test part after every epoch (:attr:`Evaluation.curves`).
    progress : object or None, default=None
        A ``tqdm``-like bar; ``update(n)`` is called as (candidate, fold)
        pairs finish.
    verbose : int, default=0
        Print what is trained when > 0.
    oof_predictions : bool, default=False
        Keep every (candidate, fold)'s predictions on the fold's test rows in
        its entry (``"predictions"``): the out-of-fold predictions.
    keep_models : bool, default=False
        Keep every (candidate, fold)'s fitted model in its entry
        (:data:`MODEL`), for refits that are used after the evaluation. A
        candidate read from a longer run of another (a shorter ``epochs``)
        keeps none, since its model went on training.
    """

    name = "base"

    def __init__(
        self,
        *,
        error_score: Any = np.nan,
        return_train_score: bool = True,
        epoch_curves: bool = True,
        progress: Any = None,
        verbose: int = 0,
        oof_predictions: bool = False,
        keep_models: bool = False,
    ):
        self.oof_predictions = oof_predictions
        self.keep_models = keep_models
        self.error_score = error_score
        self.return_train_score = return_train_score
        self.epoch_curves = epoch_curves
        self.progress = progress
        self.verbose = verbose

    def evaluate(self, estimator, candidates, splits, X, y, *, scorers, fit_params=None):
        """Cross-validate ``candidates`` on ``splits``.

        Parameters
        ----------
        estimator : estimator
            The unfitted base estimator; each candidate is
            ``clone(estimator).set_params(**candidate)``.
        candidates : list of dict
            The batch.
        splits : list of (ndarray, ndarray)
            ``(train, test)`` row indices of every fold.
        X, y : indexable
            The data the folds index.
        scorers : callable
            From ``BaseSearchCV._get_scorers`` (one scorer or a multimetric one).
        fit_params : dict or None
            Extra ``fit`` arguments; per-sample ones are indexed per fold.

        Returns
        -------
        Evaluation
        """
        raise NotImplementedError

    def settings(self) -> dict:
        """The settings every evaluator takes, to build another one alike."""
        return {
            "error_score": self.error_score,
            "return_train_score": self.return_train_score,
            "epoch_curves": self.epoch_curves,
            "progress": self.progress,
            "verbose": self.verbose,
            "oof_predictions": self.oof_predictions,
            "keep_models": self.keep_models,
        }

    def scoring(self, scorers) -> Scoring:
        """How this evaluator scores with ``scorers``: its ``error_score`` and train scores."""
        return Scoring(
            scorers, self.error_score, self.return_train_score, self.oof_predictions,
            self.keep_models,
        )  # fmt: skip

    def _tick(self, n: int = 1) -> None:
        if self.progress is not None:
            self.progress.update(n)


def _error_scores(scorers, error_score):
    names = getattr(scorers, "_scorers", None)
    return {name: error_score for name in names} if names else error_score


def fail_entry(scoring: Scoring, n_test: int, fit_time: float, reason: str):
    """The entry of a (candidate, fold) whose fit failed."""
    entry = {
        "fit_time": fit_time,
        "score_time": 0.0,
        "n_test_samples": n_test,
        "fit_error": reason,
        "test_scores": _error_scores(scoring.scorers, scoring.error_score),
        "best_epoch": math.nan,
        "n_epochs": math.nan,
    }
    if scoring.train_score:
        entry["train_scores"] = _error_scores(scoring.scorers, scoring.error_score)
    return entry


def _score(scorers, est, X, y, error_score):
    """Score like scikit-learn's ``_score``: a failure gives ``error_score`` (or raises)."""
    return _scored(scorers, est, X, y, error_score)[0]


def _curve_point(scorers, est, X, y, predicted=None) -> float:
    """A curve point: the test score after an epoch, NaN where scoring fails.

    ``predicted``: ``est.predict(X)``, when the caller has it already.
    """
    return fast_score(
        scorers, est, X, y, lambda: main_score(_score(scorers, est, X, y, math.nan)), predicted
    )


def _scored(scorers, est, X, y, error_score):
    """:func:`_score`, and the exception a failed scoring raised (``None``)."""
    exact = exact_score(scorers, est, X, y)
    if exact is not None:  # accuracy: the scorer's number, without its checks
        return exact, None
    if isinstance(error_score, str) and error_score == "raise":
        scores = scorers(est, X, y)
    else:
        try:
            scores = scorers(est, X, y)
        except Exception as err:  # mirrors scikit-learn's error_score rule
            warnings.warn(
                f"Scoring failed. The score on this train-test partition for these "
                f"parameters will be set to {error_score}. Details: {err!r}",
                UserWarning,
                stacklevel=4,
            )
            return _error_scores(scorers, error_score), err
    if isinstance(scores, dict):
        clean = {}
        for name, value in scores.items():
            if isinstance(value, str):  # _MultimetricScorer reports a failure as text
                if isinstance(error_score, str) and error_score == "raise":
                    raise RuntimeError(value)
                value = error_score
            clean[name] = value
        return clean, None
    return scores, None


def _refuse_non_finite(scoring: Scoring, est, X_test, scores, error):
    """A score that is not finite fails the fold, with the reason: never a rankable -inf.

    Returns the fold's scores (NaN where they were not finite) and the failure
    reason, ``None`` when the main score is finite.
    """
    main = main_score(scores)
    if math.isfinite(main):
        return scores, None
    reason = non_finite_reason(est, X_test, main, error)
    if isinstance(scoring.error_score, str) and scoring.error_score == "raise":
        raise (DivergedError if reason.startswith("DivergedError") else ValueError)(
            reason.removeprefix("DivergedError: ")
        )
    if isinstance(scores, dict):
        return {k: v if _is_finite(v) else math.nan for k, v in scores.items()}, reason
    return math.nan, reason


def _is_finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def take_rows(data, rows):
    """``data``'s rows at positions ``rows``: ``_safe_indexing``, without its checks for arrays.

    A NumPy array indexed by an integer array is the common case (every fold
    entry of a stacked search); its checks cost 25 times the copy itself.
    """
    if type(data) is np.ndarray and isinstance(rows, np.ndarray) and rows.dtype.kind in "iu":
        return data[rows]
    return _safe_indexing(data, rows)


def score_entry(
    scoring: Scoring, est, fold: Fold, fit_time: float, *, best_epoch=math.nan,
    n_epochs=math.nan, snapshot: bool = False,
):  # fmt: skip
    """The entry of a fitted (candidate, fold): its test (and train) scores.

    A test score that is not finite (the scorer failed on NaN predictions,
    or returned an infinity) makes the fold a failure whose ``fit_error``
    says why: how training diverged, or the scorer's error. ``snapshot``:
    the model is scored on its way to a longer run, and is not kept
    (:attr:`Scoring.models`) since it goes on training.
    """
    scorers, error_score = scoring.scorers, scoring.error_score
    X, y, train, test = fold.X, fold.y, fold.train, fold.test
    start = time.perf_counter()
    X_test = take_rows(X, test) if fold.X_test is None else fold.X_test
    scores, error = _scored(scorers, est, X_test, take_rows(y, test), error_score)
    scores, reason = _refuse_non_finite(scoring, est, X_test, scores, error)
    entry = {
        "fit_time": fit_time,
        "n_test_samples": len(test),
        "fit_error": reason,
        "test_scores": scores,
        "best_epoch": _as_float(best_epoch),
        "n_epochs": _as_float(n_epochs),
    }
    entry["score_time"] = time.perf_counter() - start
    if scoring.predictions and reason is None:
        entry[PREDICTIONS] = predictions_of(est, X_test)
    if scoring.models and reason is None and not snapshot:
        entry[MODEL] = est
    if scoring.train_score:
        entry["train_scores"] = _score(
            scorers,
            est,
            take_rows(X, train) if fold.X_train is None else fold.X_train,
            take_rows(y, train),
            error_score,
        )
    return entry


def _as_float(value) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def main_score(scores) -> float:
    """The number a curve row records: the score, or the first metric of a dict."""
    if isinstance(scores, dict):
        scores = next(iter(scores.values()), math.nan)
    return _as_float(scores)


# --------------------------------------------------------------------- epochs for free
@dataclass
class Family:
    """Candidates equal apart from their epochs: one run to the largest serves all.

    Attributes
    ----------
    leader : int
        The candidate with the most epochs; it is the one trained.
    epochs : dict of int -> int
        Every member candidate's epochs (the leader's included).
    """

    leader: int
    epochs: dict

    @property
    def members(self) -> list[int]:
        """Candidates of the family, leader first."""
        return [self.leader, *(c for c in self.epochs if c != self.leader)]


def _freeze(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value


def _epoch_keys(estimator) -> tuple[str | None, str | None]:
    """The names of the estimator's ``epochs`` and ``early_stopping`` parameters."""
    names = estimator.get_params(deep=True)
    found = [n for n in names if n == "epochs" or (n.endswith("__epochs") and n.count("__") == 1)]
    if not found:
        return None, None
    prefix = found[0][: -len("epochs")]
    stop = prefix + "early_stopping"
    return found[0], stop if stop in names else None


def epoch_families(estimator, candidates, owners=None) -> list[Family]:
    """Group candidates that differ only in ``epochs`` (and stop on no validation loss).

    Without early stopping, ``epochs=10`` is the first ten epochs of an
    ``epochs=40`` run on the same seed and batch order, so only the largest
    count is trained and the smaller ones are read along the way. A candidate
    with early stopping, or with a non-integer ``epochs``, is a family of its
    own: it keeps its own stopping rule. ``owners`` (one hashable per
    candidate) keeps candidates of different owners in different families.
    """
    epochs_key, stop_key = _epoch_keys(estimator)
    if epochs_key is None:
        return [Family(c, {c: None}) for c in range(len(candidates))]
    defaults = estimator.get_params(deep=True)
    groups: dict = {}
    singles = []
    for c, cand in enumerate(candidates):
        epochs = cand.get(epochs_key, defaults[epochs_key])
        stops = stop_key is not None and cand.get(stop_key, defaults[stop_key]) is not None
        if stops or isinstance(epochs, bool) or not isinstance(epochs, int | np.integer):
            singles.append(Family(c, {c: epochs}))
            continue
        try:
            key = _freeze({k: v for k, v in cand.items() if k != epochs_key})
            key = key if owners is None else (owners[c], key)
            hash(key)
        except TypeError:
            singles.append(Family(c, {c: int(epochs)}))
            continue
        groups.setdefault(key, {})[c] = int(epochs)
    families = []
    for members in groups.values():
        leader = max(members, key=lambda c: (members[c], -c))
        families.append(Family(leader, members))
    return sorted(families + singles, key=lambda f: min(f.epochs))

"""What a search returns: :class:`SearchResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunekit.record import BASELINES_ATTR
from tunekit.report import leaderboard, result_html, result_text

__all__ = ["BASELINES_ATTR", "SearchData", "SearchResult"]


@dataclass
class SearchData:
    """What a search was given, kept for what comes after it (:func:`tunekit.ensemble`).

    References to the arrays the search used, not copies.
    """

    X_search: Any
    y_search: Any
    X_test: Any
    y_test: Any
    folds: list
    estimator: Any
    scoring: Any
    baselines: Any


@dataclass
class SearchResult:
    """What :func:`search` returns.

    Attributes
    ----------
    cv_results_ : dict
        scikit-learn's schema for every strategy (``params``, ``param_*``,
        ``split{i}_test_score``, ``mean/std/rank_test_score``, train scores,
        fit and score times) plus ``state``, ``failure_reason``,
        ``heldout_test_score`` and per-fold ``split{i}_best_epoch`` /
        ``split{i}_n_epochs``.
    best_params_ : dict
        Parameters of the candidate with the best mean CV score.
    best_estimator_ : estimator
        That candidate refit on the whole search part of the data.
    best_index_ : int
        Its row in ``cv_results_``.
    best_score_ : float
        Its mean CV score.
    heldout_score_ : float or None
        Its score on the held-out test set (``None`` with ``test_size=None``):
        the honest estimate of how the chosen model does on new data.
    search_ : object
        The underlying search object (a ``*SearchCV`` or ``OptunaSearchCV``).
    study_ : optuna.study.Study or None
        The study, for ``strategy="optuna"``.
    strategy, scoring : str
        The strategy used and the scorer's name.
    n_splits_ : int
        Cross-validation folds.
    test_train_ratio_ : float
        Mean ``n_test / n_train`` over the folds (for corrected t-tests).
    histories_ : dict
        Keras training histories of the candidates refit for the held-out
        test, keyed by their row in ``cv_results_``.
    outer_scores_ : list of float or None
        Held-out scores of nested cross-validation (``outer_cv=``), NaN for an
        outer fold whose search failed.
    nested_ : pandas.DataFrame or None
        Nested cross-validation, one row per outer fold (index ``outer_fold``):
        ``n_train``, ``n_test``, the inner search's chosen ``params`` and its
        ``inner_best_score``, the ``outer_score`` of that choice refit on the
        outer training part, their difference ``optimism`` (what choosing by CV
        added), and the ``failure_reason`` of a fold whose search failed. The
        rest of the result is the last outer fold's search.
    wall_time_ : float
        Seconds the whole call took.
    n_fits_ : int
        Models trained: the cross-validation's (engine members count one
        each; a run read at several epoch counts counts once), the refit of
        the chosen candidate and the held-out refits.
    n_epochs_ : int or None
        Epochs trained in cross-validation, when known.
    interrupted_ : bool
        The search was stopped with Ctrl-C; the result holds what finished.
    engine_ : {"stacked", "sklearn", "mixed"}
        What trained the candidates: the stacked engine, the standard
        (scikit-learn) path, or both.
    epoch_curves_ : pandas.DataFrame or None
        One row per (candidate, fold, epoch): ``train_loss``, ``test_score``
        (the search's scorer on the fold's test part, the number it ranks by)
        and ``val_loss`` (the early-stopping split's loss, NaN without early
        stopping). ``None`` for Optuna studies, whose trials keep only their
        per-fold scores.
    baselines_ : dict or None
        Baselines (a dummy predictor and a scaled linear model by default)
        cross-validated on the same folds and scored on the same held-out set,
        in ``cv_results_``'s per-fold schema plus ``baseline`` (their names)
        and ``seconds`` (what they cost); ``None`` when skipped. They are never
        ranked among the candidates.
    oof_predictions_ : list of ndarray or None
        Per ``cv_results_`` row, its out-of-fold predictions over the rows of
        the search set (not the held-out set), in their original order:
        class probabilities ``(n_rows, n_classes)`` for classifiers, values
        ``(n_rows,)`` (or ``(n_rows, n_targets)``) for regressors, float32,
        NaN where a fold failed or the trial was pruned. ``None`` with
        ``oof_predictions=False``.
    oof_target_ : ndarray or None
        The search set's targets, in the same row order.
    ensemble_ : EnsembleClassifier, EnsembleRegressor or None
        The ensemble selected over the out-of-fold predictions
        (``ensemble=True`` or :func:`tunekit.ensemble`), members refit on the
        whole search set.
    ensemble_weights_, ensemble_scores_ : pandas.DataFrame or None
        Its members' weights, and its scores beside the best candidate's and
        the best baseline's (see :func:`tunekit.ensembles.ensemble`).
    data_ : SearchData or None
        References to the data the search used (for :func:`tunekit.ensemble`).
    """

    cv_results_: dict
    best_params_: dict
    best_estimator_: Any
    best_index_: int
    best_score_: float
    heldout_score_: float | None
    search_: Any
    study_: Any
    strategy: str
    scoring: str
    n_splits_: int
    test_train_ratio_: float
    histories_: dict = field(default_factory=dict)
    outer_scores_: list | None = None
    nested_: Any = None
    wall_time_: float = 0.0
    n_fits_: int = 0
    n_epochs_: int | None = None
    interrupted_: bool = False
    baselines_: dict | None = None
    engine_: str = "sklearn"
    epoch_curves_: Any = None
    greater_is_better: bool = True
    oof_predictions_: list | None = None
    oof_target_: Any = None
    ensemble_: Any = None
    ensemble_weights_: Any = None
    ensemble_scores_: Any = None
    data_: SearchData | None = None

    @property
    def leaderboard(self):
        """Every candidate ranked best first (see :func:`tunekit.report.leaderboard`)."""
        return leaderboard(self)

    def __str__(self) -> str:
        """The summary, the comparison with the baselines and the top of the leaderboard.

        At most 100 columns wide: what ``print(result)`` shows in a terminal.
        """
        return result_text(self)

    def _repr_html_(self) -> str:
        """The summary, the top of the leaderboard with the baselines and the per-epoch curves."""
        return result_html(self)

    def __repr__(self) -> str:
        held = "n/a" if self.heldout_score_ is None else f"{self.heldout_score_:.4f}"
        return (
            f"SearchResult(strategy={self.strategy!r}, "
            f"candidates={len(self.cv_results_['params'])}, "
            f"best_score_={self.best_score_:.4f}, heldout_score_={held}, "
            f"best_params_={self.best_params_!r})"
        )

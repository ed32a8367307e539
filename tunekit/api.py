"""``tunekit.search()``: one entry point for grid, random, successive halving and Optuna."""

from __future__ import annotations

import logging
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.model_selection import check_cv, train_test_split
from sklearn.utils import indexable

from tunekit.exceptions import SearchFailedError
from tunekit.space import Space
from tunekit.strategies._common import (
    EpochAwareScorer,
    clean_cv_results,
    final_estimator,
    scorer_name,
)

__all__ = ["STRATEGIES", "SearchResult", "search"]

logger = logging.getLogger("tunekit")

STRATEGIES = ("grid", "random", "halving", "optuna")
ENGINES = ("auto", "sklearn", "stacked")


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
        Held-out scores of nested cross-validation (``outer_cv=``).
    wall_time_ : float
        Seconds the whole call took.
    n_fits_ : int
        Model fits done (cross-validation, refits and held-out refits).
    n_epochs_ : int or None
        Epochs trained over all those fits, when known.
    interrupted_ : bool
        The search was stopped with Ctrl-C; the result holds what finished.
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
    wall_time_: float = 0.0
    n_fits_: int = 0
    n_epochs_: int | None = None
    interrupted_: bool = False
    greater_is_better: bool = True

    @property
    def leaderboard(self):
        """Every candidate ranked best first (see :func:`tunekit.report.leaderboard`)."""
        from tunekit.report import leaderboard

        return leaderboard(self)

    def __repr__(self) -> str:
        held = "n/a" if self.heldout_score_ is None else f"{self.heldout_score_:.4f}"
        return (
            f"SearchResult(strategy={self.strategy!r}, "
            f"candidates={len(self.cv_results_['params'])}, "
            f"best_score_={self.best_score_:.4f}, heldout_score_={held}, "
            f"best_params_={self.best_params_!r})"
        )


def _validate(strategy, engine, test_size, n_trials, refit_top):
    if strategy not in STRATEGIES:
        raise ValueError(
            f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {strategy!r}"
        )
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}")
    if test_size is not None and not (
        (isinstance(test_size, float) and 0.0 < test_size < 1.0)
        or (isinstance(test_size, int) and not isinstance(test_size, bool) and test_size >= 1)
    ):
        raise ValueError(
            "test_size must be a fraction in (0, 1), a number of samples >= 1, or None to skip "
            f"the held-out test set; got test_size={test_size!r}"
        )
    if n_trials is not None and (not isinstance(n_trials, int) or n_trials < 1):
        raise ValueError(f"n_trials must be a positive integer or None, got {n_trials!r}")
    if not isinstance(refit_top, int) or refit_top < 0:
        raise ValueError(f"refit_top must be an integer >= 0, got {refit_top!r}")


@contextmanager
def _capped_threads(n_jobs: int):
    """Cap TensorFlow's and BLAS's thread pools in worker processes started in the block.

    Each of ``n_jobs`` workers gets ``cores // n_jobs`` intra-op threads, so
    that workers do not oversubscribe the cores. Environment variables are
    inherited by processes joblib starts here; the parent's own pools, already
    made, are untouched.
    """
    if n_jobs in (None, 1):
        yield
        return
    from joblib import cpu_count

    workers = cpu_count() if n_jobs < 0 else n_jobs
    per_worker = str(max(1, cpu_count() // max(1, workers)))
    names = {
        "TF_NUM_INTRAOP_THREADS": per_worker,
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": per_worker,
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    }
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _split_off_test(X, y, test_size, classifier, random_state):
    if test_size is None:
        return X, None, y, None
    stratify = y if classifier else None
    try:
        return train_test_split(
            X, y, test_size=test_size, stratify=stratify, random_state=random_state
        )
    except ValueError as err:
        if stratify is None:
            raise
        raise ValueError(
            f"cannot split off a stratified held-out test set (test_size={test_size}): {err} "
            "Give more samples per class, a larger test_size, or test_size=None."
        ) from None


def _stack_plan(estimator, candidates, engine):
    if engine == "sklearn":
        return False
    if engine == "auto" and type(estimator).__module__ != "tunekit.estimators":
        return False  # only tunekit's own estimators can stack; don't load the engine
    try:
        from tunekit.strategies.stacked import can_stack
    except ImportError:  # pragma: no cover - engine package always ships
        return False
    stackable = can_stack(estimator, candidates)
    if engine == "stacked" and not stackable:
        logger.info(
            "engine='stacked': some candidates cannot be stacked; they use the standard path"
        )
    return stackable or engine == "stacked"


def _epochs_trained(cv_results: dict, n_splits: int) -> int | None:
    total, seen = 0.0, False
    for i in range(n_splits):
        values = np.asarray(cv_results.get(f"split{i}_n_epochs", []), dtype=float)
        if values.size and np.isfinite(values).any():
            total += float(np.nansum(values))
            seen = True
    return int(total) if seen else None


def search(
    estimator,
    X,
    y=None,
    *,
    space: Space | dict,
    strategy: str = "grid",
    cv=5,
    scoring=None,
    test_size: float | int | None = 0.2,
    n_trials: int | None = None,
    n_jobs: int = 1,
    storage=None,
    study_name: str | None = None,
    random_state: int | None = 0,
    n_points: int = 3,
    refit_top: int = 3,
    outer_cv=None,
    sampler=None,
    pruner=None,
    timeout: float | None = None,
    resource: str = "n_samples",
    factor: float = 3,
    min_resources=None,
    engine: str = "auto",
    error_score=np.nan,
    return_train_score: bool = True,
    verbose: int = 1,
    fit_params: dict | None = None,
    backend: str | None = None,
    scheduler=None,
) -> SearchResult:
    """Tune ``estimator`` over ``space`` with cross-validation and a held-out test set.

    The data is split once: ``test_size`` of it is held out (stratified for
    classifiers) and never seen by the search. The search cross-validates
    candidates on the rest; then the ``refit_top`` best candidates are refit
    on the whole search part and scored on the held-out part. The best
    candidate by CV score is ``best_estimator_`` and its held-out score,
    ``heldout_score_``, is the honest estimate of its performance.

    Parameters
    ----------
    estimator : estimator
        A tunekit ``KerasClassifier``/``KerasRegressor``, a pipeline ending in
        one, or any scikit-learn estimator.
    X, y : array-like
        The data.
    space : Space or dict
        The search space; a dict is turned into a :class:`~tunekit.space.Space`.
        Names are checked against the estimator before any fit.
    strategy : {"grid", "random", "halving", "optuna"}, default="grid"
        ``"grid"``: ``GridSearchCV`` over ``space.to_grid(n_points)``;
        ``"random"``: ``RandomizedSearchCV`` over ``space.to_distributions()``
        with ``n_trials`` candidates (10 by default); ``"halving"``:
        ``HalvingRandomSearchCV`` whose budget is ``resource`` (samples or
        ``"epochs"``); ``"optuna"``: an Optuna study of ``n_trials`` trials
        (20 by default), TPE-sampled and median-pruned inside the folds.
    cv : int, splitter or iterable, default=5
        Cross-validation of the search part (stratified for classifiers).
    scoring : str, callable or None, default=None
        The score (higher is better); ``None`` is accuracy / R².
    test_size : float, int or None, default=0.2
        Held-out fraction (or count); ``None`` skips the held-out test.
    n_trials : int or None, default=None
        Candidates for random and halving, trials for Optuna (the total the
        study should hold: a resumed study only runs the missing ones).
    n_jobs : int, default=1
        Parallel fits (worker processes for Optuna); TensorFlow's thread pools
        are capped per worker.
    storage : str, optuna storage or None, default=None
        Optuna only. ``None`` with a ``study_name`` keeps the study in
        ``tunekit-results/<study_name>.db`` (SQLite); any Optuna URL works.
    study_name : str or None, default=None
        Optuna only; an existing study of that name is continued.
    random_state : int or None, default=0
        Seeds the held-out split, random/halving sampling and the sampler.
    n_points : int, default=3
        Grid points per numeric dimension for ``strategy="grid"``.
    refit_top : int, default=3
        How many of the best candidates are refit and scored on the held-out
        test set.
    outer_cv : int, splitter or None, default=None
        Nested cross-validation: the whole search is repeated inside each
        outer training fold and scored on the outer test fold, giving
        ``outer_scores_``, an unbiased estimate of the tuning procedure.
    sampler, pruner : optuna objects or None
        Optuna only; default TPE (seeded) and ``MedianPruner(n_startup_trials=5)``.
    timeout : float or None
        Optuna only: stop starting trials after this many seconds.
    resource, factor, min_resources :
        Successive halving's budget (``"n_samples"`` or ``"epochs"``), its
        reduction factor and its smallest budget.
    engine : {"auto", "sklearn", "stacked"}, default="auto"
        ``"stacked"`` trains the grid's or random search's (candidate, fold)
        pairs side by side in one compiled model (:mod:`tunekit.engine`);
        ``"auto"`` does so when every candidate can be stacked.
    error_score : float, default=nan
        Score of a candidate whose fit fails; it ranks last.
    return_train_score : bool, default=True
        Score the training folds too (the overfitting gap).
    verbose : int, default=1
        0 silent, 1 progress, 2 and more: scikit-learn's own messages.
    fit_params : dict or None
        Extra arguments for ``fit`` (e.g. ``sample_weight``).
    backend : {None, "dask"}, default=None
        ``"dask"`` runs the grid, random and halving searches' fits on a
        ``dask.distributed`` cluster (``pip install 'tunekit[dask]'``), all
        its workers at once unless ``n_jobs`` says otherwise; the held-out
        refits run here. Optuna scales out through a shared ``storage``
        instead (see :mod:`tunekit.workers`).
    scheduler : str, distributed.Client or None, default=None
        With ``backend="dask"``: the scheduler's address
        (``"tcp://host:8786"``) or a client; ``None`` uses the client already
        made in this process.

    Returns
    -------
    result : SearchResult

    Raises
    ------
    ValueError
        For an unknown strategy, parameter name ("did you mean ..."), or bad
        option, before any training.
    SearchFailedError
        When every candidate failed; it shows the first traceback.
    """
    start = time.perf_counter()
    _validate(strategy, engine, test_size, n_trials, refit_top)
    if backend is not None:
        from tunekit.workers import check_backend

        check_backend(backend, strategy, engine)
    space = space if isinstance(space, Space) else Space(space)
    space.check_params(estimator)
    X, y = indexable(X, y)
    fit_params = dict(fit_params or {})
    if engine == "stacked" and fit_params:
        raise ValueError(
            f"engine='stacked' cannot pass fit_params ({', '.join(fit_params)}) to its members; "
            "use engine='auto' or 'sklearn'"
        )
    if hasattr(estimator, "_check_input"):
        # a tunekit estimator: reject bad data once, before any candidate trains on it
        estimator._check_input(X, y, fitting=True)
    classifier = is_classifier(estimator)

    if outer_cv is not None:
        return _nested(
            estimator,
            X,
            y,
            space=space,
            strategy=strategy,
            cv=cv,
            scoring=scoring,
            outer_cv=outer_cv,
            n_trials=n_trials,
            n_jobs=n_jobs,
            storage=storage,
            study_name=study_name,
            random_state=random_state,
            n_points=n_points,
            sampler=sampler,
            pruner=pruner,
            timeout=timeout,
            resource=resource,
            factor=factor,
            min_resources=min_resources,
            engine=engine,
            error_score=error_score,
            return_train_score=return_train_score,
            verbose=verbose,
            fit_params=fit_params,
            backend=backend,
            scheduler=scheduler,
            start=start,
        )

    if strategy == "optuna" and storage is None and study_name is not None:
        from tunekit.storage import default_storage_url

        storage = default_storage_url(study_name)
    if test_size is not None and "sample_weight" in fit_params:
        raise ValueError(
            "fit_params['sample_weight'] with a held-out test set is not supported yet: "
            "pass test_size=None and hold out data yourself"
        )
    X_search, X_test, y_search, y_test = _split_off_test(X, y, test_size, classifier, random_state)
    name = scorer_name(estimator, scoring)
    if verbose:
        logger.info(
            "search: strategy=%s, %d samples for the search, %s held out",
            strategy,
            len(y_search) if y_search is not None else len(X_search),
            "none" if X_test is None else len(X_test),
        )

    with _capped_threads(n_jobs):
        if strategy == "optuna":
            from tunekit.strategies.optuna_search import OptunaSearchCV

            searcher = OptunaSearchCV(
                estimator,
                space,
                scoring=scoring,
                cv=cv,
                n_trials=n_trials or 20,
                timeout=timeout,
                storage=storage,
                study_name=study_name,
                sampler=sampler,
                pruner=pruner,
                random_state=random_state,
                verbose=verbose,
                n_jobs=n_jobs,
                return_train_score=return_train_score,
            )
            searcher.fit(X_search, y_search, **fit_params)
            cv_results = searcher.cv_results_
            candidate_params = searcher.candidate_params()
            interrupted = searcher.interrupted_
            study = searcher.study_
        else:
            fit_jobs = -1 if backend == "dask" and n_jobs == 1 else n_jobs  # the whole cluster
            progress = _progress(verbose, fit_jobs)
            searcher = _sklearn_searcher(
                strategy,
                estimator,
                space,
                scoring=scoring,
                cv=cv,
                n_points=n_points,
                n_trials=n_trials,
                n_jobs=fit_jobs,
                random_state=random_state,
                resource=resource,
                factor=factor,
                min_resources=min_resources,
                verbose=verbose,
                error_score=error_score,
                return_train_score=return_train_score,
                engine="sklearn" if backend == "dask" or fit_params else engine,
                progress=progress,
            )
            try:
                with warnings.catch_warnings():
                    # the epoch columns are NaN for non-Keras models: failures are
                    # reported below from the main score alone
                    warnings.filterwarnings("ignore", message="One or more of the .* scores")
                    from tunekit.workers import parallel_backend

                    with parallel_backend(backend, scheduler):
                        searcher.fit(X_search, y_search, **fit_params)
            except ValueError as err:
                if "fits failed" in str(err):
                    raise SearchFailedError(
                        f"every candidate of the {strategy} search failed. {err}"
                    ) from err
                raise
            n_splits = searcher.n_splits_
            cv_results = clean_cv_results(searcher.cv_results_, n_splits)
            candidate_params = list(cv_results["params"])
            if progress is not None:
                progress.close()
            interrupted = False
            study = None

    failed = np.flatnonzero(np.asarray(cv_results["state"]) == "FAIL")
    if failed.size:
        reasons = sorted({r for r in np.asarray(cv_results["failure_reason"])[failed] if r})
        warnings.warn(
            f"{failed.size} of {len(candidate_params)} candidates failed and rank "
            f"last; reasons: {'; '.join(reasons) or 'see cv_results_'}",
            UserWarning,
            stacklevel=2,
        )
    n_splits = searcher.n_splits_
    folds = list(check_cv(cv, y_search, classifier=classifier).split(X_search, y_search))
    ratio = float(np.mean([len(te) / len(tr) for tr, te in folds]))
    means = np.asarray(cv_results["mean_test_score"], dtype=float)
    cv_results["heldout_test_score"] = np.full(len(means), np.nan)
    histories: dict[int, dict] = {}
    heldout = None
    n_fits = 1 + sum(
        int(np.isfinite(np.asarray(cv_results[f"split{i}_test_score"], dtype=float)).sum())
        for i in range(n_splits)
        if f"split{i}_test_score" in cv_results
    )
    best_estimator = getattr(searcher, "best_estimator_", None)
    best_index = int(searcher.best_index_)
    if X_test is not None and interrupted:
        logger.warning("interrupted: the held-out test of the refit candidates is skipped")
    elif X_test is not None:
        scorer = EpochAwareScorer(estimator, scoring)
        for i in _refit_order(means, candidate_params, best_index, refit_top):
            if i == best_index and best_estimator is not None:
                model = best_estimator  # already refit on the search part: not twice
            else:
                model = clone(estimator).set_params(**candidate_params[i])
                try:
                    model.fit(X_search, y_search, **fit_params)
                except Exception as err:  # the refit can fail where CV folds did not
                    logger.warning("held-out refit of candidate %d failed: %s", i, err)
                    continue
                n_fits += 1
            cv_results["heldout_test_score"][i] = float(scorer(model, X_test, y_test)["score"])
            _keep_history(histories, i, model)
        heldout = float(cv_results["heldout_test_score"][best_index])
    elif best_estimator is not None:
        _keep_history(histories, best_index, best_estimator)

    return SearchResult(
        cv_results_=cv_results,
        best_params_=dict(candidate_params[best_index]),
        best_estimator_=best_estimator,
        best_index_=best_index,
        best_score_=float(means[best_index]),
        heldout_score_=heldout,
        search_=searcher,
        study_=study,
        strategy=strategy,
        scoring=name,
        n_splits_=n_splits,
        test_train_ratio_=ratio,
        histories_=histories,
        wall_time_=time.perf_counter() - start,
        n_fits_=n_fits,
        n_epochs_=_epochs_trained(cv_results, n_splits),
        interrupted_=interrupted,
    )


def _refit_order(means, candidate_params, best_index: int, refit_top: int) -> list[int]:
    """The chosen candidate first, then the next best distinct ones, ``refit_top`` in all.

    Halving lists a candidate once per round and picks the best of the last round, which
    need not have the best mean overall: the chosen one is always refit and scored.
    """
    order, seen = [best_index], [candidate_params[best_index]]
    for i in np.argsort(-np.where(np.isnan(means), -np.inf, means), kind="stable"):
        if len(order) >= max(refit_top, 1):
            break
        if np.isfinite(means[i]) and candidate_params[i] not in seen:
            order.append(int(i))
            seen.append(candidate_params[i])
    return order


def _keep_history(histories: dict, index: int, model) -> None:
    """Store a fitted Keras model's per-epoch history (plain floats) under ``index``."""
    history = getattr(final_estimator(model), "history_", None)
    if history:
        histories[int(index)] = {k: [float(v) for v in vals] for k, vals in history.items()}


def _progress(verbose: int, n_jobs: int):
    """A progress bar over fits for in-process searches (workers cannot update it)."""
    if not verbose or n_jobs != 1:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc="fits", unit="fit", leave=False)


def _sklearn_searcher(strategy, estimator, space, *, scoring, engine, progress, **kwargs):
    from tunekit.strategies.sklearn_search import make_search

    if strategy in ("grid", "random") and engine != "sklearn":
        from sklearn.model_selection import ParameterGrid, ParameterSampler

        if strategy == "grid":
            candidates = list(ParameterGrid(space.to_grid(n=kwargs["n_points"])))
        else:
            candidates = list(
                ParameterSampler(
                    space.to_distributions(),
                    n_iter=kwargs["n_trials"] or 10,
                    random_state=kwargs["random_state"],
                )
            )
        if _stack_plan(estimator, candidates, engine):
            from tunekit.strategies.stacked import StackedSearchCV

            return StackedSearchCV(
                estimator,
                candidates,
                scoring=scoring,
                cv=kwargs["cv"],
                return_train_score=kwargs["return_train_score"],
                error_score=kwargs["error_score"],
                verbose=max(0, kwargs["verbose"] - 1),
                random_state=kwargs["random_state"],
            )
    scorer = EpochAwareScorer(
        estimator, scoring, progress=progress, error_score=kwargs["error_score"]
    )
    if kwargs["n_jobs"] != 1 and kwargs["verbose"] == 1:
        kwargs["verbose"] = 2  # scikit-learn's per-fit lines stand in for the progress bar
    return make_search(strategy, estimator, space, scoring=scorer, **kwargs)


def _nested(estimator, X, y, *, outer_cv, start, random_state, verbose, study_name, **kwargs):
    classifier = is_classifier(estimator)
    outer = check_cv(outer_cv, y, classifier=classifier)
    scorer = EpochAwareScorer(estimator, kwargs["scoring"])
    scores, results = [], []
    for k, (train, test) in enumerate(outer.split(X, y)):
        name = None if study_name is None else f"{study_name}-outer{k}"
        inner = search(
            estimator,
            _take(X, train),
            _take(y, train),
            test_size=None,
            random_state=random_state,
            verbose=max(0, verbose - 1),
            study_name=name,
            **kwargs,
        )
        scores.append(float(scorer(inner.best_estimator_, _take(X, test), _take(y, test))["score"]))
        results.append(inner)
        if verbose:
            logger.info(
                "outer fold %d: held-out score %.4f with %s", k, scores[-1], inner.best_params_
            )
    last = results[-1]
    last.outer_scores_ = scores
    last.wall_time_ = time.perf_counter() - start
    last.n_fits_ = sum(r.n_fits_ for r in results) + len(results)
    if verbose:
        logger.info(
            "nested CV: %.4f +/- %.4f over %d outer folds",
            float(np.mean(scores)),
            float(np.std(scores)),
            len(scores),
        )
    return last


def _take(data, idx):
    if data is None:
        return None
    return data.iloc[idx] if hasattr(data, "iloc") else data[idx]

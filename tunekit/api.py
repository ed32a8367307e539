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

from tunekit._quiet import FitProgress, restoring_global_state
from tunekit.backends import check_backend, parallel_backend
from tunekit.baselines import check_baselines, evaluate_baselines, to_jsonable
from tunekit.engine.memory import check_memory_budget
from tunekit.ensembles import ensemble as make_ensemble
from tunekit.evaluators import StackedEvaluator, StandardEvaluator, is_keras_estimator
from tunekit.evaluators.outer_folds import sharing_for
from tunekit.evaluators.refits import refit_together
from tunekit.exceptions import SearchFailedError
from tunekit.nested import nested_search
from tunekit.record import BASELINES_ATTR, FAIL
from tunekit.results import SearchData, SearchResult
from tunekit.search_options import STRATEGIES, validate
from tunekit.space import Space
from tunekit.storage import default_storage_url
from tunekit.strategies.optuna_batch import check_trial_batch
from tunekit.strategies.optuna_search import OptunaSearchCV
from tunekit.strategies.refit import refit_order
from tunekit.strategies.scoring import (
    EpochAwareScorer,
    final_estimator,
    scorer_name,
)
from tunekit.strategies.sklearn_search import SearchSettings, make_search
from tunekit.tracking import log_search, resolve_tracking_uri

__all__ = ["STRATEGIES", "SearchResult", "search"]

logger = logging.getLogger("tunekit")


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


def _epochs_trained(cv_results: dict, n_splits: int) -> int | None:
    total, seen = 0.0, False
    for i in range(n_splits):
        values = np.asarray(cv_results.get(f"split{i}_n_epochs", []), dtype=float)
        if values.size and np.isfinite(values).any():
            total += float(np.nansum(values))
            seen = True
    return int(total) if seen else None


@restoring_global_state
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
    trial_batch: int | None = None,
    memory_budget: float | int | str | None = None,
    error_score=np.nan,
    return_train_score: bool = True,
    verbose: int = 1,
    fit_params: dict | None = None,
    backend: str | None = None,
    scheduler=None,
    baselines: bool | list = True,
    mlflow: bool | str = False,
    tracking_uri: str | None = None,
    oof_predictions: bool = True,
    ensemble: bool | int = False,
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
        test set. The chosen one is ``best_estimator_`` (a Keras fit); after
        a search on the engine the others train together as one stack.
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
        What trains the (candidate, fold) pairs. ``"auto"`` trains the
        candidates the stacked engine can reproduce side by side in one
        compiled model (:mod:`tunekit.engine`), pipelines included, and the
        others the standard way (``SearchResult.engine_`` says which);
        ``"stacked"`` refuses, before any training, a candidate it cannot
        stack; ``"sklearn"`` fits every pair on its own. Grid, random and
        halving (each rung one batch) use it; Optuna runs its trials in
        batches on it (``trial_batch``) when ``n_jobs=1``.
    trial_batch : int or None, default=None
        Optuna on the engine: trials trained side by side, all folds in
        lockstep and pruned per epoch on their mean over the folds. ``None``
        starts with 4 trials and goes on with 8; a batch larger than
        ``memory_budget`` allows is reduced (logged).
    memory_budget : float, int, str or None, default=None
        The stacked engine's memory per stack: bigger groups of candidates
        train as several stacks, and a budget that not one member fits is a
        ``MemoryBudgetError`` before any training. ``None`` is half of the
        available RAM (on a GPU, of the smaller of that and the GPU's memory);
        a float in (0, 1] that fraction of it; an int, bytes; a string, a size
        (``"8GB"``, ``"512MiB"``). See ``docs/performance.md``, "Memory budget".
    error_score : float, default=nan
        Score of a candidate whose fit fails; it ranks last.
    return_train_score : bool, default=True
        Score the training folds too (the overfitting gap).
    verbose : int, default=1
        0 silent, 1 progress, 2 and more: scikit-learn's own messages.
    mlflow : bool or str, default=False
        Log the search to MLflow (``pip install 'tunekit[mlflow]'``): one run,
        a nested run per candidate, the report as artifacts (see
        :mod:`tunekit.tracking`). ``True`` uses ``tracking_uri``, by default the
        local folder ``mlruns/``; a string is the tracking URI. The environment
        variable ``TUNEKIT_MLFLOW_URI`` (set by ``tunekit run --mlflow URI``)
        turns it on too.
    tracking_uri : str or None, default=None
        The MLflow tracking URI; giving one turns ``mlflow`` on.
    fit_params : dict or None
        Extra arguments for ``fit`` (e.g. ``sample_weight``).
    backend : {None, "dask", "ray"}, default=None
        ``"dask"`` runs the grid, random and halving searches' fits on a
        ``dask.distributed`` cluster (``pip install 'tunekit[dask]'``),
        ``"ray"`` on a Ray cluster through Ray's joblib backend (``pip install
        'tunekit[ray]'``), all its workers at once unless ``n_jobs`` says
        otherwise; the held-out refits run here. Optuna scales out through a
        shared ``storage`` instead (see :mod:`tunekit.workers`).
    scheduler : str, distributed.Client or None, default=None
        With ``backend="dask"``: the scheduler's address
        (``"tcp://host:8786"``) or a client; ``None`` uses the client already
        made in this process. With ``backend="ray"``: the cluster's address
        (``"HOST:6379"``, ``"ray://HOST:10001"`` or ``"auto"``); ``None`` uses
        the cluster this process is connected to (``ray.init()``).
    baselines : bool or list, default=True
        Cross-validate baselines on the same folds and score them on the same
        held-out set, beside the candidates (``baselines_``; never ranked among
        them): ``True`` a dummy predictor and a linear model behind a
        ``StandardScaler`` (``LogisticRegression`` / ``RidgeCV``); a list of
        scikit-learn estimators (or ``(name, estimator)`` pairs) those;
        ``False`` none. Inputs that are not 2-D are flattened; non-numeric
        inputs skip them with a log line.
    oof_predictions : bool, default=True
        Keep every (candidate, fold)'s predictions on the fold's test rows
        (``oof_predictions_``, one float32 array of ``n_rows x n_outputs`` per
        candidate; an Optuna study stores them with its trials).
    ensemble : bool or int, default=False
        Select an ensemble over the out-of-fold predictions (``ensemble_``,
        Caruana et al.'s greedy selection; an int is its size, ``True`` 20),
        compared with the best candidate and baseline on the held-out set
        (see :func:`tunekit.ensembles.ensemble`). Needs ``oof_predictions``.

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
    options = dict(locals())
    space, X, y, fit_params = _check_call(options)
    tracked = resolve_tracking_uri(mlflow, tracking_uri)  # checked before any training
    if outer_cv is not None:
        options = _nested_options(options, space, fit_params)
        result = nested_search(search, estimator, X, y, options, start)
        return _tracked(result, tracked)
    if strategy == "optuna" and storage is None and study_name is not None:
        options["storage"] = default_storage_url(study_name)
    classifier = is_classifier(estimator)
    X_search, X_test, y_search, y_test = _split_off_test(X, y, test_size, classifier, random_state)
    if verbose:
        logger.info(
            "search: strategy=%s, %d samples for the search, %s held out",
            strategy,
            len(y_search) if y_search is not None else len(X_search),
            "none" if X_test is None else len(X_test),
        )
    with _capped_threads(n_jobs):
        run = _run_strategy(options, space, X_search, y_search, fit_params)
    _warn_failures(run)
    folds = list(check_cv(cv, y_search, classifier=classifier).split(X_search, y_search))
    refits = _heldout_refits(run, options, X_search, y_search, X_test, y_test, fit_params)
    baseline_scores = _baselines(run, options, X_search, y_search, folds, X_test, y_test)
    result = _result(run, options, folds, refits, baseline_scores, start)
    result.oof_target_ = None if y_search is None else np.asarray(y_search)
    result.data_ = SearchData(X_search, y_search, X_test, y_test, folds, estimator, scoring,
                              baselines)  # fmt: skip
    if ensemble is not False and not run.interrupted:
        make_ensemble(result, 20 if ensemble is True else ensemble, random_state=random_state)
        result.wall_time_ = time.perf_counter() - start
    return _tracked(result, tracked)


def _tracked(result: SearchResult, tracking_uri: str | None) -> SearchResult:
    """Log ``result`` to MLflow when the search asked for it."""
    if tracking_uri is not None:
        log_search(result, tracking_uri=tracking_uri)
    return result


@dataclass
class _Run:
    """What a strategy and its evaluator produced."""

    searcher: Any
    cv_results: dict
    candidate_params: list
    interrupted: bool = False
    study: Any = None


@dataclass
class _Refits:
    """The held-out refits: scores written into ``cv_results``, histories, fits made."""

    heldout: float | None = None
    histories: dict = field(default_factory=dict)
    n_fits: int = 0


def _check_call(options: dict):
    """Every argument checked before any training; the space, data and fit_params to use."""
    estimator, engine, strategy = options["estimator"], options["engine"], options["strategy"]
    validate(options)
    if options["backend"] is not None:
        check_backend(options["backend"], strategy, engine)
    space = options["space"]
    space = space if isinstance(space, Space) else Space(space)
    space.check_params(estimator)
    check_baselines(options["baselines"])
    check_trial_batch(options["trial_batch"])
    check_memory_budget(options["memory_budget"])
    X, y = indexable(options["X"], options["y"])
    fit_params = dict(options["fit_params"] or {})
    if engine == "stacked" and fit_params:
        raise ValueError(
            f"engine='stacked' cannot pass fit_params ({', '.join(fit_params)}) to its members; "
            "use engine='auto' or 'sklearn'"
        )
    if hasattr(estimator, "_check_input"):
        # a tunekit estimator: reject bad data once, before any candidate trains on it
        estimator._check_input(X, y, fitting=True)
    if options["test_size"] is not None and "sample_weight" in fit_params:
        raise ValueError(
            "fit_params['sample_weight'] with a held-out test set is not supported yet: "
            "pass test_size=None and hold out data yourself"
        )
    return space, X, y, fit_params


_NOT_NESTED = ("estimator", "X", "y", "space", "test_size", "refit_top", "outer_cv", "fit_params",
               "baselines", "start", "options", "mlflow", "tracking_uri")  # fmt: skip


def _nested_options(options: dict, space, fit_params) -> dict:
    kept = {k: v for k, v in options.items() if k not in _NOT_NESTED}
    return {**kept, "space": space, "fit_params": fit_params, "outer_cv": options["outer_cv"]}


def _run_strategy(options: dict, space, X, y, fit_params) -> _Run:
    """Run the strategy over ``space`` with its evaluator; the raw results."""
    strategy, estimator = options["strategy"], options["estimator"]
    if strategy == "optuna":
        searcher = OptunaSearchCV(
            estimator, space, scoring=options["scoring"], cv=options["cv"],
            n_trials=options["n_trials"] or 20, timeout=options["timeout"],
            storage=options["storage"], study_name=options["study_name"],
            sampler=options["sampler"], pruner=options["pruner"],
            random_state=options["random_state"], verbose=options["verbose"],
            n_jobs=options["n_jobs"], return_train_score=options["return_train_score"],
            engine=options["engine"], trial_batch=options["trial_batch"],
            memory_budget=options["memory_budget"],
            oof_predictions=options["oof_predictions"],
        )  # fmt: skip
        searcher.fit(X, y, **fit_params)
        return _Run(
            searcher, searcher.cv_results_, list(searcher.candidate_params()),
            searcher.interrupted_, searcher.study_,
        )  # fmt: skip
    backend = options["backend"]
    n_jobs = options["n_jobs"]
    fit_jobs = -1 if backend is not None and n_jobs == 1 else n_jobs  # the whole cluster
    progress = _progress(options["verbose"], fit_jobs)
    forced = backend is not None or fit_params
    searcher = _sklearn_searcher(
        strategy, estimator, space, scoring=options["scoring"], cv=options["cv"],
        n_points=options["n_points"], n_trials=options["n_trials"], n_jobs=fit_jobs,
        random_state=options["random_state"], resource=options["resource"],
        factor=options["factor"], min_resources=options["min_resources"],
        verbose=options["verbose"], error_score=options["error_score"],
        return_train_score=options["return_train_score"],
        engine="sklearn" if forced else options["engine"], progress=progress,
        memory_budget=options["memory_budget"],
        oof_predictions=options["oof_predictions"],
    )  # fmt: skip
    try:
        with parallel_backend(backend, options["scheduler"]):
            searcher.fit(X, y, **fit_params)
    except ValueError as err:
        if "fits failed" in str(err):
            raise SearchFailedError(
                f"every candidate of the {strategy} search failed. {err}"
            ) from err
        raise
    finally:
        if progress is not None:
            progress.close()
    cv_results = dict(searcher.cv_results_)
    return _Run(searcher, cv_results, list(cv_results["params"]))


def _warn_failures(run: _Run) -> None:
    failed = np.flatnonzero(np.asarray(run.cv_results["state"]) == FAIL)
    if failed.size:
        reasons = sorted({r for r in np.asarray(run.cv_results["failure_reason"])[failed] if r})
        warnings.warn(
            f"{failed.size} of {len(run.candidate_params)} candidates failed and rank "
            f"last; reasons: {'; '.join(reasons) or 'see cv_results_'}",
            UserWarning,
            stacklevel=4,  # the caller of search(), through its restoring_global_state wrapper
        )


def _heldout_refits(run: _Run, options: dict, X_search, y_search, X_test, y_test, fit_params):
    """Refit the best candidates on the search part and score them on the held-out part."""
    cv_results, params = run.cv_results, run.candidate_params
    means = np.asarray(cv_results["mean_test_score"], dtype=float)
    cv_results["heldout_test_score"] = np.full(len(means), np.nan)
    best_estimator = getattr(run.searcher, "best_estimator_", None)
    best_index = int(run.searcher.best_index_)
    refits = _Refits()
    if X_test is not None and run.interrupted:
        logger.warning("interrupted: the held-out test of the refit candidates is skipped")
        return refits
    if X_test is None:
        if best_estimator is not None:
            _keep_history(refits.histories, best_index, best_estimator)
        return refits
    estimator = options["estimator"]
    scorer = EpochAwareScorer(estimator, options["scoring"])
    failed = cv_results.get("refit_failure")  # the refit of these diverged already
    order = refit_order(means, params, best_index)[: max(options["refit_top"], 1)]
    order = [i for i in order if failed is None or not failed[i]]
    if best_estimator is not None and best_index in order:  # already refit: not twice
        order.remove(best_index)
        cv_results["heldout_test_score"][best_index] = float(
            scorer(best_estimator, X_test, y_test)["score"]
        )
        _keep_history(refits.histories, best_index, best_estimator)
    data = (X_search, y_search, X_test, y_test, fit_params)
    if getattr(run.searcher, "engine_", "sklearn") != "sklearn":
        _refit_on_engine(order, params, options, refits, cv_results, data)
    else:
        _refit_with_keras(order, params, options, refits, cv_results, data)
    refits.heldout = float(cv_results["heldout_test_score"][best_index])
    return refits


def _refit_with_keras(order, params, options, refits: _Refits, cv_results, data) -> None:
    """The held-out refits of a search on the standard path: one ``fit`` each."""
    X_search, y_search, X_test, y_test, fit_params = data
    scorer = EpochAwareScorer(options["estimator"], options["scoring"])
    for i in order:
        model = clone(options["estimator"]).set_params(**params[i])
        try:
            model.fit(X_search, y_search, **fit_params)
        except Exception as err:  # the refit can fail where CV folds did not
            logger.warning("held-out refit of candidate %d failed: %s", i, err)
            continue
        refits.n_fits += 1
        cv_results["heldout_test_score"][i] = float(scorer(model, X_test, y_test)["score"])
        _keep_history(refits.histories, i, model)


def _refit_on_engine(order, params, options, refits: _Refits, cv_results, data) -> None:
    """The held-out refits of a search that trained on the engine: members of one stack."""
    if not order:
        return
    X_search, y_search, X_test, y_test, fit_params = data
    done = refit_together(
        options["estimator"], [params[i] for i in order], X_search, y_search, X_test, y_test,
        scoring=options["scoring"], memory_budget=options["memory_budget"],
        fit_params=fit_params,
    )  # fmt: skip
    for i, refit in zip(order, done, strict=True):
        refits.n_fits += 1
        if refit.error is not None:
            logger.warning("held-out refit of candidate %d failed: %s", i,
                           refit.error.strip().splitlines()[-1])  # fmt: skip
            continue
        cv_results["heldout_test_score"][i] = refit.score
        if refit.history:
            refits.histories[int(i)] = refit.history


def _result(run: _Run, options: dict, folds, refits: _Refits, baselines, start) -> SearchResult:
    searcher, cv_results = run.searcher, run.cv_results
    n_splits = searcher.n_splits_
    trained = getattr(searcher, "n_trained_", None)  # shared epoch runs count once
    if trained is None:
        trained = sum(
            int(np.isfinite(np.asarray(cv_results[f"split{i}_test_score"], dtype=float)).sum())
            for i in range(n_splits)
            if f"split{i}_test_score" in cv_results
        )
    best_index = int(searcher.best_index_)
    means = np.asarray(cv_results["mean_test_score"], dtype=float)
    return SearchResult(
        cv_results_=cv_results,
        best_params_=dict(run.candidate_params[best_index]),
        best_estimator_=getattr(searcher, "best_estimator_", None),
        best_index_=best_index,
        best_score_=float(means[best_index]),
        heldout_score_=refits.heldout,
        search_=searcher,
        study_=run.study,
        strategy=options["strategy"],
        scoring=scorer_name(options["estimator"], options["scoring"]),
        n_splits_=n_splits,
        test_train_ratio_=float(np.mean([len(te) / len(tr) for tr, te in folds])),
        histories_=refits.histories,
        wall_time_=time.perf_counter() - start,
        n_fits_=1 + trained + refits.n_fits,
        n_epochs_=getattr(searcher, "n_epochs_trained_", None)
        or _epochs_trained(cv_results, n_splits),
        interrupted_=run.interrupted,
        engine_=getattr(searcher, "engine_", "sklearn"),
        epoch_curves_=getattr(searcher, "epoch_curves_", None),
        baselines_=baselines,
        oof_predictions_=getattr(searcher, "oof_predictions_", None),
    )


def _keep_history(histories: dict, index: int, model) -> None:
    """Store a fitted Keras model's per-epoch history (plain floats) under ``index``."""
    history = getattr(final_estimator(model), "history_", None)
    if history:
        histories[int(index)] = {k: [float(v) for v in vals] for k, vals in history.items()}


def _baselines(run: _Run, options: dict, X_search, y_search, folds, X_test, y_test):
    """Score the baselines beside the candidates; an Optuna study keeps them too."""
    fitted = getattr(run.searcher, "best_estimator_", None)
    scores = evaluate_baselines(
        options["estimator"] if fitted is None else fitted, X_search, y_search, folds, X_test,
        y_test, scoring=options["scoring"], baselines=options["baselines"],
    )  # fmt: skip
    if scores is None:
        return None
    study = run.study
    if options["verbose"]:
        logger.info("baselines: %s in %.1f s", ", ".join(scores["baseline"]), scores["seconds"])
    if study is not None:
        study.set_user_attr(BASELINES_ATTR, to_jsonable(scores))
    return scores


def _progress(verbose: int, n_jobs: int, total: int | None = None):
    """A progress bar over whole fits for in-process searches (workers cannot update it)."""
    if not verbose or n_jobs != 1:
        return None
    return FitProgress(total)


def _sklearn_searcher(strategy, estimator, space, *, scoring, engine, progress, oof_predictions,
                      memory_budget=None, **kwargs):  # fmt: skip
    """A grid, random or halving search whose batches the chosen evaluator trains."""
    evaluator = make_evaluator(
        engine,
        estimator,
        memory_budget=memory_budget,
        oof_predictions=oof_predictions,
        n_jobs=kwargs["n_jobs"],
        progress=progress,
        verbose=kwargs["verbose"],
        error_score=kwargs["error_score"],
        return_train_score=kwargs["return_train_score"],
    )
    evaluator = sharing_for(evaluator)  # an inner search of nested CV: outer folds together
    return make_search(
        strategy, estimator, space, SearchSettings(scoring=scoring, **kwargs), evaluator
    )


def make_evaluator(
    engine: str, estimator, *, n_jobs=1, progress=None, verbose=0, error_score=np.nan,
    return_train_score=True, memory_budget=None, oof_predictions=False,
):
    """The evaluator for ``engine``: the stacked one (with the standard path behind it),
    or the standard one for ``engine="sklearn"`` and for estimators that are not
    tunekit's Keras estimators."""
    settings = dict(
        error_score=error_score,
        return_train_score=return_train_score,
        progress=progress,
        verbose=max(0, verbose - 1),
        oof_predictions=oof_predictions,
    )
    standard = StandardEvaluator(n_jobs=n_jobs, **settings)
    if engine == "sklearn" or (engine == "auto" and not is_keras_estimator(estimator)):
        return standard
    return StackedEvaluator(
        strict=engine == "stacked", fallback=standard, memory_budget=memory_budget, **settings
    )

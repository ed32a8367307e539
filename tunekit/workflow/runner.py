"""The study runner: validate -> prepare -> open -> one small runner per kind -> finish."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tunekit._signals import WorkerTerminated, stop_requested
from tunekit.api import search
from tunekit.exceptions import SearchFailedError
from tunekit.record import check_resumable, stamp_layout
from tunekit.space import Space
from tunekit.storage import claim_queued_trials, make_storage, study_lock
from tunekit.storage.urls import redact_url, sqlite_file
from tunekit.workflow.fingerprint import check_config, study_config
from tunekit.workflow.learning_curve import curve_objective, curve_plan, prepare_curve_study
from tunekit.workflow.plan_queue import n_finished, plan_labels, run_plan
from tunekit.workflow.plans import Config, encode_params, plan_space
from tunekit.workflow.summary import StudyOutcome, check_writable, summarize, write_study_report

__all__ = ["StudyRun", "run_study"]

logger = logging.getLogger("tunekit")


def run_study(
    estimator,
    X,
    y=None,
    *,
    storage: str,
    study_name: str,
    space: Space | Mapping | None = None,
    plan: Sequence[Config] | None = None,
    train_sizes: Sequence[float] | None = None,
    out: str | Path | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    random_state: int | None = 0,
    cv=5,
    scoring=None,
    test_size: float | None = 0.2,
    refit_top: int | None = None,
    pruner=None,
    scale: bool = False,
    fit_params: dict | None = None,
    until_train_score: float | None = None,
    worker: bool = False,
    rank_by: str | None = None,
    title: str | None = None,
    verbose: int = 1,
) -> StudyOutcome:
    """Run (or continue) one study and write its report.

    Exactly one of ``space``, ``plan`` and ``train_sizes`` says what the
    trials are. The study is kept in ``storage`` under ``study_name``; run
    the same call again and it continues: finished trials are never re-run,
    trials that were interrupted are. A study is refused when it was run
    with other settings (estimator parameters, data, plan, cv...), so that
    trials of different experiments are never mixed.

    Parameters
    ----------
    estimator : estimator
        A tunekit Keras estimator (or any scikit-learn estimator).
    X, y : array-like
        The data. For ``space`` and ``plan`` studies ``test_size`` of it is
        held out for the final, honest score (see :func:`tunekit.search`).
    storage : str
        Optuna storage URL, e.g. ``sqlite:///results/tune/study.db`` or
        ``postgresql://user@host/db``.
    study_name : str
        Name of the study in the storage.
    space : Space or dict, optional
        Sampled by Optuna (TPE, median pruning inside the folds by default).
    plan : list of Config, optional
        Configurations run in order, one trial each (no pruning by default):
        see :func:`one_at_a_time` and :func:`capacity_ladder`.
    train_sizes : list of float, optional
        A learning curve: fractions of each training fold to train on. The
        training score is measured on the rows trained on, the validation
        score on the fold's test part.
    out : str or path, optional
        Directory for the report (:func:`tunekit.report.write_report`) and
        ``summary.md``; ``None`` writes nothing.
    n_trials : int or None, default=None
        Trials the study should hold: for a space 20 by default; for a plan
        or a learning curve the first ``n_trials`` configurations (all by
        default).
    timeout : float or None, default=None
        Stop starting trials after this many seconds.
    random_state : int or None, default=0
        Seeds the held-out split, Optuna's sampler and subsets.
    cv : int or splitter, default=5
        Cross-validation of the search part.
    scoring : str, callable or None, default=None
        The score (higher is better); ``None`` is accuracy / R².
    test_size : float or None, default=0.2
        Held-out fraction for ``space`` and ``plan`` studies.
    refit_top : int or None, default=None
        Candidates refit and scored on the held-out set for the report;
        ``None``: every configuration of a plan, the best 3 of a space.
    pruner : optuna pruner or None, default=None
        ``None``: median pruning for a space, no pruning for a plan.
    scale : bool, default=False
        Put a ``StandardScaler`` in front of the estimator (fit inside each
        fold); parameter names are prefixed accordingly.
    fit_params : dict or None, default=None
        Passed to every ``fit``, e.g. ``{"validation_data": (X_val, y_val)}``
        to record validation curves on other data.
    until_train_score : float or None, default=None
        For a plan: run its configurations one by one and stop once a
        candidate's mean training score reaches this (step 1: grow capacity
        until the model overfits).
    worker : bool, default=False
        One of several processes sharing the study: take plan configurations
        one at a time, refit nothing beyond the best and write no report
        (the final report is made by a last, normal run).
    rank_by : {"cv", "heldout", "plan"} or None, default=None
        Order of the summary's rows: by cross-validation score, by held-out
        score, or in the plan's order (``None``: the plan's order for a plan
        or a learning curve, else by cross-validation score). The report
        itself always ranks by cross-validation score.
    title : str or None, default=None
        Heading of ``summary.md``.
    verbose : int, default=1
        0 is quiet; 1 logs progress and shows Optuna's progress bar.

    Returns
    -------
    outcome : StudyOutcome

    Raises
    ------
    ValueError
        For a bad combination of arguments, or a study run with other settings.
    SearchFailedError
        When no trial of the study finished.
    """
    if rank_by is None:
        rank_by = "cv" if space is not None else "plan"
    _check_arguments(space, plan, train_sizes, until_train_score, n_trials, rank_by)
    run = StudyRun(
        estimator=estimator, X=X, y=y, storage=storage, study_name=study_name, space=space,
        plan=plan, train_sizes=train_sizes, out=out, n_trials=n_trials, timeout=timeout,
        random_state=random_state, cv=cv, scoring=scoring, test_size=test_size,
        refit_top=refit_top, pruner=pruner, fit_params=fit_params,
        until_train_score=until_train_score, worker=worker, rank_by=rank_by, title=title,
        verbose=verbose,
    )  # fmt: skip
    run.prepare(scale)
    run.open()
    try:
        run.run()
    except WorkerTerminated:  # SIGTERM: stop now, no report
        raise
    except KeyboardInterrupt:
        run.interrupt()
    return run.finish()


def _check_arguments(space, plan, train_sizes, until_train_score, n_trials, rank_by) -> None:
    given = [
        name
        for name, value in (("space", space), ("plan", plan), ("train_sizes", train_sizes))
        if value is not None
    ]
    if len(given) != 1:
        raise ValueError(
            f"run_study needs exactly one of space=, plan= or train_sizes=, got {given or 'none'}"
        )
    if until_train_score is not None and plan is None:
        raise ValueError("until_train_score needs a plan= (e.g. capacity_ladder([...]))")
    if n_trials is not None and (isinstance(n_trials, bool) or n_trials < 1):
        raise ValueError(f"n_trials must be a positive integer or None, got {n_trials!r}")
    if rank_by not in ("cv", "heldout", "plan"):
        raise ValueError(f"rank_by must be 'cv', 'heldout' or 'plan', got {rank_by!r}")


@dataclass
class StudyRun:
    """One call of :func:`run_study`: its settings, its study, and what it ran.

    ``prepare`` -> ``open`` -> ``run`` (one small runner per kind of study: a
    space, a plan, a learning curve) -> ``finish`` (accounting, summary, report).
    """

    estimator: Any
    X: Any
    y: Any
    storage: str
    study_name: str
    space: Any
    plan: Any
    train_sizes: Any
    out: Any
    n_trials: int | None
    timeout: float | None
    random_state: int | None
    cv: Any
    scoring: Any
    test_size: float | None
    refit_top: int | None
    pruner: Any
    fit_params: dict | None
    until_train_score: float | None
    worker: bool
    rank_by: str
    title: str | None
    verbose: int
    splits: list | None = None
    study: Any = None
    store: Any = None
    result: Any = None
    outcome: StudyOutcome | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def kind(self) -> str:
        if self.train_sizes is not None:
            return "train_sizes"
        return "plan" if self.plan is not None else "space"

    def prepare(self, scale: bool) -> None:
        """The estimator (scaled in a pipeline), its space, and the plan's configurations."""
        prefix = ""
        if scale:
            self.estimator = make_pipeline(StandardScaler(), self.estimator)
            prefix = f"{self.estimator.steps[-1][0]}__"
        if self.space is not None:
            space = self.space if isinstance(self.space, Space) else Space(self.space)
            self.space = space.prefixed(prefix) if prefix else space
        if self.plan is not None:
            self.plan = [
                Config(c.label, {prefix + k: v for k, v in c.params.items()}) for c in self.plan
            ]
            self.space = plan_space(self.plan)
            if self.pruner is None:
                self.pruner = optuna.pruners.NopPruner()
        if self.train_sizes is not None:
            self.plan, self.splits = curve_plan(
                self.estimator, self.X, self.y, self.train_sizes, self.cv
            )
            self.space = plan_space(self.plan)
        if self.refit_top is None:
            self.refit_top = len(self.plan) if self.plan else 3
        self.outcome = StudyOutcome(study_name=self.study_name, storage=redact_url(self.storage))

    def open(self) -> None:
        """Open (or create) the study; refuse one that was run with other settings."""
        if self.out is not None:
            check_writable(self.out)  # before any training: a report that cannot be written
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        database = sqlite_file(self.storage)
        if database is not None:  # a study's own SQLite file: its folder is made for it
            database.parent.mkdir(parents=True, exist_ok=True)
        with study_lock(self.storage):  # workers opening a new SQLite file take turns
            self.store = make_storage(self.storage)
        self.study = optuna.create_study(
            storage=self.store, study_name=self.study_name, direction="maximize",
            load_if_exists=True,
        )  # fmt: skip
        claim_queued_trials(self.study)
        check_resumable(self.study)
        plan, space = self.plan, self.space
        config = study_config(
            self.estimator, self.X, self.y, kind=self.kind,
            plan=[[c.label, encode_params(space, c.params)] for c in plan] if plan else None,
            space=None if plan else sorted(space), cv=repr(self.cv), scoring=repr(self.scoring),
            test_size=self.test_size, random_state=self.random_state,
            fit_params=sorted(self.fit_params or {}), until_train_score=self.until_train_score,
        )  # fmt: skip
        check_config(self.study, config, self.outcome.storage)
        stamp_layout(self.study)
        self.started = time.perf_counter()

    def time_left(self) -> float | None:
        if self.timeout is None:
            return None
        return max(0.0, self.timeout - (time.perf_counter() - self.started))

    def search(self, n: int, refit: int):
        """``tunekit.search`` on the study: ``n`` finished trials in all."""
        return search(
            self.estimator, self.X, self.y, space=self.space, strategy="optuna", cv=self.cv,
            scoring=self.scoring, test_size=self.test_size, n_trials=max(1, n),
            storage=self.storage, study_name=self.study_name, random_state=self.random_state,
            refit_top=refit, pruner=self.pruner, timeout=self.time_left(),
            fit_params=self.fit_params, verbose=0 if self.worker else self.verbose,
        )  # fmt: skip

    def run(self) -> None:
        """The runner of this kind of study."""
        if self.kind == "space":
            self.result = self.search(self.n_trials or 20, 1 if self.worker else self.refit_top)
            self.outcome.interrupted = bool(self.result.interrupted_)
        elif self.kind == "plan":
            self._run_plan(self._search_plan)
        else:
            sizes = [c.params["n_train"] for c in self.plan]
            objective = curve_objective(
                self.estimator, self.X, self.y, self.splits, sizes, self.scoring,
                self.random_state,
            )  # fmt: skip
            prepare_curve_study(self.study, self.estimator, self.scoring, self.splits)

            def run_curve(n_run: int, refit: int) -> None:
                if n_run:
                    self.study.optimize(objective, n_trials=n_run, timeout=self.time_left())

            self._run_plan(run_curve)

    def _search_plan(self, n_run: int, refit: int) -> None:
        finished = n_finished(self.study)
        if finished + n_run == 0:
            return  # nothing finished, nothing to run: reported by finish()
        self.result = self.search(finished + n_run, refit)
        if self.result.interrupted_:
            raise KeyboardInterrupt

    def _run_plan(self, run) -> None:
        run_plan(self, self.plan[: self.n_trials] if self.n_trials else self.plan, run)

    def interrupt(self) -> None:
        """Ctrl-C: what finished is kept, reported, and resumed by the same call."""
        self.outcome.interrupted = True
        logger.warning(
            "interrupted: %d finished trials are kept in study %r (%s); run the same command "
            "again to continue",
            n_finished(self.study),
            self.study_name,
            self.outcome.storage,
        )

    def finish(self) -> StudyOutcome:
        """Count what finished, refuse a study where nothing did, summarize and report."""
        outcome = self.outcome
        if stop_requested() is not None:  # a signal after the last trial: report what finished
            outcome.interrupted = True
        outcome.n_finished = n_finished(self.study)
        if outcome.n_finished == 0:
            if outcome.interrupted:
                return outcome
            trials = self.study.get_trials(deepcopy=False)
            reasons = sorted({t.user_attrs.get("failure_reason", "") for t in trials} - {""})
            raise SearchFailedError(
                f"no trial of study {self.study_name!r} in {outcome.storage} finished"
                + (f"; failures: {'; '.join(reasons)[:1000]}" if reasons else "")
            )
        if self.worker:
            return outcome
        result = self.result
        if self.kind == "train_sizes" or outcome.interrupted or result is None:
            result = self.study  # what the study holds, without refitting anything
        labels = plan_labels(self.study, self.space, self.plan) if self.plan else {}
        outcome.result = result
        outcome.summary = summarize(result, labels=labels, rank_by=self.rank_by)
        if self.out is not None:
            title = self.title or f"Study {self.study_name}"
            outcome.report = write_study_report(result, self.out, outcome, title)
        return outcome

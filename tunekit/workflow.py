"""The lecture's workflow as calls: overfit first, then fit and regularize, resumably.

Step 1 of the overfitting lecture is "get your model to overfit on training
data (always possible)": :func:`overfit_check` says whether a model can, with
the evidence. Steps 2 and 3 run as resumable Optuna studies through
:func:`run_study`, over one of

- a search space (:class:`~tunekit.space.Space`), sampled by Optuna with
  pruning, e.g. :func:`tunekit.spaces.overfitting`;
- a *plan*: named configurations tried in order, such as one technique at a
  time against a baseline (:func:`one_at_a_time`) or growing capacity
  (:func:`capacity_ladder`); each configuration is one Optuna trial;
- training-set sizes: a learning curve (``train_sizes=``).

A study lives in an Optuna storage (an SQLite file by default, PostgreSQL for
several machines): run it again and it continues where it stopped; finished
trials are never re-run. Worker processes that share a storage
(``worker=True``) take the plan's configurations one at a time, so that
together they run each once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunekit._signals import check_stop, stop_requested
from tunekit.exceptions import SearchFailedError
from tunekit.space import Choice, Space
from tunekit.storage import make_storage, study_lock

__all__ = [
    "Config",
    "OverfitCheck",
    "StudyOutcome",
    "capacity_ladder",
    "one_at_a_time",
    "overfit_check",
    "plan_space",
    "run_study",
    "summarize",
]

logger = logging.getLogger("tunekit")

_TOKEN, _LABEL, _PLAN = "tunekit_token", "tunekit_label", "tunekit_plan_params"
_OWNER = "tunekit_enqueued_by"  # {"host", "pid", "time"} of the process that queued a trial
_ORPHAN_AFTER = 120.0  # seconds after which another machine's queued trial is up for grabs


# ---------------------------------------------------------------------- step 1
@dataclass
class OverfitCheck:
    """What :func:`overfit_check` found.

    Attributes
    ----------
    passed : bool
        The training score reached ``threshold``.
    train_score, val_score : float
        Scores on the training subset and on held-apart validation rows.
    threshold : float
        The training score that counts as "overfit".
    subset_size : int
        Training samples used.
    epochs : int or None
        Epochs trained (``None`` for a model without epochs).
    scoring : str
        The score's name (higher is better).
    history : dict of str to list of float
        The Keras history: per-epoch ``loss`` and, when validation rows were
        passed to Keras, ``val_loss`` (empty for other models).
    message : str
        The verdict in words, with the evidence and what to do next.
    """

    passed: bool
    train_score: float
    val_score: float
    threshold: float
    subset_size: int
    epochs: int | None
    scoring: str
    history: dict = field(default_factory=dict)
    message: str = ""

    def __str__(self) -> str:
        return self.message


def _epochs_param(estimator) -> str | None:
    names = [
        n
        for n in estimator.get_params()
        if n == "epochs" or (n.endswith("__epochs") and n.count("__") == 1)
    ]
    return names[-1] if names else None


def _default_threshold(estimator, scoring) -> float:
    from sklearn.base import is_classifier, is_regressor

    if scoring is None and is_classifier(estimator):
        return 0.99
    if scoring is None and is_regressor(estimator):
        return 0.95
    raise ValueError(
        f"threshold is needed with scoring={scoring!r}: there is no default training score "
        "that counts as overfit for it. Pass threshold=..., e.g. 0.99 for accuracy."
    )


def overfit_check(
    estimator,
    X,
    y,
    *,
    n_samples: int = 128,
    epochs: int | None = None,
    threshold: float | None = None,
    scoring=None,
    random_state: int | None = 0,
) -> OverfitCheck:
    """Step 1: can the model overfit a small subset of the training data?

    A model that cannot reach a (near) perfect training score on a few
    samples has too little capacity or is trained badly; no regularization
    will help it, so this comes first. The model is fit on ``n_samples``
    rows (stratified for classifiers) and scored on them and on up to 1,000
    other rows (the validation score, for the gap).

    Parameters
    ----------
    estimator : estimator
        A scikit-learn estimator, typically a tunekit Keras estimator or a
        pipeline ending in one. It is cloned, never changed.
    X : array-like of shape (n_samples_total, ...)
        The data; at least ``n_samples + 1`` rows.
    y : array-like of shape (n_samples_total,)
        The target.
    n_samples : int, default=128
        Size of the training subset.
    epochs : int or None, default=None
        Train this many epochs (the estimator's ``epochs`` parameter);
        ``None`` keeps the estimator's own.
    threshold : float or None, default=None
        The training score that counts as overfit. ``None``: 0.99 accuracy
        for classifiers, 0.95 R² for regressors (other scorings need one).
    scoring : str, callable or None, default=None
        As in scikit-learn; ``None`` is the estimator's ``score``.
    random_state : int or None, default=0
        Seeds the choice of rows.

    Returns
    -------
    check : OverfitCheck
        ``check.passed`` and the evidence; ``str(check)`` explains it.

    Raises
    ------
    ValueError
        If ``n_samples`` leaves no validation rows, or ``epochs`` is given to
        an estimator without an ``epochs`` parameter.

    Examples
    --------
    >>> import tunekit as tk
    >>> from tunekit import datasets, workflow
    >>> X, y = datasets.load("digits")
    >>> clf = tk.KerasClassifier(tk.builders.mlp, model__hidden=(64,), random_state=0)
    >>> check = workflow.overfit_check(clf, X, y, n_samples=100, epochs=100)  # doctest: +SKIP
    >>> print(check)  # doctest: +SKIP
    passed: the model overfits 100 training samples: training accuracy 1.000 >= 0.99 ...
    """
    from sklearn.base import clone, is_classifier
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import train_test_split
    from sklearn.utils import indexable

    from tunekit.estimators import KerasClassifier, KerasRegressor
    from tunekit.strategies._common import final_estimator, scorer_name

    X, y = indexable(X, y)
    n_total = len(y)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2, got n_samples={n_samples!r}")
    if n_samples >= n_total:
        raise ValueError(
            f"n_samples must leave validation rows: n_samples={n_samples} of {n_total} samples. "
            f"Use n_samples <= {n_total - 1} (a small subset is the point: 50 to 500)."
        )
    threshold = _default_threshold(estimator, scoring) if threshold is None else float(threshold)
    model = clone(estimator)
    if epochs is not None:
        name = _epochs_param(model)
        if name is None:
            raise ValueError(
                f"epochs={epochs} needs an estimator with an epochs parameter, but "
                f"{type(estimator).__name__} has none; pass epochs=None."
            )
        model.set_params(**{name: int(epochs)})
    classifier = is_classifier(model)
    idx = np.arange(n_total)
    stratify = y if classifier and n_samples >= len(np.unique(y)) else None
    train, rest = train_test_split(
        idx, train_size=n_samples, stratify=stratify, random_state=random_state
    )
    val = rest[:1000]
    X_tr, y_tr, X_val, y_val = _take(X, train), _take(y, train), _take(X, val), _take(y, val)
    fit_kwargs = {}
    if isinstance(model, KerasClassifier | KerasRegressor):
        fit_kwargs["validation_data"] = (X_val, y_val)
    model.fit(X_tr, y_tr, **fit_kwargs)
    scorer = check_scoring(model, scoring=scoring)
    train_score = float(scorer(model, X_tr, y_tr))
    val_score = float(scorer(model, X_val, y_val))
    final = final_estimator(model)
    history = {k: [float(v) for v in vals] for k, vals in getattr(final, "history_", {}).items()}
    trained = getattr(final, "n_epochs_", None)
    name = scorer_name(model, scoring)
    passed = bool(np.isfinite(train_score) and train_score >= threshold)
    run = f"after {trained} epochs" if trained else "after training"
    if passed:
        message = (
            f"passed: the model overfits {n_samples} training samples: training {name} "
            f"{train_score:.3f} >= {threshold:g} {run} (validation {val_score:.3f}, gap "
            f"{train_score - val_score:.3f}). Step 1 is done: the model has the capacity; "
            "now fit the validation data (step 2) and delay overfitting (step 3)."
        )
    else:
        loss = history.get("loss", [])
        falling = len(loss) >= 2 and loss[-1] < 0.98 * loss[-2]
        hint = " The training loss was still falling at the last epoch: train longer first." * (
            falling
        )
        message = (
            f"failed: the model cannot overfit {n_samples} training samples: training {name} "
            f"{train_score:.3f} < {threshold:g} {run}. Capacity or training is the problem, "
            "not the data: add units or layers (model__hidden), train longer (epochs) or "
            "with a larger learning rate (optimizer__learning_rate), and remove "
            f"regularization (l1, l2, dropout, noise) until it passes.{hint}"
        )
    return OverfitCheck(
        passed=passed,
        train_score=train_score,
        val_score=val_score,
        threshold=threshold,
        subset_size=int(n_samples),
        epochs=int(trained) if trained else None,
        scoring=name,
        history=history,
        message=message,
    )


def _take(data, idx):
    return data.iloc[idx] if hasattr(data, "iloc") else data[idx]


# ----------------------------------------------------------------------- plans
@dataclass(frozen=True)
class Config:
    """One named configuration of a plan: estimator parameters and a label.

    Parameters
    ----------
    label : str
        A short name for reports, e.g. ``"L2 0.002"``.
    params : dict
        Estimator parameters, e.g. ``{"model__l2": 0.002}``.
    """

    label: str
    params: Mapping[str, Any]


def one_at_a_time(baseline: Mapping[str, Any], variants: Mapping[str, Mapping]) -> list[Config]:
    """The baseline, then each variant changing only its own parameters.

    Parameters
    ----------
    baseline : dict
        Every parameter the variants touch, at its "off" value, e.g.
        ``{"model__l2": 0.0, "model__dropout": 0.0, "batch_size": 32}``.
    variants : dict of str to dict
        Label to the parameters that differ from the baseline.

    Returns
    -------
    plan : list of Config
        ``baseline`` first, then the variants in order; every configuration
        sets every parameter of the baseline.

    Raises
    ------
    ValueError
        If a variant sets a parameter the baseline lacks, or equals the baseline.

    Examples
    --------
    >>> from tunekit.workflow import one_at_a_time
    >>> plan = one_at_a_time({"model__l2": 0.0, "model__dropout": 0.0},
    ...                      {"L2 0.002": {"model__l2": 0.002}})
    >>> [(c.label, dict(c.params)) for c in plan]
    [('baseline', {'model__l2': 0.0, 'model__dropout': 0.0}), ('L2 0.002', {'model__l2': 0.002, 'model__dropout': 0.0})]
    """  # noqa: E501
    plan = [Config("baseline", dict(baseline))]
    for label, change in variants.items():
        unknown = sorted(set(change) - set(baseline))
        if unknown:
            raise ValueError(
                f"variant {label!r} sets {unknown}, which the baseline does not have: every "
                "variant changes baseline parameters only. Add them to the baseline at their "
                "'off' value."
            )
        params = {**baseline, **change}
        if params == dict(baseline):
            raise ValueError(f"variant {label!r} equals the baseline: {dict(change)!r}")
        plan.append(Config(str(label), params))
    return plan


def capacity_ladder(widths: Sequence, name: str = "model__hidden") -> list[Config]:
    """Growing capacities, smallest first, for step 1 (see ``until_train_score``).

    Parameters
    ----------
    widths : sequence of tuple of int
        Hidden layer widths per rung, e.g. ``[(2,), (8,), (32,), (128, 128)]``.
    name : str, default="model__hidden"
        The parameter they set.

    Returns
    -------
    plan : list of Config
    """
    return [Config(f"hidden={tuple(w)}", {name: tuple(w)}) for w in widths]


def plan_space(plan: Sequence[Config]) -> Space:
    """The search space that holds exactly the plan's values (one ``Choice`` per parameter).

    Raises
    ------
    ValueError
        If the plan is empty or its configurations set different parameters.
    """
    if not plan:
        raise ValueError("a plan needs at least one configuration, got an empty plan")
    names = list(plan[0].params)
    values: dict[str, list] = {n: [] for n in names}
    for config in plan:
        if list(config.params) != names:
            raise ValueError(
                f"every configuration of a plan must set the same parameters; {config.label!r} "
                f"sets {sorted(config.params)}, the first sets {sorted(names)}. Build the plan "
                "with one_at_a_time(baseline, variants)."
            )
        for n, v in config.params.items():
            if not any(type(v) is type(u) and v == u for u in values[n]):
                values[n].append(v)
    return Space({n: Choice(vs) for n, vs in values.items()})


def _encode(space: Space, params: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna's representation of ``params`` (what ``study.enqueue_trial`` needs)."""
    out = {}
    for name, value in params.items():
        dim = space[name]
        for option, encoded in zip(dim.values, dim.optuna().choices, strict=True):
            if type(option) is type(value) and option == value:
                out[name] = encoded
                break
    return out


# --------------------------------------------------------------------- outcome
@dataclass
class StudyOutcome:
    """What :func:`run_study` did.

    Attributes
    ----------
    study_name : str
    storage : str
        The storage URL, password masked.
    result : SearchResult, LoadedResult or None
        The search result the report was made from (``None`` for a worker).
    summary : pandas.DataFrame or None
        One row per candidate: label, validation mean and standard error,
        training score, gap, held-out score, corrected p-value against the
        best and whether it is tied with it; ordered as asked (``rank_by``).
    report : dict of str to pathlib.Path
        Files written (empty for a worker or without ``out``).
    n_finished : int
        Finished (complete or pruned) trials in the study.
    interrupted : bool
        Stopped by Ctrl-C; what finished is kept and reported.
    """

    study_name: str
    storage: str
    result: Any = None
    summary: Any = None
    report: dict = field(default_factory=dict)
    n_finished: int = 0
    interrupted: bool = False


def _jsonable_param(value):
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, tuple | list):
        return [_jsonable_param(v) for v in value]
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
    return None


def _fingerprint(data) -> str:
    if data is None:
        return "none"
    arr = np.ascontiguousarray(np.asarray(data))
    step = max(1, len(arr) // 2000)
    digest = hashlib.sha1(str((arr.shape, arr.dtype.str)).encode())
    digest.update(np.ascontiguousarray(arr[::step]).tobytes())
    return digest.hexdigest()[:16]


def _config(estimator, X, y, **settings) -> dict:
    params = {}
    for name, value in sorted(estimator.get_params(deep=True).items()):
        encoded = _jsonable_param(value)
        if encoded is not None or value is None:
            params[name] = encoded
    return {
        "estimator": type(estimator).__name__,
        "params": params,
        "X": _fingerprint(X),
        "y": _fingerprint(y),
        **{k: v if isinstance(v, list | dict) else _jsonable_param(v) for k, v in settings.items()},
    }


def _check_config(study, config: dict, label: str) -> None:
    stored = study.user_attrs.get("tunekit_config")
    if stored is None:
        study.set_user_attr("tunekit_config", json.loads(json.dumps(config)))
        return
    config = json.loads(json.dumps(config))
    if stored == config:
        return
    diffs = []
    for key in sorted(set(stored) | set(config)):
        a, b = stored.get(key), config.get(key)
        if key == "params" and isinstance(a, dict) and isinstance(b, dict):
            diffs += [
                f"{k}: {a.get(k)!r} -> {b.get(k)!r}"
                for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)
            ]
        elif a != b:
            diffs.append(f"{key}: {a!r} -> {b!r}" if len(repr(a)) < 80 else f"{key} changed")
    raise ValueError(
        f"study {study.study_name!r} in {label} was run with other settings, so its trials "
        f"cannot be mixed with these ({'; '.join(diffs[:6])}). Resume it with the same "
        "settings, or start a new study: --study-name NAME (or a new --storage)."
    )


def _plan_params(trial) -> dict:
    return dict(trial.user_attrs.get(_PLAN) or trial.params)


def _failed_for_good(trial) -> bool:
    """A FAIL trial whose configuration failed; not one that a signal or a crash stopped."""
    reason = str(trial.user_attrs.get("failure_reason") or "")
    if "failure_traceback" in trial.user_attrs:
        return True
    return bool(reason) and "stopped by" not in reason and "queued again" not in reason


def _covered(encoded: Mapping, trials) -> bool:
    """A configuration is done or in progress: finished, running, waiting or truly failed."""
    for t in trials:
        if t.state.name == "FAIL" and not _failed_for_good(t):
            continue  # interrupted or killed: run it again
        params = _plan_params(t)
        if all(params.get(k) == v for k, v in encoded.items()):
            return True
    return False


def _owner() -> dict:
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}


def _orphaned(trial, trials) -> bool:
    """A queued trial whose process is gone: it will never run it itself.

    On this machine the process is looked up. A trial queued on another
    machine counts as orphaned once its process has shown no sign of life
    (queueing, running or finishing one of its trials) for ``_ORPHAN_AFTER``
    seconds.
    """
    import socket

    owner = trial.user_attrs.get(_OWNER)
    if not isinstance(owner, dict):
        return True
    if owner.get("host") == socket.gethostname():
        try:
            os.kill(int(owner.get("pid", 0)), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError, OSError):
            return False
        return False
    token = trial.user_attrs.get(_TOKEN)
    last = float(owner.get("time", 0.0))
    for other in trials:
        if other.user_attrs.get(_TOKEN) != token:
            continue
        if other.state.name == "RUNNING":
            return False
        if other.datetime_complete is not None:
            last = max(last, other.datetime_complete.timestamp())
    return time.time() - last > _ORPHAN_AFTER


def _n_finished(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


# -------------------------------------------------------------- learning curve
def _curve_objective(estimator, X, y, splits, sizes, scoring, random_state):
    from sklearn.base import clone, is_classifier
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import train_test_split

    from tunekit.storage import set_user_attrs

    scorer = check_scoring(estimator, scoring=scoring)
    classifier = is_classifier(estimator)

    def objective(trial) -> float:
        from tunekit.strategies._common import final_estimator

        size = int(trial.suggest_categorical("n_train", list(sizes)))
        trial.set_user_attr("params", {"n_train": size})
        record = {k: [] for k in ("cv_test_scores", "cv_train_scores", "fit_times")}
        record |= {"score_times": [], "n_epochs": []}
        for train, test in splits:
            check_stop()  # a safe point: between folds, outside any storage transaction
            model = clone(estimator)
            try:
                if size < len(train):  # folds differ by a row or so: the smallest sets the size
                    n_classes = len(np.unique(_take(y, train))) if classifier else 0
                    stratified = n_classes and min(size, len(train) - size) >= n_classes
                    train, _ = train_test_split(
                        train,
                        train_size=size,
                        stratify=_take(y, train) if stratified else None,
                        random_state=random_state,
                    )
                start = time.perf_counter()
                model.fit(_take(X, train), _take(y, train))
                fit_time = time.perf_counter() - start
                start = time.perf_counter()
                val = float(scorer(model, _take(X, test), _take(y, test)))
                score_time = time.perf_counter() - start
                tr = float(scorer(model, _take(X, train), _take(y, train)))
            except Exception as err:
                set_user_attrs(
                    trial,
                    {
                        **record,
                        "failure_reason": f"{type(err).__name__}: {err}"[:300],
                        "failure_traceback": traceback.format_exc()[-4000:],
                    },
                )
                return float("nan")
            record["cv_test_scores"].append(val if math.isfinite(val) else None)
            record["cv_train_scores"].append(tr if math.isfinite(tr) else None)
            record["fit_times"].append(fit_time)
            record["score_times"].append(score_time)
            n_epochs = getattr(final_estimator(model), "n_epochs_", None)
            record["n_epochs"].append(None if n_epochs is None else float(n_epochs))
        set_user_attrs(trial, record)  # one storage write
        scores = [s for s in record["cv_test_scores"] if s is not None]
        return float(np.mean(scores)) if len(scores) == len(splits) else float("nan")

    return objective


# ------------------------------------------------------------------ summaries
def _describe(params: Mapping[str, Any]) -> str:
    def short(value):
        if isinstance(value, float):
            return f"{value:.3g}"
        return str(value)

    return ", ".join(f"{k.rsplit('__', 1)[-1]}={short(v)}" for k, v in params.items()) or "-"


def summarize(obj, *, labels: Mapping[int, str] | None = None, rank_by: str = "cv"):
    """One row per candidate with the report's statistics, for people.

    Parameters
    ----------
    obj : object
        A search result, study or anything :func:`tunekit.report.leaderboard` reads.
    labels : dict of int to str, default=None
        Optuna trial number to a configuration's name.
    rank_by : {"cv", "heldout", "plan"}, default="cv"
        Row order: the leaderboard's (cross-validation) ranking, the held-out
        score (best first, candidates without one last), or the plan's order.

    Returns
    -------
    summary : pandas.DataFrame
    """
    import pandas as pd

    from tunekit.report import leaderboard
    from tunekit.report._source import resolve

    src = resolve(obj)
    lb = leaderboard(src)
    numbers = np.asarray(src.cv_results_.get("trial_number", np.arange(len(lb))))
    params = src.cv_results_["params"]
    rows = []
    for index, row in lb.iterrows():
        if row["state"] == "BASELINE":
            continue  # beside the candidates: summed up in attrs["baseline_summary"]
        number = int(numbers[int(index)])
        label = (labels or {}).get(number) or _describe(params[int(index)])
        rows.append(
            {
                "trial": number,
                "configuration": label,
                "val_score": row["mean_val_score"],
                "se": row["se_val_score"],
                "train_score": row.get("mean_train_score", np.nan),
                "gap": row.get("train_val_gap", np.nan),
                "heldout_score": row.get("heldout_test_score", np.nan),
                "p_value": row.get("p_value", np.nan),
                "tied_with_best": bool(row.get("tied_with_best", False)),
                "state": row["state"],
            }
        )
    frame = pd.DataFrame(rows)
    frame.attrs["scoring"] = lb.attrs.get("scoring")
    frame.attrs["baseline_summary"] = lb.attrs.get("baseline_summary")
    if rank_by == "heldout":
        frame = frame.sort_values(
            "heldout_score", ascending=False, na_position="last", kind="stable"
        )
    elif rank_by == "plan":
        frame = frame.sort_values("trial", kind="stable")
    elif rank_by != "cv":
        raise ValueError(f"rank_by must be 'cv', 'heldout' or 'plan', got {rank_by!r}")
    return frame.reset_index(drop=True)


def _summary_text(summary, title: str) -> str:
    shown = summary.drop(columns=[c for c in summary.columns if summary[c].isna().all()])
    text = shown.to_string(index=False, float_format=lambda v: f"{v:.4f}")
    scoring = summary.attrs.get("scoring") or "score"
    return (
        f"# {title}\n\nScores: {scoring}, higher is better. val_score: mean over the "
        "cross-validation folds (se: its standard error); heldout_score: the untouched test "
        "set; p_value: corrected t-test against the best (tied_with_best: p >= 0.05).\n\n"
        + (f"Baselines: {summary.attrs['baseline_summary']}.\n\n"
           if summary.attrs.get("baseline_summary") else "")
        + f"```text\n{text}\n```\n"
    )


# ------------------------------------------------------------------- the study
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
    import optuna

    from tunekit.storage.urls import redact_url

    options = {"space": space, "plan": plan, "train_sizes": train_sizes}
    given = [name for name, value in options.items() if value is not None]
    if len(given) != 1:
        raise ValueError(
            f"run_study needs exactly one of space=, plan= or train_sizes=, got {given or 'none'}"
        )
    if until_train_score is not None and plan is None:
        raise ValueError("until_train_score needs a plan= (e.g. capacity_ladder([...]))")
    if n_trials is not None and (isinstance(n_trials, bool) or n_trials < 1):
        raise ValueError(f"n_trials must be a positive integer or None, got {n_trials!r}")
    if rank_by is None:
        rank_by = "cv" if space is not None else "plan"
    if rank_by not in ("cv", "heldout", "plan"):
        raise ValueError(f"rank_by must be 'cv', 'heldout' or 'plan', got {rank_by!r}")
    label = redact_url(storage)
    prefix = ""
    if scale:
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        estimator = make_pipeline(StandardScaler(), estimator)
        prefix = f"{estimator.steps[-1][0]}__"
    if space is not None:
        space = space if isinstance(space, Space) else Space(space)
        space = space.prefixed(prefix) if prefix else space
    if plan is not None:
        plan = [Config(c.label, {prefix + k: v for k, v in c.params.items()}) for c in plan]
        space = plan_space(plan)
        if pruner is None:
            pruner = optuna.pruners.NopPruner()
    if train_sizes is not None:
        plan, splits = _curve_plan(estimator, X, y, train_sizes, cv)
        space = plan_space(plan)

    if out is not None:
        _check_writable(out)  # before any training: a report that cannot be written
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = make_storage(storage)
    study = optuna.create_study(
        storage=store, study_name=study_name, direction="maximize", load_if_exists=True
    )
    config = _config(
        estimator,
        X,
        y,
        kind=given[0],
        plan=[[c.label, _encode(space, c.params)] for c in plan] if plan else None,
        space=None if plan else sorted(space),
        cv=repr(cv),
        scoring=repr(scoring),
        test_size=test_size,
        random_state=random_state,
        fit_params=sorted(fit_params or {}),
        until_train_score=until_train_score,
    )
    _check_config(study, config, label)
    start = time.perf_counter()

    def time_left():
        if timeout is None:
            return None
        return max(0.0, timeout - (time.perf_counter() - start))

    def search(n, refit):
        import tunekit as tk

        return tk.search(
            estimator,
            X,
            y,
            space=space,
            strategy="optuna",
            cv=cv,
            scoring=scoring,
            test_size=test_size,
            n_trials=max(1, n),
            storage=storage,
            study_name=study_name,
            random_state=random_state,
            refit_top=refit,
            pruner=pruner,
            timeout=time_left(),
            fit_params=fit_params,
            verbose=0 if worker else verbose,
        )

    if refit_top is None:
        refit_top = len(plan) if plan else 3
    outcome = StudyOutcome(study_name=study_name, storage=label)
    result = None
    try:
        if plan is None:
            result = search(n_trials or 20, 1 if worker else refit_top)
            outcome.interrupted = bool(result.interrupted_)
        else:
            entries = plan[:n_trials] if n_trials else plan
            if train_sizes is not None:
                sizes = [c.params["n_train"] for c in plan]
                objective = _curve_objective(estimator, X, y, splits, sizes, scoring, random_state)
                _prepare_curve_study(study, estimator, scoring, splits)

                def run(n_run, refit):
                    if n_run:
                        study.optimize(objective, n_trials=n_run, timeout=time_left())
            else:

                def run(n_run, refit):
                    nonlocal result
                    finished = _n_finished(study)
                    if finished + n_run == 0:
                        return  # nothing finished, nothing to run: reported below
                    result = search(finished + n_run, refit)
                    if result.interrupted_:
                        raise KeyboardInterrupt

            _run_plan(
                study,
                store,
                storage,
                space,
                entries,
                run,
                one_by_one=worker or until_train_score is not None,
                final_refit=None if worker else refit_top,
                until_train_score=until_train_score,
                time_left=time_left,
            )
    except KeyboardInterrupt as err:
        if type(err).__name__ == "WorkerTerminated":  # SIGTERM: stop now, no report
            raise
        outcome.interrupted = True
        logger.warning(
            "interrupted: %d finished trials are kept in study %r (%s); run the same command "
            "again to continue",
            _n_finished(study),
            study_name,
            label,
        )
    if stop_requested() is not None:  # a signal after the last trial: report what finished
        outcome.interrupted = True
    outcome.n_finished = _n_finished(study)
    if outcome.n_finished == 0:
        if outcome.interrupted:
            return outcome
        reasons = sorted(
            {t.user_attrs.get("failure_reason", "") for t in study.get_trials(deepcopy=False)}
            - {""}
        )
        raise SearchFailedError(
            f"no trial of study {study_name!r} in {label} finished"
            + (f"; failures: {'; '.join(reasons)[:1000]}" if reasons else "")
        )
    if worker:
        return outcome
    if train_sizes is not None or outcome.interrupted or result is None:
        result = study  # what the study holds, without refitting anything
    labels = _labels(study, space, plan) if plan else {}
    outcome.result = result
    outcome.summary = summarize(result, labels=labels, rank_by=rank_by)
    if out is not None:
        outcome.report = _write_study_report(result, out, outcome, title or f"Study {study_name}")
    return outcome


def _check_writable(out) -> None:
    """Refuse a report directory that cannot be created or written, before any trial."""
    import tempfile

    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise type(err)(
            err.errno,
            f"cannot write the report to {out}: {os.strerror(err.errno) if err.errno else err}"
            "; pass another --out (out=) or fix the directory's permissions. Nothing was run.",
        ) from err


def _write_study_report(result, out, outcome: StudyOutcome, title: str) -> dict:
    """The report and ``summary.md``, every file atomically; a disk error says what to do.

    Raises
    ------
    OSError
        Naming the file that could not be written (an unwritable or full
        directory) and the command that rebuilds the report from the study,
        which its storage keeps intact.
    """
    from tunekit.report import write_report
    from tunekit.report._io import atomic_write_text

    try:
        written = write_report(result, out)
        written["summary"] = atomic_write_text(
            Path(out) / "summary.md", _summary_text(outcome.summary, title)
        )
    except OSError as err:
        reason = err.strerror or str(err)
        if not reason.startswith("cannot write"):
            reason = f"cannot write the report to {out}: {reason}"
        raise type(err)(
            err.errno,
            f"{reason}. The {outcome.n_finished} finished trials of study "
            f"{outcome.study_name!r} are intact in {outcome.storage}: rebuild the report once "
            f"the disk is fixed with: tunekit report {outcome.storage} --study "
            f"{outcome.study_name} --out {out}",
        ) from err
    return written


def _curve_plan(estimator, X, y, train_sizes, cv):
    from sklearn.base import is_classifier
    from sklearn.model_selection import check_cv
    from sklearn.utils import indexable

    X, y = indexable(X, y)
    splits = list(check_cv(cv, y, classifier=is_classifier(estimator)).split(X, y))
    smallest = min(len(train) for train, _ in splits)
    sizes = []
    for fraction in train_sizes:
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(
                f"train_sizes must be fractions of the training fold in (0, 1], got {fraction!r}"
            )
        size = max(2, round(float(fraction) * smallest))
        if size not in sizes:
            sizes.append(size)
    return [Config(f"n_train={n}", {"n_train": n}) for n in sizes], splits


def _prepare_curve_study(study, estimator, scoring, splits) -> None:
    from tunekit.strategies._common import scorer_name

    if "scoring" not in study.user_attrs:
        study.set_user_attr("scoring", scorer_name(estimator, scoring))
        study.set_user_attr("n_splits", len(splits))
        ratio = float(np.mean([len(te) / len(tr) for tr, te in splits]))
        study.set_user_attr("test_train_ratio", ratio)


def _run_plan(
    study,
    store,
    url: str,
    space: Space,
    entries: Sequence[Config],
    run: Callable[[int, int], None],
    *,
    one_by_one: bool,
    final_refit: int | None,
    until_train_score: float | None,
    time_left: Callable[[], float | None],
) -> None:
    """Enqueue the plan's missing configurations and run them.

    Each process tags what it enqueues and only starts as many trials as it
    has enqueued (plus, in a normal run, the queued trials nobody else will
    run: retries of interrupted trials, trials of processes that are gone), so
    that processes sharing a study never make Optuna sample a configuration
    off the plan. Workers take one configuration at a time.
    """
    from optuna.trial import TrialState

    token = uuid.uuid4().hex
    encoded = [_encode(space, c.params) for c in entries]
    while True:
        if until_train_score is not None and _overfitted(study, until_train_score):
            break
        left = time_left()
        if left is not None and left <= 0:
            logger.info("timeout reached: no more trials are started")
            break
        with study_lock(url, study.study_name, store):
            trials = study.get_trials(deepcopy=False)
            waiting = [t for t in trials if t.state == TrialState.WAITING]
            mine = [t for t in waiting if t.user_attrs.get(_TOKEN) == token]
            todo = [i for i, e in enumerate(encoded) if not _covered(e, trials)]
            if one_by_one and not mine:
                todo = todo[:1]
            elif one_by_one:
                todo = []
            for i in todo:
                attrs = {_TOKEN: token, _LABEL: entries[i].label, _PLAN: encoded[i]}
                study.enqueue_trial(encoded[i], user_attrs={**attrs, _OWNER: _owner()})
            # a normal run also takes over queued trials nobody will run: retries of
            # interrupted or dead trials (no token), and those of processes that are gone
            orphans = [
                t for t in waiting if t.user_attrs.get(_TOKEN) != token and _orphaned(t, trials)
            ]
            n_run = len(mine) + len(todo) + (0 if one_by_one else len(orphans))
        if n_run == 0:
            break
        if one_by_one:
            logger.info("running %s", ", ".join(entries[i].label for i in todo) or "a trial")
        run(n_run, 1)  # one refit only: Ctrl-C must not wait for the report's refits
        if not one_by_one:
            break
    if final_refit is not None:
        run(0, final_refit)


def _labels(study, space: Space, plan: Sequence[Config]) -> dict[int, str]:
    """Trial number -> the name of the plan configuration it ran (retries included)."""
    encoded = [(_encode(space, c.params), c.label) for c in plan]
    labels = {}
    for trial in study.get_trials(deepcopy=False):
        params = _plan_params(trial)
        for values, label in encoded:
            if all(params.get(k) == v for k, v in values.items()):
                labels[trial.number] = label
                break
    return labels


def _overfitted(study, threshold: float) -> bool:
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        scores = [s for s in trial.user_attrs.get("cv_train_scores") or [] if s is not None]
        if scores and float(np.mean(scores)) >= threshold:
            logger.info(
                "trial %d (%s) reached a training score of %.4f >= %g: the model overfits",
                trial.number,
                _describe(trial.user_attrs.get("params") or trial.params),
                float(np.mean(scores)),
                threshold,
            )
            return True
    return False

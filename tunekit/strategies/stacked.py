"""Cross-validated search on the stacked engine, in scikit-learn's schema.

:class:`StackedSearchCV` evaluates a list of candidates over CV folds like
:class:`sklearn.model_selection.GridSearchCV` does, but trains every
(candidate, fold) pair that can be stacked as one *member* of a stacked model
(:mod:`tunekit.engine`): members that share a structure (architecture,
optimizer, batch size) train side by side in one compiled model. Candidates
the engine cannot reproduce go through the ordinary path (clone, set_params,
fit, score) transparently; both land in the same ``cv_results_``.

:func:`can_stack` and :func:`stack_plan` tell ``tunekit.search`` beforehand
whether, and how, a search would stack.
"""

from __future__ import annotations

import numbers
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    clone,
    is_classifier,
    is_regressor,
)
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import ParameterGrid, check_cv, train_test_split
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import _safe_indexing, check_random_state, indexable
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

from tunekit.exceptions import DivergedError, SearchFailedError

__all__ = ["CandidateGroup", "StackedSearchCV", "can_stack", "stack_plan"]

#: Largest number of members trained in one stacked model; bigger groups are
#: split. Memory per member is a few copies of its weights plus its index
#: arrays (one int32 per training row).
MAX_STACK_MEMBERS = 2048


@dataclass
class CandidateGroup:
    """Candidates that train together (a stack), or one that cannot be stacked.

    Attributes
    ----------
    indices : list of int
        Positions of the candidates in the candidate list.
    structure : tuple or None
        The shared structure (see :func:`tunekit.engine.resolve_params`);
        ``None`` for the standard path.
    reason : str or None
        Why these candidates take the standard path (``None`` for a stack).
    fit_time : float
        Wall time of the group's training, set by :class:`StackedSearchCV`.
    n_members : int
        Members trained (candidates x folds), set by :class:`StackedSearchCV`.
    epoch_times : list of float
        Wall time of every compiled epoch call of the group's stacks (the
        first of each stack includes compilation).
    """

    indices: list[int]
    structure: tuple | None = None
    reason: str | None = None
    fit_time: float = 0.0
    n_members: int = 0
    epoch_times: list = field(default_factory=list)

    @property
    def stacked(self) -> bool:
        """Whether this group runs on the stacked engine."""
        return self.reason is None


def _candidate_list(candidates) -> list[dict]:
    if isinstance(candidates, Mapping):
        return list(ParameterGrid(candidates))
    if isinstance(candidates, str) or not isinstance(candidates, Iterable):
        raise TypeError(
            "candidates must be a param grid (a dict of lists, as for GridSearchCV) or an "
            f"iterable of parameter dicts (one per candidate), got {type(candidates).__name__}"
        )
    out = []
    for i, cand in enumerate(candidates):
        if not isinstance(cand, Mapping):
            raise TypeError(
                f"candidate {i} must be a dict of parameter values, got {cand!r}; pass a "
                "dict of lists to expand a grid, or a list of dicts, one per candidate"
            )
        out.append(dict(cand))
    if not out:
        raise ValueError("candidates is empty: there is nothing to search")
    return out


def stack_plan(estimator: BaseEstimator, candidates) -> list[CandidateGroup]:
    """Group candidates into stacks; list the rest with the reason.

    Parameters
    ----------
    estimator : estimator object
        A :class:`tunekit.KerasClassifier` or :class:`tunekit.KerasRegressor`
        (any estimator whose ``get_params()`` the engine understands).
    candidates : dict of lists, or iterable of dicts
        A parameter grid, or the candidate parameter dicts.

    Returns
    -------
    groups : list of CandidateGroup
        Stacks first (in order of their first candidate), then one group per
        candidate that cannot be stacked.
    """
    from tunekit.engine import resolve_params

    cands = _candidate_list(candidates)
    base = estimator.get_params(deep=False)
    stacks: dict[tuple, CandidateGroup] = {}
    singles = []
    for i, cand in enumerate(cands):
        res = resolve_params({**base, **cand})
        if res.stackable:
            stacks.setdefault(res.structure, CandidateGroup([], res.structure)).indices.append(i)
        else:
            singles.append(CandidateGroup([i], None, res.reason))
    return [*stacks.values(), *singles]


def can_stack(estimator: BaseEstimator, candidates) -> bool:
    """Whether every candidate can run on the stacked engine.

    This is the test of ``tunekit.search(engine="auto")``: ``True`` means
    :class:`StackedSearchCV` will train every candidate stacked (the data
    may still send a candidate to the standard path, e.g. a loss that does not
    fit the target; results are the same schema either way).

    Parameters
    ----------
    estimator : estimator object
    candidates : dict of lists, or iterable of dicts

    Returns
    -------
    stackable : bool
    """
    try:
        return all(group.stacked for group in stack_plan(estimator, candidates))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------- members as estimators
class _Member(BaseEstimator):
    """One trained member, as a fitted scikit-learn estimator (inference in NumPy)."""

    def fit(self, X, y=None):
        """Not available: members are trained by :class:`StackedSearchCV`.

        Raises
        ------
        TypeError
            Always; fit ``tunekit.KerasClassifier`` / ``KerasRegressor`` instead.
        """
        raise TypeError(
            f"{type(self).__name__} is a member trained inside a stacked model and cannot be "
            "fit on its own; fit tunekit.KerasClassifier / KerasRegressor with the member's "
            "parameters instead"
        )

    def _outputs(self, X):
        from tunekit.engine import forward_numpy

        check_is_fitted(self, "weights_")
        X = np.asarray(X, dtype="float32")
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has shape {X.shape}, but this member was trained on "
                f"{self.n_features_in_} features"
            )
        return forward_numpy(self.weights_, X, self.activation_, self.output_activation_)


class StackedMemberClassifier(ClassifierMixin, _Member):
    """A classifier trained as one member of a stack (scores cross-validation).

    Attributes
    ----------
    weights_ : list of ndarray
        The member's weights in ``keras.Model.get_weights()`` order.
    classes_ : ndarray
        Class labels.
    n_features_in_ : int
    activation_, output_activation_ : str
    best_epoch_, n_epochs_ : int
    """

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)``."""
        out = self._outputs(X)
        if out.shape[1] == 1:
            return np.hstack([1.0 - out, out])
        return out

    def predict(self, X):
        """Predicted labels."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class StackedMemberRegressor(RegressorMixin, _Member):
    """A regressor trained as one member of a stack (scores cross-validation).

    Attributes
    ----------
    weights_ : list of ndarray
    n_features_in_ : int
    activation_, output_activation_ : str
    best_epoch_, n_epochs_ : int
    """

    def predict(self, X):
        """Predicted values, ``(n_samples,)`` for one target."""
        out = self._outputs(X)
        return out[:, 0] if self.n_outputs_ == 1 and self.y_ndim_ == 1 else out


# ---------------------------------------------------------------------- the search
@dataclass
class _Data:
    task: str | None
    X: np.ndarray | None = None
    Y: np.ndarray | None = None  # loss encoding
    codes: np.ndarray | None = None
    classes: np.ndarray | None = None
    n_outputs: int = 1
    y_ndim: int = 1
    reason: str | None = None


def _task_of(estimator) -> str | None:
    kind = getattr(estimator, "_estimator_type", None)
    if is_classifier(estimator) or kind == "classifier":
        return "classifier"
    if is_regressor(estimator) or kind == "regressor":
        return "regressor"
    return None


def _prepare(estimator, X, y) -> _Data:
    """Convert X once, encode y for the loss; say why not if the data cannot be stacked."""
    kind = _task_of(estimator)
    if kind is None:
        return _Data(None, reason="the estimator is neither a classifier nor a regressor")
    try:
        Xa = np.asarray(X, dtype="float32")
    except (TypeError, ValueError):
        return _Data(None, reason="X is not numeric")
    if Xa.ndim != 2 or not np.all(np.isfinite(Xa)):
        return _Data(None, reason="X is not a finite 2-D array")
    y_arr = np.asarray(y)
    if kind == "classifier":
        target = type_of_target(y_arr)
        if target not in ("binary", "multiclass") or y_arr.ndim != 1:
            return _Data(None, reason=f"a {target} target is not stacked")
        classes, codes = np.unique(y_arr, return_inverse=True)
        if target == "binary" or len(classes) == 2:
            return _Data("binary", Xa, codes[:, None].astype("float32"), codes, classes, 1)
        Y = np.eye(len(classes), dtype="float32")[codes]
        return _Data("multiclass", Xa, Y, codes, classes, len(classes))
    try:
        ya = y_arr.astype("float32")
    except (TypeError, ValueError):
        return _Data(None, reason="y is not numeric")
    if ya.ndim not in (1, 2) or not np.all(np.isfinite(ya)):
        return _Data(None, reason="y is not a finite 1-D or 2-D array")
    Y = ya[:, None] if ya.ndim == 1 else ya
    return _Data("regression", Xa, Y, None, None, Y.shape[1], ya.ndim)


def _member_seeds(base: int, n_candidates: int, n_splits: int) -> np.ndarray:
    seq = np.random.SeedSequence(base)
    children = seq.generate_state(n_candidates * n_splits * 3, dtype=np.uint32)
    # per member: initial weights, validation carve, batch order / dropout stream
    return (children.reshape(n_candidates, n_splits, 3) >> 1).astype("int64")


def _carve(train: np.ndarray, codes, fraction: float, seed: int, classifier: bool):
    """Split validation rows off a training fold as the estimators do (never the test part)."""
    n = len(train)
    n_val = int(np.ceil(fraction * n))
    if n_val < 1 or n - n_val < 1:
        raise ValueError(
            f"validation_fraction={fraction} of {n} samples leaves {n_val} for validation and "
            f"{n - n_val} for training; both need at least 1 sample. Use more data or "
            "early_stopping=None."
        )
    stratify = None
    if classifier:
        fold_codes = codes[train]
        _, counts = np.unique(fold_codes, return_counts=True)
        if counts.min() >= 2 and n_val >= counts.size:
            stratify = fold_codes
    fit_pos, val_pos = train_test_split(
        np.arange(n), test_size=n_val, random_state=seed, stratify=stratify
    )
    return train[fit_pos], train[val_pos]


class StackedSearchCV(BaseSearchCV):
    """Cross-validated search over candidates, trained on the stacked engine.

    Every (candidate, fold) pair becomes a member; members whose candidates
    share an architecture, optimizer and batch size train side by side as one
    Keras model with a member axis on every weight (see
    ``docs/performance.md``). Candidates the engine cannot reproduce are fit
    the ordinary way. ``cv_results_`` has exactly the keys of
    :class:`~sklearn.model_selection.GridSearchCV`'s, plus
    ``split{i}_best_epoch`` and ``split{i}_n_epochs``.

    Parameters
    ----------
    estimator : estimator object
        A :class:`tunekit.KerasClassifier` or :class:`tunekit.KerasRegressor`
        built on :func:`tunekit.builders.mlp`; it is also what ``refit``
        fits, the ordinary way.
    candidates : dict of lists, or iterable of dicts
        A parameter grid (expanded with
        :class:`~sklearn.model_selection.ParameterGrid`), or the candidates
        themselves: one dict of parameter values each (e.g. a
        ``ParameterSampler``).
    scoring : str, callable, list, tuple, dict or None, default=None
        As for ``GridSearchCV``; ``None`` uses the estimator's ``score``
        (accuracy or R^2).
    cv : int, cross-validation generator or iterable, default=5
        As for ``GridSearchCV`` (stratified for classifiers).
    refit : bool, str or callable, default=True
        Refit ``clone(estimator).set_params(**best_params_)`` on the whole
        data, as ``GridSearchCV`` does.
    return_train_score : bool, default=True
        Score every member on its training fold too.
    error_score : "raise" or float, default=np.nan
        Score of a failed fit (a member whose weights became non-finite, or a
        standard fit that raised).
    verbose : int, default=0
        Print the plan and one line per stack (and per epoch when > 1).
    random_state : int, RandomState or None, default=None
        Seeds the members' initial weights, batch order, dropout and noise.
        ``None`` uses the estimator's ``random_state`` when it is an int.

    Attributes
    ----------
    cv_results_ : dict of ndarray
        GridSearchCV's keys, plus ``split{i}_best_epoch`` (1-based epoch
        whose weights a member kept) and ``split{i}_n_epochs`` (epochs it
        trained). Fit time of a stacked member is its stack's wall time
        divided by the stack's members (compilation included); score time
        is measured per member.
    best_estimator_ : estimator
        Refit on the whole data (when ``refit``).
    best_score_ : float
    best_params_ : dict
    best_index_ : int
    scorer_ : callable or dict
    n_splits_ : int
    refit_time_ : float
    multimetric_ : bool
    groups_ : list of CandidateGroup
        The stacks and standard-path candidates of the last ``fit``, with
        their wall times.

    See Also
    --------
    sklearn.model_selection.GridSearchCV : The same search, one fit at a time.

    Examples
    --------
    >>> import numpy as np, tunekit as tk
    >>> from tunekit.strategies.stacked import StackedSearchCV
    >>> X = np.random.RandomState(0).normal(size=(80, 4)).astype("float32")
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = tk.KerasClassifier(tk.builders.mlp, model__hidden=(8,), epochs=2)
    >>> search = StackedSearchCV(clf, {"model__l2": [0.0, 0.01]}, cv=3,
    ...                          refit=False, random_state=0).fit(X, y)
    >>> search.cv_results_["mean_test_score"].shape
    (2,)
    """

    _parameter_constraints: dict = {
        **{
            k: v
            for k, v in BaseSearchCV._parameter_constraints.items()
            if k not in ("n_jobs", "pre_dispatch")
        },
        "candidates": [dict, list, tuple, Iterable],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator: BaseEstimator,
        candidates: Mapping[str, Sequence] | Iterable[Mapping[str, Any]],
        *,
        scoring: Any = None,
        cv: Any = 5,
        refit: bool | str | Any = True,
        return_train_score: bool = True,
        error_score: float | str = np.nan,
        verbose: int = 0,
        random_state: int | np.random.RandomState | None = None,
    ):
        self.estimator = estimator
        self.candidates = candidates
        self.scoring = scoring
        self.cv = cv
        self.refit = refit
        self.return_train_score = return_train_score
        self.error_score = error_score
        self.verbose = verbose
        self.random_state = random_state

    # ------------------------------------------------------------------ helpers
    def _base_seed(self) -> int:
        rs = self.random_state
        if rs is None:
            est_rs = self.estimator.get_params(deep=False).get("random_state")
            if isinstance(est_rs, numbers.Integral):
                return int(est_rs)
        return int(check_random_state(rs).randint(0, 2**31 - 1))

    def _error_scores(self, scorers):
        if hasattr(scorers, "_scorers"):
            return {name: self.error_score for name in scorers._scorers}
        return self.error_score

    def _score(self, scorers, est, X, y):
        """Score like sklearn's ``_score``: failures give error_score (or raise)."""
        if self.error_score == "raise":
            scores = scorers(est, X, y)
        else:
            try:
                scores = scorers(est, X, y)
            except Exception as err:  # mirrors sklearn's error_score rule
                warnings.warn(
                    f"Scoring failed. The score on this train-test partition for these "
                    f"parameters will be set to {self.error_score}. Details: {err!r}",
                    UserWarning,
                    stacklevel=3,
                )
                return self._error_scores(scorers)
        if isinstance(scores, dict):
            clean = {}
            for name, value in scores.items():
                if isinstance(value, str):  # _MultimetricScorer reports a failure as text
                    if self.error_score == "raise":
                        raise RuntimeError(value)
                    value = self.error_score
                clean[name] = value
            return clean
        return scores

    def _record(self, scorers, est, X, y, train, test, fit_time, fit_error=None):
        entry = {"fit_time": fit_time, "fit_error": fit_error, "n_test_samples": len(test)}
        if fit_error is not None:
            entry["test_scores"] = self._error_scores(scorers)
            entry["score_time"] = 0.0
            if self.return_train_score:
                entry["train_scores"] = self._error_scores(scorers)
            return entry
        start = time.perf_counter()
        entry["test_scores"] = self._score(
            scorers, est, _safe_indexing(X, test), _safe_indexing(y, test)
        )
        entry["score_time"] = time.perf_counter() - start
        if self.return_train_score:
            entry["train_scores"] = self._score(
                scorers, est, _safe_indexing(X, train), _safe_indexing(y, train)
            )
        return entry

    # ------------------------------------------------------------------ standard path
    def _run_standard(self, base, cands, indices, splits, X, y, scorers, out, epochs):
        for c in indices:
            for s, (train, test) in enumerate(splits):
                est = clone(base).set_params(**clone(cands[c], safe=False))
                start = time.perf_counter()
                try:
                    est.fit(_safe_indexing(X, train), _safe_indexing(y, train))
                except Exception as err:
                    if self.error_score == "raise":
                        raise
                    out[c][s] = self._record(
                        scorers,
                        None,
                        X,
                        y,
                        train,
                        test,
                        time.perf_counter() - start,
                        fit_error=f"{type(err).__name__}: {err}",
                    )
                    continue
                fit_time = time.perf_counter() - start
                out[c][s] = self._record(scorers, est, X, y, train, test, fit_time)
                n_ep = getattr(est, "n_epochs_", None)
                best = getattr(est, "best_epoch_", None)
                epochs[0][c, s] = best if best is not None else (n_ep if n_ep else np.nan)
                epochs[1][c, s] = n_ep if n_ep is not None else np.nan

    # ------------------------------------------------------------------ stacked path
    def _run_stack(self, group, cands, data, splits, X, y, scorers, out, epochs, seeds):
        from tunekit.engine import MemberSpec, resolve_params, stack_config, train_stack
        from tunekit.engine.plan import MEMBER_KNOBS

        base = self.estimator.get_params(deep=False)
        classifier = data.task in ("binary", "multiclass")
        specs, where, failed = [], [], []
        for c in group.indices:
            member = resolve_params({**base, **cands[c]}).member
            for s, (train, _test) in enumerate(splits):
                seed_init, seed_split = int(seeds[c, s, 0]), int(seeds[c, s, 1])
                val = None
                fit_rows = train
                if member["patience"] is not None:
                    try:
                        fit_rows, val = _carve(
                            train,
                            data.codes,
                            member["validation_fraction"],
                            seed_split,
                            classifier,
                        )
                    except ValueError as err:
                        if self.error_score == "raise":
                            raise
                        failed.append((c, s, f"ValueError: {err}"))
                        continue
                specs.append(
                    MemberSpec(
                        train_idx=np.asarray(fit_rows),
                        val_idx=None if val is None else np.asarray(val),
                        epochs=member["epochs"],
                        patience=member["patience"],
                        learning_rate=member["learning_rate"],
                        seed=seed_init,
                        **{k: member[k] for k in MEMBER_KNOBS},
                    )
                )
                where.append((c, s))
        for c, s, msg in failed:
            out[c][s] = self._record(scorers, None, X, y, *splits[s], 0.0, fit_error=msg)
        if not specs:
            return
        config = stack_config(
            group.structure,
            task=data.task,
            n_features=data.X.shape[1],
            n_outputs=data.n_outputs,
            n_train_max=max(len(sp.train_idx) for sp in specs),
        )
        for lo in range(0, len(specs), MAX_STACK_MEMBERS):
            chunk = specs[lo : lo + MAX_STACK_MEMBERS]
            chunk_where = where[lo : lo + MAX_STACK_MEMBERS]
            c0, s0 = chunk_where[0]
            result = train_stack(
                config,
                chunk,
                data.X,
                data.Y,
                random_state=int(seeds[c0, s0, 2]),
                verbose=max(0, self.verbose - 1),
            )
            group.fit_time += result.fit_time
            group.epoch_times.extend(result.epoch_times.tolist())
            group.n_members += len(chunk)
            fit_time = result.fit_time / len(chunk)
            for m, (c, s) in enumerate(chunk_where):
                train, test = splits[s]
                epochs[0][c, s] = result.best_epoch[m]
                epochs[1][c, s] = result.n_epochs[m]
                if result.diverged[m]:
                    msg = (
                        f"training diverged: the weights of candidate {c} on split {s} "
                        "became non-finite. Lower the learning rate "
                        "(optimizer__learning_rate=...) or scale the inputs."
                    )
                    if self.error_score == "raise":
                        raise DivergedError(msg)
                    out[c][s] = self._record(
                        scorers,
                        None,
                        X,
                        y,
                        train,
                        test,
                        fit_time,
                        fit_error=f"DivergedError: {msg}",
                    )
                    continue
                est = self._member(config, data, result, m)
                out[c][s] = self._record(scorers, est, data.X, y, train, test, fit_time)

    @staticmethod
    def _member(config, data, result, m):
        if data.task == "regression":
            est = StackedMemberRegressor()
            est.n_outputs_ = data.n_outputs
            est.y_ndim_ = data.y_ndim
        else:
            est = StackedMemberClassifier()
            est.classes_ = data.classes
        est.weights_ = result.weights[m]
        est.n_features_in_ = config.n_features
        est.activation_ = config.activation
        est.output_activation_ = config.output_activation
        est.best_epoch_ = int(result.best_epoch[m])
        est.n_epochs_ = int(result.n_epochs[m])
        return est

    # ------------------------------------------------------------------ plan
    def _plan(self, cands, X, y, splits):
        """Stacks and standard-path candidates, once the data is known."""
        from tunekit.engine import resolve_params, stack_config

        plan = stack_plan(self.estimator, cands)
        if not any(g.stacked for g in plan):
            return plan, None
        data = _prepare(self.estimator, X, y)
        if data.task is None:
            return [CandidateGroup([i], None, data.reason) for g in plan for i in g.indices], data
        base = self.estimator.get_params(deep=False)
        n_max = max(len(tr) for tr, _ in splits)
        checked = []
        for g in plan:
            if not g.stacked:
                checked.append(g)
                continue
            try:
                stack_config(
                    g.structure,
                    task=data.task,
                    n_features=data.X.shape[1],
                    n_outputs=data.n_outputs,
                    n_train_max=n_max,
                )
            except ValueError as err:
                checked.extend(CandidateGroup([i], None, str(err)) for i in g.indices)
                continue
            if data.task == "regression":
                # mlp() rejects label smoothing without a cross-entropy loss: let the
                # standard path raise its own error for those candidates.
                smooth = [
                    i
                    for i in g.indices
                    if resolve_params({**base, **cands[i]}).member["label_smoothing"] > 0
                ]
                checked.extend(
                    CandidateGroup([i], None, "label_smoothing needs a classification loss")
                    for i in smooth
                )
                g.indices = [i for i in g.indices if i not in smooth]
                if not g.indices:
                    continue
            checked.append(g)
        return checked, data

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, *, groups=None):
        """Run the search: every candidate on every split, stacked where possible.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target.
        groups : array-like of shape (n_samples,), default=None
            Group labels for group-aware splitters.

        Returns
        -------
        self : object
            The fitted search.
        """
        self._validate_params()
        scorers, refit_metric = self._get_scorers()
        X, y = indexable(X, y)
        cands = _candidate_list(self.candidates)
        cv = check_cv(self.cv, y, classifier=_task_of(self.estimator) == "classifier")
        splits = [(np.asarray(tr), np.asarray(te)) for tr, te in cv.split(X, y, groups)]
        self.n_splits_ = n_splits = len(splits)
        n_cand = len(cands)
        if self.verbose > 0:
            print(
                f"Fitting {n_splits} folds for each of {n_cand} candidates, "
                f"totalling {n_cand * n_splits} fits"
            )

        plan, data = self._plan(cands, X, y, splits)
        if self.verbose > 0:
            for g in plan:
                what = "stack" if g.stacked else f"standard path ({g.reason})"
                print(f"  candidates {g.indices}: {what}")

        out = [[None] * n_splits for _ in range(n_cand)]
        epochs = (np.full((n_cand, n_splits), np.nan), np.full((n_cand, n_splits), np.nan))
        seeds = _member_seeds(self._base_seed(), n_cand, n_splits)
        base = clone(self.estimator)
        for g in plan:
            start = time.perf_counter()
            if g.stacked:
                self._run_stack(g, cands, data, splits, X, y, scorers, out, epochs, seeds)
                if self.verbose > 0:
                    print(f"  stack of {g.n_members} members: {g.fit_time:.2f} s")
            else:
                self._run_standard(base, cands, g.indices, splits, X, y, scorers, out, epochs)
                g.fit_time = time.perf_counter() - start
                g.n_members = len(g.indices) * n_splits
        self.groups_ = plan

        flat = [out[c][s] for c in range(n_cand) for s in range(n_splits)]
        self._check_failures(flat)
        self._fill_error_keys(flat)
        first = flat[0]["test_scores"]
        self.multimetric_ = isinstance(first, dict)
        if callable(self.scoring) and self.multimetric_:
            self._check_refit_for_multimetric(first)
            refit_metric = self.refit
        results = self._format_results(cands, n_splits, flat)
        for s in range(n_splits):
            results[f"split{s}_best_epoch"] = epochs[0][:, s]
        for s in range(n_splits):
            results[f"split{s}_n_epochs"] = epochs[1][:, s]

        if self.refit or not self.multimetric_:
            self.best_index_ = self._select_best_index(self.refit, refit_metric, results)
            if not callable(self.refit):
                self.best_score_ = results[f"mean_test_{refit_metric}"][self.best_index_]
            self.best_params_ = results["params"][self.best_index_]
        if self.refit:
            self.best_estimator_ = clone(base).set_params(**clone(self.best_params_, safe=False))
            start = time.perf_counter()
            self.best_estimator_.fit(X, y)
            self.refit_time_ = time.perf_counter() - start
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        self.scorer_ = scorers._scorers if hasattr(scorers, "_scorers") else scorers
        self.cv_results_ = results
        return self

    def _check_failures(self, flat):
        errors = [e["fit_error"] for e in flat if e["fit_error"] is not None]
        if not errors:
            return
        if len(errors) == len(flat):
            raise SearchFailedError(
                f"All the {len(flat)} fits failed. The first error was:\n{errors[0]}\n"
                "Check the candidates' parameters, or set error_score='raise' to see the "
                "traceback."
            )
        warnings.warn(
            f"{len(errors)} fits failed out of a total of {len(flat)}. The score on these "
            f"train-test partitions will be set to {self.error_score}. First error: "
            f"{errors[0]}",
            FitFailedWarning,
            stacklevel=3,
        )

    def _fill_error_keys(self, flat):
        """Give failed entries the metric names of successful ones (callable scorers)."""
        template = next((e["test_scores"] for e in flat if e["fit_error"] is None), None)
        if not isinstance(template, dict):
            return
        for e in flat:
            if e["fit_error"] is not None and not isinstance(e["test_scores"], dict):
                e["test_scores"] = {k: self.error_score for k in template}
                if self.return_train_score:
                    e["train_scores"] = {k: self.error_score for k in template}

    def _run_search(self, evaluate_candidates):  # pragma: no cover - fit() is overridden
        raise NotImplementedError("StackedSearchCV.fit runs the search itself")

"""The stacked evaluator: candidates x folds trained as members of one compiled model.

Every (candidate, fold) pair whose candidate the engine can reproduce
(:func:`tunekit.engine.resolve_params`) becomes a *member*; members that share
a structure (architecture, optimizer, batch size) train side by side
(:func:`tunekit.engine.train_stack`). A pipeline ending in a tunekit
estimator stacks too: its other steps are fitted on each fold's training rows
and transform that fold's rows, so each (fold, preprocessing variant) is one
transformed copy of ``X``. Candidates the engine cannot reproduce go to the
standard evaluator; both land in the same entries.

Seeds follow the standard path's rule: with an integer ``random_state`` on
the estimator, every member starts from that seed (initial weights, batch
order, dropout and noise draws, the early-stopping split), whatever stack or
position it trains in; with ``None``, every member draws fresh seeds.
"""

from __future__ import annotations

import math
import numbers
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    clone,
    is_classifier,
    is_regressor,
)
from sklearn.model_selection import ParameterGrid, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

from tunekit.evaluators._base import (
    Evaluation,
    Evaluator,
    _freeze,
    _score,
    epoch_families,
    fail_entry,
    main_score,
    score_entry,
)
from tunekit.evaluators.standard import StandardEvaluator
from tunekit.exceptions import DivergedError

__all__ = [
    "MAX_STACK_MEMBERS",
    "CandidateGroup",
    "StackedEvaluator",
    "StackedMemberClassifier",
    "StackedMemberRegressor",
    "can_stack",
    "stack_plan",
]

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
    keras: object = None  # the any-builder path's group (tunekit.engine.keras_stack)

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


def split_pipeline(estimator):
    """``(preprocessing, final, prefix)``: a pipeline's steps before its last one, the last
    step and the prefix of its parameters (``""``, ``None`` for a bare estimator)."""
    if not isinstance(estimator, Pipeline):
        return None, estimator, ""
    name, final = estimator.steps[-1]
    inner, _, _ = split_pipeline(final)
    if inner is not None:  # a pipeline nested as the last step: not unpacked
        return estimator, final, None
    return (estimator[:-1] if len(estimator.steps) > 1 else None), final, f"{name}__"


def split_params(candidate: Mapping, prefix: str) -> tuple[dict, dict]:
    """A candidate's preprocessing parameters and its last step's (prefix removed)."""
    pre, final = {}, {}
    for key, value in candidate.items():
        if prefix and key.startswith(prefix):
            final[key[len(prefix) :]] = value
        elif not prefix:
            final[key] = value
        else:
            pre[key] = value
    return pre, final


def stack_plan(estimator: BaseEstimator, candidates) -> list[CandidateGroup]:
    """Group candidates into stacks; list the rest with the reason.

    Parameters
    ----------
    estimator : estimator object
        A :class:`tunekit.KerasClassifier` or :class:`tunekit.KerasRegressor`
        (any estimator whose ``get_params()`` the engine understands), or a
        :class:`~sklearn.pipeline.Pipeline` ending in one: its other steps'
        parameters make fold data, not stacks.
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
    _, final, prefix = split_pipeline(estimator)
    stacks: dict[tuple, CandidateGroup] = {}
    singles = []
    if prefix is None:
        reason = "a pipeline nested as the last step of a pipeline is not stacked"
        return [CandidateGroup([i], None, reason) for i in range(len(cands))]
    base = final.get_params(deep=False)
    step = prefix[:-2]
    for i, cand in enumerate(cands):
        if step and step in cand:
            singles.append(CandidateGroup([i], None, f"the candidate replaces the step {step!r}"))
            continue
        _, own = split_params(cand, prefix)
        res = resolve_params({**base, **own})
        if res.stackable:
            stacks.setdefault(res.structure, CandidateGroup([], res.structure)).indices.append(i)
        else:
            singles.append(CandidateGroup([i], None, res.reason))
    return [*stacks.values(), *singles]


def can_stack(estimator: BaseEstimator, candidates) -> bool:
    """Whether every candidate can run on the stacked engine.

    ``True`` means the stacked evaluator will train every candidate stacked (the data
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
        """Not available: members are trained by the stacked engine.

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


# ---------------------------------------------------------------------- data
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


def _prepare(estimator, y) -> _Data:
    """Encode y for the loss; say why not if the target cannot be stacked."""
    kind = _task_of(estimator)
    if kind is None:
        return _Data(None, reason="the estimator is neither a classifier nor a regressor")
    y_arr = np.asarray(y)
    if kind == "classifier":
        target = type_of_target(y_arr)
        if target not in ("binary", "multiclass") or y_arr.ndim != 1:
            return _Data(None, reason=f"a {target} target is not stacked")
        classes, codes = np.unique(y_arr, return_inverse=True)
        if target == "binary" or len(classes) == 2:
            return _Data("binary", None, codes[:, None].astype("float32"), codes, classes, 1)
        Y = np.eye(len(classes), dtype="float32")[codes]
        return _Data("multiclass", None, Y, codes, classes, len(classes))
    try:
        ya = y_arr.astype("float32")
    except (TypeError, ValueError):
        return _Data(None, reason="y is not numeric")
    if ya.ndim not in (1, 2) or not np.all(np.isfinite(ya)):
        return _Data(None, reason="y is not a finite 1-D or 2-D array")
    Y = ya[:, None] if ya.ndim == 1 else ya
    return _Data("regression", None, Y, None, None, Y.shape[1], ya.ndim)


def _matrix(X, any_shape: bool = False) -> tuple[np.ndarray | None, str | None]:
    """``X`` as a float32 array (2-D unless ``any_shape``), or why it cannot be stacked."""
    try:
        Xa = np.asarray(X, dtype="float32")
    except (TypeError, ValueError):
        return None, "X is not numeric"
    if (Xa.ndim != 2 and not any_shape) or not np.all(np.isfinite(Xa)):
        return None, "X is not a finite 2-D array" if not any_shape else "X is not finite"
    return Xa, None


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


# ---------------------------------------------------------------------- seeds
class _Seeds:
    """The seed rule of the standard path, for members.

    With an integer ``random_state`` on the estimator every member gets the
    same seeds, as every ``clone(estimator).fit`` starts from that seed; with
    ``None`` every member draws fresh ones. ``fallback`` stands in for an
    estimator that has no integer seed (:class:`StackedSearchCV`'s
    ``random_state``).
    """

    def __init__(self, final, fallback=None):
        seed = final.get_params(deep=False).get("random_state")
        if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
            self.base = int(seed)
        elif fallback is not None:
            self.base = int(check_random_state(fallback).randint(0, 2**31 - 1))
        else:
            self.base = None
        self._fresh = np.random.default_rng()

    def draw(self) -> tuple[int, int, int]:
        """Seeds of a member's initial weights, random streams and early-stopping split."""
        if self.base is not None:
            return self.base, self.base ^ 0x5BD1E995, self.base
        init, stream, carve = self._fresh.integers(0, 2**31 - 1, size=3)
        return int(init), int(stream), int(carve)


# ---------------------------------------------------------------------- the evaluator
@dataclass
class _Slot:
    """A member in a stack: which family, which fold, where its copy of X starts."""

    family: object
    fold: int
    offset: int


@dataclass
class _Copies:
    """The transformed copies of X one group trains on (one per variant and fold)."""

    X: np.ndarray | None = None
    where: dict = field(default_factory=dict)  # (variant, fold) -> (offset, width) or reason
    n_copies: int = 0


class StackedEvaluator(Evaluator):
    """Cross-validate candidates on the stacked engine; the rest on the standard path.

    Parameters
    ----------
    strict : bool, default=False
        Raise a :class:`ValueError` naming the candidate's parameter and the
        reason, before any training, when a candidate cannot be stacked
        (``tunekit.search(engine="stacked")``). Otherwise such candidates take
        the standard path.
    random_state : int, RandomState or None, default=None
        Seeds members whose estimator has no integer ``random_state``.
    fallback : StandardEvaluator or None, default=None
        Evaluates the candidates that cannot be stacked.
    on_epoch : callable or None, default=None
        ``on_epoch(epoch, scores)`` after every epoch of a stack, with
        ``scores`` mapping each training candidate (its position in the
        batch) to its folds' test scores at that epoch, all folds in lockstep.
        It returns the candidates to stop (e.g. pruned Optuna trials): their
        members are frozen at once and the candidates are listed in
        :attr:`Evaluation.pruned`. Needs ``epoch_curves=True``.
    **kwargs
        :class:`~tunekit.evaluators.Evaluator`'s settings.

    Attributes
    ----------
    groups_ : list of CandidateGroup
        The stacks and standard-path candidates of the last batch.
    """

    name = "stacked"

    def __init__(
        self, *, strict: bool = False, random_state=None, fallback=None, on_epoch=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.strict = strict
        self.random_state = random_state
        self.fallback = fallback
        self.on_epoch = on_epoch

    # ------------------------------------------------------------------ plan
    def plan(self, estimator, candidates, y=None, fit_params=None) -> list[CandidateGroup]:
        """Stacks and standard-path candidates, with what the target and arguments say."""
        from tunekit.engine import resolve_params

        groups = stack_plan(estimator, candidates)
        _, final, prefix = split_pipeline(estimator)
        reason = None
        if fit_params:
            reason = f"fit_params ({', '.join(fit_params)}) cannot reach stacked members"
        elif y is not None and prefix is not None:
            data = _prepare(final, y)
            reason = data.reason
            if data.task == "regression":
                base = final.get_params(deep=False)
                out = []
                for g in groups:
                    smooth = [
                        i
                        for i in g.indices
                        if g.stacked
                        and resolve_params(
                            {**base, **split_params(candidates[i], prefix)[1]}
                        ).member["label_smoothing"]
                        > 0
                    ]
                    out.extend(
                        CandidateGroup([i], None, "label_smoothing needs a classification loss")
                        for i in smooth
                    )
                    g.indices = [i for i in g.indices if i not in smooth]
                    if g.indices:
                        out.append(g)
                groups = sorted(out, key=lambda g: not g.stacked)
        if reason is not None:
            return [CandidateGroup([i], None, reason) for g in groups for i in g.indices]
        return groups

    def _refuse(self, candidates, groups) -> None:
        singles = [g for g in groups if not g.stacked]
        if not singles:
            return
        g = singles[0]
        params = ", ".join(f"{k}={v!r}" for k, v in candidates[g.indices[0]].items())
        raise ValueError(
            f"engine='stacked' cannot stack candidate {g.indices[0]} ({params or 'defaults'}): "
            f"{g.reason}. Use engine='auto' to train such candidates the standard way, or "
            "engine='sklearn' for all of them."
        )

    def _fallback(self) -> StandardEvaluator:
        if self.fallback is not None:
            return self.fallback
        return StandardEvaluator(
            error_score=self.error_score,
            return_train_score=self.return_train_score,
            epoch_curves=self.epoch_curves,
            progress=self.progress,
            verbose=self.verbose,
        )

    # ------------------------------------------------------------------ evaluate
    def evaluate(self, estimator, candidates, splits, X, y, *, scorers, fit_params=None):
        candidates = list(candidates)
        groups = self.plan(estimator, candidates, y, fit_params)
        if not fit_params:
            groups = self._any_builder(estimator, candidates, groups, splits, X, y)
        if self.strict:
            self._refuse(candidates, groups)
        self.groups_ = groups
        if self.verbose > 0:
            for g in groups:
                what = "stack" if g.stacked else f"standard path ({g.reason})"
                print(f"  candidates {g.indices}: {what}")
        evaluation = Evaluation(
            entries=[[None] * len(splits) for _ in candidates],
            engines=["sklearn"] * len(candidates),
        )
        for g in groups:
            start = time.perf_counter()
            rest = g.indices
            if g.keras is not None:
                rest = self._run_keras(g, candidates, splits, X, y, scorers, evaluation, estimator)
            elif g.stacked:
                rest = self._run_group(g, candidates, splits, X, y, scorers, evaluation, estimator)
            if rest:
                sub = self._fallback().evaluate(
                    estimator,
                    [candidates[i] for i in rest],
                    splits,
                    X,
                    y,
                    scorers=scorers,
                    fit_params=fit_params,
                )
                evaluation.merge(sub, list(rest))
                g.n_members += len(rest) * len(splits)
            g.fit_time = time.perf_counter() - start
        return evaluation

    # ------------------------------------------------------------------ data
    def _copies(self, pre, prefix, cands, splits, X, y, variants, any_shape=False) -> _Copies:
        """One float32 copy of X per (preprocessing variant, fold); the reason where not."""
        if pre is None:
            Xa, why = _matrix(X, any_shape)
            if why is not None:
                return _Copies(None, {(None, s): why for s in range(len(splits))})
            width = Xa.shape[1] if Xa.ndim > 1 else 1
            return _Copies(Xa, {(None, s): (0, width) for s in range(len(splits))}, 1)
        from sklearn.utils import _safe_indexing

        blocks, where, offset = [], {}, 0
        for key, members in variants.items():
            pre_params, _ = split_params(cands[members[0]], prefix)
            for s, (train, _test) in enumerate(splits):
                try:
                    steps = clone(pre).set_params(**clone(pre_params, safe=False))
                    steps.fit(_safe_indexing(X, train), _safe_indexing(y, train))
                    Xt, why = _matrix(steps.transform(X), any_shape)
                    if why is not None:
                        raise ValueError(f"the pipeline's steps before its last give: {why}")
                except Exception:
                    if isinstance(self.error_score, str) and self.error_score == "raise":
                        raise
                    where[(key, s)] = traceback.format_exc()
                    continue
                where[(key, s)] = (offset, Xt.shape[1] if Xt.ndim > 1 else 1)
                blocks.append(Xt)
                offset += Xt.shape[0]
        X_all = np.concatenate(blocks) if blocks else None
        return _Copies(X_all, where, len(blocks))

    # ------------------------------------------------------------------ any builder
    def _any_builder(self, estimator, candidates, groups, splits, X, y):
        """Send the candidates ``mlp()``'s engine cannot take to the any-builder path."""
        singles = [g for g in groups if not g.stacked]
        pre, final, prefix = split_pipeline(estimator)
        if not singles or prefix is None or _task_of(final) is None:
            return groups
        if any(prefix and prefix[:-2] in candidates[i] for g in singles for i in g.indices):
            return groups  # a candidate replaces the last step: nothing to probe
        from tunekit.engine import keras_stack

        index = [i for g in singles for i in g.indices]
        own = [split_params(candidates[i], prefix)[1] for i in index]
        try:
            sample = X
            if pre is not None:
                pre_params = split_params(candidates[index[0]], prefix)[0]
                steps = clone(pre).set_params(**clone(pre_params, safe=False))
                sample = steps.fit(X, y).transform(X)  # shapes only: nothing is trained
            found = keras_stack.probe(final, own, sample, y)
        except Exception as err:  # a builder that cannot even be built: the standard path says
            self._log(f"the any-builder path cannot probe these candidates: {err}")
            return groups
        out = [g for g in groups if g.stacked]
        for kg in found:
            members = [index[c] for c in kg.indices]
            if kg.stackable:
                out.append(CandidateGroup(members, ("keras", id(kg)), None, keras=kg))
            else:
                out.extend(CandidateGroup([i], None, kg.reason) for i in members)
        return out

    def _log(self, message: str) -> None:
        import logging

        logging.getLogger("tunekit").info(message)

    def _run_keras(self, group, candidates, splits, X, y, scorers, evaluation, estimator):
        """Train a group of any builder's candidates on :mod:`tunekit.engine.keras_stack`."""
        from tunekit.engine import keras_stack

        pre, final, prefix = split_pipeline(estimator)
        kg = group.keras
        cands = [candidates[i] for i in group.indices]
        variants: dict = {}
        for k, cand in enumerate(cands):
            key = _freeze(split_params(cand, prefix)[0]) if pre is not None else None
            variants.setdefault(key, []).append(k)
        copies = self._copies(pre, prefix, cands, splits, X, y, variants, any_shape=True)
        if copies.X is None and pre is None:
            return group.indices
        n_copies = max(copies.n_copies, 1)
        y_all = np.concatenate([np.asarray(y)] * n_copies)
        members, slots = self._keras_members(
            group, cands, splits, y, copies, final, pre, prefix, scorers, evaluation
        )
        if not members:
            return []
        curve = {}
        spent = [0.0]

        def on_epoch_end(epoch, result):
            if not self.epoch_curves:
                return
            tick = time.perf_counter()
            for m, (_, s, offset) in enumerate(slots):
                if result.n_epochs[m] != epoch + 1:
                    continue  # this member did not train this epoch
                rows = splits[s][1] + offset
                est = keras_stack.member_estimator(result, m)
                curve[m, epoch + 1] = main_score(
                    _score(scorers, est, copies.X[rows], y_all[rows], np.nan)
                )
            spent[0] += time.perf_counter() - tick

        result = keras_stack.train_group(kg, members, copies.X, y_all, on_epoch_end=on_epoch_end)
        group.fit_time += result.fit_time
        group.n_members += len(members)
        evaluation.n_trained += len(members)
        evaluation.n_epochs += int(np.sum(result.n_epochs))
        fit_time = (result.fit_time - spent[0]) / len(members)
        loss, val_loss = result.history.get("loss"), result.history.get("val_loss")
        for m, (index, s, offset) in enumerate(slots):
            train, test = splits[s]
            if result.diverged is not None and result.diverged[m]:
                entry = fail_entry(
                    scorers, len(test), fit_time,
                    f"DivergedError: training diverged: the weights of candidate {index} on "
                    f"split {s} became non-finite. Lower the learning rate or scale the inputs.",
                    error_score=self.error_score, train=self.return_train_score,
                )  # fmt: skip
            else:
                entry = score_entry(
                    scorers, keras_stack.member_estimator(result, m), copies.X, y_all,
                    train + offset, test + offset, fit_time, error_score=self.error_score,
                    train_score=self.return_train_score, best_epoch=result.best_epoch[m],
                    n_epochs=result.n_epochs[m],
                )  # fmt: skip
            evaluation.entries[index][s] = entry
            evaluation.engines[index] = self.name
            if self.epoch_curves and loss is not None:
                evaluation.curves.extend(
                    {
                        "candidate": index, "fold": s, "epoch": e,
                        "train_loss": float(loss[e - 1, m]),
                        "test_score": curve.get((m, e), math.nan),
                        "val_loss": float(val_loss[e - 1, m]) if val_loss is not None
                        else math.nan,
                    }
                    for e in range(1, int(result.n_epochs[m]) + 1)
                )  # fmt: skip
            self._tick()
        return []

    def _keras_members(self, group, cands, splits, y, copies, final, pre, prefix, scorers, ev):
        """The any-builder path's members (candidate x fold) and where each one's rows live."""
        from tunekit.engine import keras_stack

        kg = group.keras
        evaluation = ev
        data = _prepare(final, y)
        seeds = _Seeds(final, self.random_state)
        base = final.get_params(deep=False)
        members, slots = [], []
        for k, index in enumerate(group.indices):
            c = kg.indices[k]
            key = _freeze(split_params(cands[k], prefix)[0]) if pre is not None else None
            fraction = {**base, **split_params(cands[k], prefix)[1]}.get("validation_fraction")
            for s, (train, test) in enumerate(splits):
                copy = copies.where[(key, s)]
                init, _, carve_seed = seeds.draw()
                if isinstance(copy, str):
                    self._fail_one(evaluation, index, s, len(test), scorers, copy)
                    continue
                offset = copy[0]
                fit_rows, val = train, None
                if kg.patience.get(c) is not None:
                    try:
                        fit_rows, val = _carve(
                            train, data.codes, fraction, carve_seed, data.codes is not None
                        )
                    except ValueError as err:
                        reason = f"ValueError: {err}"
                        self._fail_one(evaluation, index, s, len(test), scorers, reason)
                        continue
                members.append(
                    keras_stack.KerasMember(
                        candidate=c,
                        train_idx=np.asarray(fit_rows) + offset,
                        val_idx=None if val is None else np.asarray(val) + offset,
                        seed=init,
                    )
                )
                slots.append((index, s, offset))
        return members, slots

    def _fail_one(self, evaluation, index, s, n_test, scorers, reason) -> None:
        evaluation.entries[index][s] = fail_entry(
            scorers, n_test, 0.0, reason, error_score=self.error_score,
            train=self.return_train_score,
        )  # fmt: skip
        evaluation.engines[index] = self.name
        self._tick()

    # ------------------------------------------------------------------ a stack group
    def _run_group(self, group, candidates, splits, X, y, scorers, evaluation, estimator):
        """Train one structure's members; return the candidates left to the standard path."""
        from tunekit.engine import resolve_params

        pre, final, prefix = split_pipeline(estimator)
        cands = [candidates[i] for i in group.indices]
        data = _prepare(final, y)
        variants: dict = {}
        for k, cand in enumerate(cands):
            key = _freeze(split_params(cand, prefix)[0]) if pre is not None else None
            variants.setdefault(key, []).append(k)
        copies = self._copies(pre, prefix, cands, splits, X, y, variants)
        if copies.X is None and all(isinstance(w, str) for w in copies.where.values()):
            reason = next(iter(copies.where.values()), "no data")
            if pre is None:  # X itself cannot be stacked: the standard path says why
                if self.strict:
                    self._refuse(candidates, [CandidateGroup(group.indices, None, reason)])
                return group.indices
        y_arr = np.asarray(y)
        y_all = np.concatenate([y_arr] * max(copies.n_copies, 1))
        Y_all = np.tile(data.Y, (max(copies.n_copies, 1), 1))
        base = final.get_params(deep=False)
        seeds = _Seeds(final, self.random_state)
        classifier = data.task in ("binary", "multiclass")
        by_width: dict[int, tuple[list, list]] = {}
        for family in epoch_families(estimator, cands):
            lead = cands[family.leader]
            member = resolve_params({**base, **split_params(lead, prefix)[1]}).member
            key = _freeze(split_params(lead, prefix)[0]) if pre is not None else None
            for s, (train, test) in enumerate(splits):
                copy = copies.where[(key, s)]
                init, stream, carve_seed = seeds.draw()
                fit_rows, val = train, None
                if isinstance(copy, str):
                    self._fail(evaluation, group, family, s, len(test), scorers, copy)
                    continue
                if member["patience"] is not None:
                    try:
                        fit_rows, val = _carve(
                            train,
                            data.codes,
                            member["validation_fraction"],
                            carve_seed,
                            classifier,
                        )
                    except ValueError as err:
                        if isinstance(self.error_score, str) and self.error_score == "raise":
                            raise
                        reason = f"ValueError: {err}"
                        self._fail(evaluation, group, family, s, len(test), scorers, reason)
                        continue
                offset, width = copy
                spec = _member_spec(member, fit_rows + offset, val, offset, init, stream)
                specs, slots = by_width.setdefault(width, ([], []))
                specs.append(spec)
                slots.append(_Slot(family, s, offset))
        rest = []
        for width, (specs, slots) in by_width.items():
            try:
                config = stack_config(
                    group.structure,
                    task=data.task,
                    n_features=width,
                    n_outputs=data.n_outputs,
                    n_train_max=max(len(sp.train_idx) for sp in specs),
                )
            except ValueError as err:
                if self.strict:
                    self._refuse(candidates, [CandidateGroup(group.indices, None, str(err))])
                rest.extend(
                    group.indices[c] for slot in slots for c in slot.family.epochs if slot.fold == 0
                )
                continue
            for lo in range(0, len(specs), MAX_STACK_MEMBERS):
                self._train_chunk(
                    config,
                    specs[lo : lo + MAX_STACK_MEMBERS],
                    slots[lo : lo + MAX_STACK_MEMBERS],
                    copies.X,
                    Y_all,
                    y_all,
                    splits,
                    data,
                    scorers,
                    evaluation,
                    group,
                )
        return sorted(set(rest))

    def _fail(self, evaluation, group, family, s, n_test, scorers, reason) -> None:
        for c in family.epochs:
            evaluation.entries[group.indices[c]][s] = fail_entry(
                scorers,
                n_test,
                0.0,
                reason,
                error_score=self.error_score,
                train=self.return_train_score,
            )
            evaluation.engines[group.indices[c]] = self.name
        self._tick(len(family.epochs))

    def _train_chunk(
        self, config, specs, slots, X_all, Y_all, y_all, splits, data, scorers, evaluation, group
    ):
        from tunekit.engine import train_stack

        wanted = [
            {e for c, e in slot.family.epochs.items() if e != specs[m].epochs}
            for m, slot in enumerate(slots)
        ]
        snaps, curve = {}, {}
        spent = [0.0]
        start = time.perf_counter()

        def on_epoch_end(epoch, params, active):
            tick = time.perf_counter()
            for m, slot in enumerate(slots):
                if not active[m] or not (self.epoch_curves or epoch in wanted[m]):
                    continue
                est = _member(config, data, [p[m] for p in params], epoch, epoch)
                train, test = splits[slot.fold]
                rows = test + slot.offset
                if epoch in wanted[m]:
                    share = (tick - start - spent[0]) / len(specs)
                    snaps[m, epoch] = score_entry(
                        scorers,
                        est,
                        X_all,
                        y_all,
                        train + slot.offset,
                        rows,
                        share,
                        error_score=self.error_score,
                        train_score=self.return_train_score,
                        best_epoch=epoch,
                        n_epochs=epoch,
                    )
                    curve[m, epoch] = main_score(snaps[m, epoch]["test_scores"])
                else:
                    scores = _score(scorers, est, X_all[rows], y_all[rows], np.nan)
                    curve[m, epoch] = main_score(scores)
            halt = self._halt(epoch, active, slots, group, curve, evaluation)
            spent[0] += time.perf_counter() - tick
            return halt

        result = train_stack(
            config,
            specs,
            X_all,
            Y_all,
            verbose=max(0, self.verbose - 1),
            on_epoch_end=on_epoch_end,
        )
        group.fit_time += result.fit_time
        group.epoch_times.extend(result.epoch_times.tolist())
        group.n_members += len(specs)
        evaluation.n_trained += len(specs)
        evaluation.n_epochs += int(np.sum(result.n_epochs))
        fit_time = (result.fit_time - spent[0]) / len(specs)
        for m, slot in enumerate(slots):
            self._finish_member(
                m,
                slot,
                result,
                config,
                data,
                X_all,
                y_all,
                splits,
                scorers,
                evaluation,
                group,
                fit_time,
                snaps,
                curve,
            )

    def _halt(self, epoch, active, slots, group, curve, evaluation):
        """Ask ``on_epoch`` which candidates stop; return their members."""
        if self.on_epoch is None:
            return None
        scores: dict = {}
        for m, slot in enumerate(slots):
            if active[m] and (m, epoch) in curve:
                lead = group.indices[slot.family.leader]
                scores.setdefault(lead, []).append(curve[m, epoch])
        stop = set(self.on_epoch(epoch, scores) or ())
        for c in stop:
            evaluation.pruned.setdefault(c, epoch)
        return [m for m, slot in enumerate(slots) if group.indices[slot.family.leader] in stop]

    def _finish_member(
        self,
        m,
        slot,
        result,
        config,
        data,
        X_all,
        y_all,
        splits,
        scorers,
        evaluation,
        group,
        fit_time,
        snaps,
        curve,
    ):
        train, test = splits[slot.fold]
        s = slot.fold
        family = slot.family
        lead_epochs = family.epochs[family.leader]
        if result.diverged[m]:
            msg = (
                f"training diverged: the weights of candidate {group.indices[family.leader]} "
                f"on split {s} became non-finite. Lower the learning rate "
                "(optimizer__learning_rate=...) or scale the inputs."
            )
            if isinstance(self.error_score, str) and self.error_score == "raise":
                raise DivergedError(msg)
            lead = fail_entry(
                scorers,
                len(test),
                fit_time,
                f"DivergedError: {msg}",
                error_score=self.error_score,
                train=self.return_train_score,
            )
        else:
            est = _member(config, data, result.weights[m], result.best_epoch[m], result.n_epochs[m])
            lead = score_entry(
                scorers,
                est,
                X_all,
                y_all,
                train + slot.offset,
                test + slot.offset,
                fit_time,
                error_score=self.error_score,
                train_score=self.return_train_score,
                best_epoch=result.best_epoch[m],
                n_epochs=result.n_epochs[m],
            )
        loss = result.history.get("loss")
        val = result.history.get("val_loss")
        for c, epochs in family.epochs.items():
            index = group.indices[c]
            if epochs == lead_epochs:
                entry = lead
            else:
                entry = snaps.get((m, epochs)) or fail_entry(
                    scorers,
                    len(test),
                    fit_time,
                    lead["fit_error"] or "not trained that far",
                    error_score=self.error_score,
                    train=self.return_train_score,
                )
            evaluation.entries[index][s] = entry
            evaluation.engines[index] = self.name
            if not self.epoch_curves:
                continue
            last = min(int(epochs), int(result.n_epochs[m]))
            evaluation.curves.extend(
                {
                    "candidate": index,
                    "fold": s,
                    "epoch": e,
                    "train_loss": float(loss[e - 1, m]),
                    "test_score": curve.get((m, e), math.nan),
                    "val_loss": float(val[e - 1, m]) if val is not None else math.nan,
                }
                for e in range(1, last + 1)
            )
        self._tick(len(family.epochs))


def _member_spec(member, fit_rows, val, offset, init, stream):
    from tunekit.engine import MemberSpec
    from tunekit.engine.plan import MEMBER_KNOBS

    return MemberSpec(
        train_idx=np.asarray(fit_rows),
        val_idx=None if val is None else np.asarray(val) + offset,
        epochs=member["epochs"],
        patience=member["patience"],
        learning_rate=member["learning_rate"],
        seed=init,
        stream_seed=stream,
        **{k: member[k] for k in MEMBER_KNOBS},
    )


def _member(config, data, weights, best_epoch, n_epochs):
    """A trained member as a fitted estimator the search's scorer can score."""
    if data.task == "regression":
        est = StackedMemberRegressor()
        est.n_outputs_ = data.n_outputs
        est.y_ndim_ = data.y_ndim
    else:
        est = StackedMemberClassifier()
        est.classes_ = data.classes
    est.weights_ = weights
    est.n_features_in_ = config.n_features
    est.activation_ = config.activation
    est.output_activation_ = config.output_activation
    est.best_epoch_ = int(best_epoch)
    est.n_epochs_ = int(n_epochs)
    return est


def stack_config(*args, **kwargs):
    """:func:`tunekit.engine.stack_config`, imported on first use (it loads Keras)."""
    from tunekit.engine import stack_config as make

    return make(*args, **kwargs)

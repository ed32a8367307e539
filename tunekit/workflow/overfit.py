"""Step 1 of the lecture: can the model overfit a small subset of the training data?"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.metrics import check_scoring
from sklearn.model_selection import train_test_split
from sklearn.utils import indexable

from tunekit.evaluators.standard import is_keras_estimator
from tunekit.strategies.scoring import final_estimator, scorer_name

__all__ = ["OverfitCheck", "overfit_check", "take"]


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
    X_tr, y_tr, X_val, y_val = take(X, train), take(y, train), take(X, val), take(y, val)
    fit_kwargs = {}
    if is_keras_estimator(model) and not hasattr(model, "steps"):  # TensorFlow not loaded
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


def take(data, idx):
    return data.iloc[idx] if hasattr(data, "iloc") else data[idx]

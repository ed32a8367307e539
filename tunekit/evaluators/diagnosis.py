"""Why a fitted candidate scores NaN or infinity: the epoch, the loss and the likely cause.

A fit can end with a finite last loss and still leave a useless model: the
last update (after the loss was measured) can throw the weights to infinity,
or to values so large that the predictions overflow. The scorer then fails
("Input contains NaN") or returns ``-inf``. :func:`divergence_reason` tells
that case apart from a scorer's own failure and says what to change.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tunekit.evaluators._steps import final_estimator

__all__ = ["diverged_member", "divergence_reason", "non_finite_reason"]

#: Above this learning rate, the learning rate is named as the likely cause.
_LARGE_LEARNING_RATE = 1.0
#: Above this largest absolute input, the inputs' scale is named as the likely cause.
_LARGE_INPUT = 1e3
#: Finite predictions this large overflow a float32 sum of squares: a diverged network's.
_HUGE_PREDICTION = 1e15


def non_finite_reason(est: Any, X: Any, score: float | None, error: Exception | None) -> str:
    """The failure reason of a fold whose score is not finite (or whose scoring raised)."""
    diverged = divergence_reason(est, X, scored=False)
    if diverged is not None:
        return f"DivergedError: {diverged}"
    if error is not None:
        return f"scoring failed: {type(error).__name__}: {error}"
    return f"the score is not finite ({score})"


def diverged_member(est: Any, X: Any) -> str:
    """The reason of a stacked member whose weights the engine found non-finite."""
    return divergence_reason(est, X) or "training diverged: the weights became non-finite"


def divergence_reason(
    est: Any, X: Any, scored: bool = True, epoch: int | None = None, loss: float | None = None
) -> str | None:
    """Say how training diverged, or ``None`` when nothing shows that it did.

    Parameters
    ----------
    est : estimator
        A fitted estimator: a tunekit Keras estimator, a pipeline ending in
        one, or a stacked engine's member.
    X : array-like
        Rows the model was scored on, as given to ``est.predict``.
    scored : bool, default=True
        ``False`` when the scorer failed or returned a non-finite score: a
        network whose predictions are finite then overflowed the scorer with
        their size, which is divergence too.
    epoch, loss : optional
        The epoch and its training loss, for a fit stopped inside an epoch's
        end (the estimator has no history yet).
    """
    final = final_estimator(est)
    weights = _weights(final)
    if not weights:
        return None  # not a network: nothing to say about its training
    largest = max((float(np.max(np.abs(w))) for w in weights if np.size(w)), default=0.0)
    predictions = _predictions(est, X)
    facts = [f"last training loss {_loss_text(final, loss)}"]
    if not math.isfinite(largest):
        what = "its weights became non-finite"
    elif predictions is not None and not np.isfinite(predictions).all():
        what = "its predictions are not finite"
        facts.append(f"largest |weight| {largest:.3g}")
    elif not scored and _largest_prediction(predictions) >= _HUGE_PREDICTION:
        what = f"its predictions reach {_largest_prediction(predictions):.3g}, too large to score"
        facts.append(f"largest |weight| {largest:.3g}")
    else:
        return None
    n_epochs = epoch or getattr(final, "n_epochs_", None)
    when = f" after epoch {int(n_epochs)}" if n_epochs else ""
    return (
        f"training diverged: {what}{when} ({'; '.join(facts)}). Likely cause: "
        f"{_cause(final, _largest_input(est, X))}. Lower the learning rate "
        "(optimizer__learning_rate=...), clip gradients (optimizer__clipnorm=1.0) or scale "
        "the inputs (StandardScaler in a Pipeline)."
    )


def _weights(final: Any) -> list:
    stored = getattr(final, "weights_", None)  # a stacked member
    if stored is not None:
        return list(stored)
    model = getattr(final, "model_", None)
    try:
        return list(model.get_weights()) if model is not None else []
    except Exception:  # not a Keras model: nothing to inspect
        return []


def _predictions(est: Any, X: Any) -> np.ndarray | None:
    method = getattr(est, "predict_proba", None) or getattr(est, "predict", None)
    if method is None:
        return None
    try:
        values = np.asarray(method(X), dtype=float)
    except Exception:  # predictions that cannot even be made are not a divergence to explain
        return None
    return values


def _largest_prediction(predictions: np.ndarray | None) -> float:
    if predictions is None or not predictions.size:
        return 0.0
    return float(np.max(np.abs(predictions)))


def _loss_text(final: Any, loss: float | None = None) -> str:
    history = getattr(final, "history_", None) or {}
    losses = [v for v in (history.get("loss") or []) if not math.isnan(v)]
    if loss is not None:
        losses = [float(loss)]
    if not losses:
        return "not recorded"
    return f"{float(losses[-1]):.4g}, measured before the epoch's last update"


def _learning_rate(final: Any) -> float | None:
    params = final.get_params() if hasattr(final, "get_params") else {}
    rate = params.get("optimizer__learning_rate", getattr(final, "learning_rate_", None))
    if rate is None:
        optimizer = getattr(getattr(final, "model_", None), "optimizer", None)
        rate = getattr(optimizer, "learning_rate", None)
    try:
        return float(np.asarray(rate)) if rate is not None else None
    except (TypeError, ValueError):  # a schedule: no single rate to name
        return None


def _largest_input(est: Any, X: Any) -> float | None:
    """The largest absolute value the model is given (after a pipeline's transforms)."""
    try:
        if hasattr(est, "steps") and len(est.steps) > 1:
            X = est[:-1].transform(X)
        values = abs(X).max() if hasattr(X, "tocsr") else np.nanmax(np.abs(np.asarray(X, float)))
        return float(values)
    except Exception:  # several inputs, text, ...: no single scale to name
        return None


def _cause(final: Any, largest_input: float | None) -> str:
    rate = _learning_rate(final)
    scale = "" if largest_input is None else f"largest |input| {largest_input:.3g}"
    if rate is not None and rate >= _LARGE_LEARNING_RATE:
        return f"the learning rate {rate:g} is far too large" + (f" ({scale})" if scale else "")
    if largest_input is not None and largest_input >= _LARGE_INPUT:
        rate_text = "" if rate is None else f", learning rate {rate:g}"
        return f"the inputs are on a large scale ({scale}{rate_text})"
    shown = ", ".join(t for t in (f"learning rate {rate:g}" if rate else "", scale) if t)
    return "a learning rate too large for this model and data" + (f" ({shown})" if shown else "")

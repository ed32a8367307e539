"""Where the chosen model goes wrong, and whether a blend beats it.

Read from a result's out-of-fold predictions (``oof_predictions_``, the
best candidate's row) and the search set's targets (``oof_target_``), or
from what an Optuna study stored (:mod:`tunekit.record`), drawn
with scikit-learn's displays: a classifier's confusion matrix
(``ConfusionMatrixDisplay``) and calibration curve (``CalibrationDisplay``;
top-label calibration for more than two classes), a regressor's predicted
against true values and residuals (``PredictionErrorDisplay``). Every row
was predicted by a model that did not train on it, so these are honest
pictures of the candidate, not of its refit.

The ensemble's lines (:func:`ensemble_lines`) read ``ensemble_scores_``
(see :func:`tunekit.ensembles.ensemble`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tunekit.exceptions import ReportError
from tunekit.record import oof_predictions_of, read_oof_target
from tunekit.report._plots import figure, figure_png

__all__ = ["diagnostic_figures", "ensemble_lines", "plot_diagnostics"]

_CAPTIONS = {
    "oof_confusion": (
        "Confusion matrix (out-of-fold)",
        "The best candidate's out-of-fold predictions against the true classes.",
    ),
    "oof_calibration": (
        "Calibration curve (out-of-fold)",
        "Predicted probability against observed frequency; the diagonal is perfect calibration.",
    ),
    "oof_prediction_error": (
        "Predicted against true (out-of-fold)",
        "The best candidate's out-of-fold predictions against the true values.",
    ),
    "oof_residuals": (
        "Residuals (out-of-fold)",
        "True minus predicted against predicted; a pattern is what the model misses.",
    ),
}


def _from_study(result: Any) -> tuple[Any, Any, Any]:
    """A study's stored predictions, targets and best row, in ``cv_results_``'s order."""
    study, results = getattr(result, "study_", None), getattr(result, "cv_results_", None)
    if study is None or not results or "trial_number" not in results:
        return None, None, None
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    oof = oof_predictions_of([trials[int(n)] for n in results["trial_number"]])
    means = np.asarray(results["mean_test_score"], dtype=float)
    best = int(np.nanargmax(means)) if np.isfinite(means).any() else None
    return oof, read_oof_target(study), best


def _oof_of(result: Any) -> tuple[Any, Any, Any]:
    """Out-of-fold predictions, targets and the best row: a result's own, or its study's."""
    oof = getattr(result, "oof_predictions_", None)
    if oof is None:
        return _from_study(result)
    return oof, getattr(result, "oof_target_", None), getattr(result, "best_index_", None)


def _best_oof(result: Any) -> tuple[np.ndarray, np.ndarray]:
    """The best candidate's out-of-fold predictions and targets, rows it predicted only."""
    oof, y, best = _oof_of(result)
    if oof is None or y is None or best is None:
        raise ReportError(
            "diagnostics need the out-of-fold predictions of a search result, but this one "
            "has none: run tk.search(..., oof_predictions=True) (the default)"
        )
    pred, y = np.asarray(oof[best], dtype=float), np.asarray(y)
    flat = pred.reshape(len(pred), -1)
    keep = np.isfinite(flat).all(axis=1)
    if not keep.any():
        raise ReportError(f"candidate {best} has no out-of-fold prediction on any row")
    return pred[keep], y[keep]


def _is_classification(pred: np.ndarray, y: np.ndarray) -> bool:
    # start-up: scikit-learn (and SciPy) load when a plot is drawn, not with tunekit.report
    from sklearn.utils.multiclass import type_of_target

    return pred.ndim == 2 and type_of_target(y) in ("binary", "multiclass")


def plot_diagnostics(result: Any) -> dict[str, Any]:
    """Draw the best candidate's out-of-fold diagnostics.

    Parameters
    ----------
    result : SearchResult
        A search run with ``oof_predictions=True``.

    Returns
    -------
    figures : dict of str to matplotlib.figure.Figure
        ``oof_confusion`` and ``oof_calibration`` for a classifier,
        ``oof_prediction_error`` and ``oof_residuals`` for a regressor.

    Raises
    ------
    ReportError
        If the result holds no out-of-fold predictions.
    """
    # optional dependency (matplotlib, through scikit-learn's displays): drawn on demand
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import ConfusionMatrixDisplay, PredictionErrorDisplay

    pred, y = _best_oof(result)
    figures = {name: figure(4.6, 4.0) for name in _names(pred, y)}
    axes = {name: fig.subplots() for name, fig in figures.items()}
    if "oof_confusion" in figures:
        classes = np.unique(y)
        labels = classes[np.argmax(pred, axis=1)]
        ConfusionMatrixDisplay.from_predictions(y, labels, ax=axes["oof_confusion"],
                                                colorbar=False)  # fmt: skip
        if pred.shape[1] == 2:
            hit, prob, name = y == classes[1], pred[:, 1], f"P({classes[1]})"
        else:  # top-label calibration: is the most probable class the true one?
            hit, prob, name = labels == y, pred.max(axis=1), "top label"
        CalibrationDisplay.from_predictions(hit, prob, n_bins=10, name=name,
                                            ax=axes["oof_calibration"])  # fmt: skip
    else:
        values = pred if pred.ndim == 1 else pred[:, 0]
        target = y if y.ndim == 1 else y[:, 0]
        for name, kind in (("oof_prediction_error", "actual_vs_predicted"),
                           ("oof_residuals", "residual_vs_predicted")):  # fmt: skip
            PredictionErrorDisplay.from_predictions(target, values, kind=kind, ax=axes[name])
    for name, fig in figures.items():
        fig.suptitle(_CAPTIONS[name][0], fontsize=10)
    return figures


def _names(pred: np.ndarray, y: np.ndarray) -> tuple[str, str]:
    if _is_classification(pred, y):
        return ("oof_confusion", "oof_calibration")
    return ("oof_prediction_error", "oof_residuals")


def diagnostic_figures(result: Any) -> list[dict[str, Any]]:
    """The diagnostics as report figures (``name``, ``title``, ``caption``, ``png``).

    A search result reads its own ``oof_predictions_``; a study (``tunekit
    report <storage>``) the ones its trials stored. One without them (a
    result directory, ``oof_predictions=False``) gives no figure; one that has them but cannot
    be drawn gives a figure entry with a ``note`` saying why.
    """
    if _oof_of(result)[0] is None:
        return []
    try:
        drawn = plot_diagnostics(result)
    except (ReportError, ValueError, ImportError) as exc:
        caption = "The best candidate's out-of-fold predictions."
        return [{"name": "oof_diagnostics", "title": "Out-of-fold diagnostics",
                 "caption": caption, "note": str(exc)}]  # fmt: skip
    out = []
    for name, fig in drawn.items():
        title, caption = _CAPTIONS[name]
        out.append({"name": name, "title": title, "caption": caption, "png": figure_png(fig)})
    return out


def _num(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else f"{float(value):.4f}"


def ensemble_lines(result: Any) -> list[str]:
    """The ensemble beside the best candidate and baseline, and whether it helps.

    Empty when the result has no ensemble (``ensemble_scores_``).
    """
    table = getattr(result, "ensemble_scores_", None)
    if not isinstance(table, pd.DataFrame) or "ensemble" not in table.index:
        return []
    weights = getattr(result, "ensemble_weights_", None)
    n = len(weights) if weights is not None else "?"
    parts = []
    for name, row in table.iterrows():
        text = f"{name} CV {_num(row['cv_score'])}"
        text += " (optimistic: selected on these predictions)" if row["cv_optimistic"] else ""
        text += f", held-out {_num(row['heldout_score'])}"
        parts.append(text)
    lines = [f"ensemble of {n} models: " + "; ".join(parts)]
    lines.append(_verdict(table))
    return lines


def _verdict(table: pd.DataFrame) -> str:
    """One sentence: does the ensemble beat the best candidate on the held-out rows?"""
    if "best candidate" not in table.index:
        return "ensemble: no best candidate to compare with"
    row = table.loc["best candidate"]
    if not math.isfinite(float(row["difference"])):
        return (
            "ensemble vs best candidate: no held-out set to compare them on (test_size=None); "
            "the ensemble's CV score is optimistic"
        )
    interval = f"{row['difference']:+.4f} (95% CI {row['ci_low']:+.4f} to {row['ci_high']:+.4f}"
    interval += f", paired bootstrap, p={row['p_value']:.3f})"
    if row["ci_low"] > 0:
        return f"the ensemble beats the best candidate on the held-out set: {interval}"
    return (
        f"the ensemble does not beat the best candidate on the held-out set: {interval}; "
        "best_estimator_ is as good and simpler"
    )

"""The lecture's central figure: training and validation curves per epoch, from the CV folds.

Every search records, fold by fold, the training loss, the validation score
(the fold's held-out part) and, when early stopping carved a validation split,
the validation loss after every epoch (``epoch_curves_``; an Optuna study
stores them in its trials' records). The figure draws their means over the
folds with a band of ± one standard error, for the best candidates and for the
least regularized one: the reader sees training and validation part ways, and
then sees regularization delay it.
"""

import os
from typing import Any

import numpy as np
import pandas as pd

from tunekit.exceptions import ReportError
from tunekit.report._format import candidate_labels
from tunekit.report._leaderboard import candidate_rows, leaderboard
from tunekit.report._plots import _finish, figure
from tunekit.report._source import resolve
from tunekit.report._stats import regularization_keys

__all__ = ["curve_candidates", "curve_means", "plot_epoch_curves"]

_GREY = "0.45"
#: (curve column, panel, line style, legend text) of every line the figure may draw.
_LINES = (
    ("train_loss", "loss", "-", "training loss"),
    ("val_loss", "loss", "--", "validation loss (early-stopping split)"),
    ("test_score", "score", "--", "validation score (the fold's held-out part)"),
)


def curve_means(curves: pd.DataFrame, candidate: Any, column: str) -> pd.DataFrame:
    """Mean and standard error over folds of one curve of one candidate, by epoch.

    Returns a frame indexed by epoch with columns ``mean``, ``se`` and ``n``
    (the folds that reached the epoch); epochs no fold recorded a finite value
    for are left out.
    """
    part = curves.loc[curves["candidate"] == candidate, ["epoch", column]]
    part = part[np.isfinite(part[column].astype(float))]
    grouped = part.groupby("epoch")[column]
    out = pd.DataFrame({"mean": grouped.mean(), "se": grouped.sem(), "n": grouped.count()})
    out["se"] = out["se"].fillna(0.0)
    return out


def _least_regularized(lb: pd.DataFrame, pool: list[Any]) -> Any:
    """The candidate of ``pool`` with the weakest regularization (None: none is ordered)."""
    if not pool:
        return None
    raw = lb.attrs.get("regularization")
    order = {str(n): int(d) for n, d in raw} if isinstance(raw, list) and raw else None
    columns = [c for c in lb.columns if str(c).startswith("param_")]
    params = [{c[len("param_") :]: lb.at[i, c] for c in columns} for i in pool]
    used, keys = regularization_keys(params, order)
    if not used:
        return None
    filled = np.where(np.isnan(keys), np.inf, keys)
    # lexsort: the last key is primary; the weakest first, ties by position in pool (rank)
    sort_keys = [np.arange(len(pool))] + [filled[:, k] for k in range(len(used) - 1, -1, -1)]
    first = np.lexsort(sort_keys)
    return pool[int(first[0])]


def curve_candidates(lb: pd.DataFrame, curves: pd.DataFrame, top: int = 3) -> dict[Any, str]:
    """Which candidates the figure draws: ``{candidate: role}``, best first.

    The ``top`` best-ranked candidates that recorded curves (role ``"best"``),
    and the least regularized candidate (role ``"least regularized"``) when
    the search varies a regularizer and it is not among them.
    """
    have = set(curves["candidate"].unique())
    ranked = [i for i in lb.index if i in have]
    chosen = {i: "best" for i in ranked[: max(int(top), 1)]}
    weakest = _least_regularized(lb, ranked)
    if weakest is not None:
        chosen[weakest] = "best, least regularized" if weakest in chosen else "least regularized"
    return chosen


def _draw(ax: Any, means: pd.DataFrame, color: str, style: str, gid: str) -> Any:
    epochs = means.index.to_numpy(dtype=np.float64)
    mean, se = means["mean"].to_numpy(np.float64), means["se"].to_numpy(np.float64)
    (line,) = ax.plot(epochs, mean, color=color, ls=style, lw=1.8, gid=gid)
    ax.fill_between(epochs, mean - se, mean + se, color=color, alpha=0.15, lw=0)
    return line


def plot_epoch_curves(
    obj: Any, *, top: int = 3, path: str | os.PathLike | None = None
) -> Any:
    """Per-epoch training and validation curves from the CV folds, mean ± SE over folds.

    Left: the training loss (solid) and, when early stopping carved a
    validation split, the validation loss (dashed). Right: the validation
    score on each fold's held-out part (dashed), a dot at its best epoch.
    Lines are the means over the folds that reached the epoch, bands one
    standard error. Drawn for the ``top`` best candidates and the least
    regularized one, so that the split between training and validation, and
    how regularization delays it, are seen side by side. Every validation
    line has the ``gid`` ``"validation:<column>:<candidate>"``.

    Parameters
    ----------
    obj : object
        A search result, fitted search, Optuna study or loaded result with
        per-epoch curves (``epoch_curves_``).
    top : int, default=3
        How many of the best-ranked candidates to draw.
    path : str or path-like, default=None
        Also write the figure there as a PNG.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    ReportError
        If no per-epoch curves were recorded.
    """
    from matplotlib.lines import Line2D  # optional dependency: imported when a plot is drawn

    src = resolve(obj)
    curves = src.epoch_curves_
    if curves is None or not len(curves):
        raise ReportError(
            "no per-epoch curves to plot: the search recorded none (estimators without "
            "epochs, a study stored before curves were kept, or epoch_curves=False)"
        )
    lb = candidate_rows(leaderboard(src))
    chosen = curve_candidates(lb, curves, top)
    labels = candidate_labels(lb.loc[list(chosen)] if len(chosen) > 1 else lb)
    has = {c: bool(np.isfinite(curves[c].astype(float)).any()) for c, *_ in _LINES}
    panels = [p for p in ("loss", "score") if any(has[c] for c, q, *_ in _LINES if q == p)]
    fig = figure(5.4 * len(panels), 4.8)
    axes = dict(zip(panels, fig.subplots(1, len(panels), squeeze=False)[0], strict=True))
    handles, drawn = [], set()
    for k, (cand, role) in enumerate(chosen.items()):
        color = f"C{k % 10}"
        for column, panel, style, _ in _LINES:
            if not has[column]:
                continue
            means = curve_means(curves, cand, column)
            if means.empty:
                continue
            kind = "train" if column == "train_loss" else "validation"
            _draw(axes[panel], means, color, style, f"{kind}:{column}:{cand}")
            drawn.add(column)
            if column == "test_score" and means["mean"].notna().any():
                best = means["mean"].idxmax()
                axes[panel].plot(best, means.at[best, "mean"], "o", color=color, ms=6)
                drawn.add("best")
            if len(handles) == k:
                extra = "" if role == "best" else f" ({role})"
                line_label = f"{labels[cand]}{extra}"
                handles.append(Line2D([], [], color=color, lw=1.8, label=line_label))
    _label_axes(axes, src.scoring)
    # one legend entry per kind of line actually drawn, none for a line that is not there
    styles = [Line2D([], [], color=_GREY, lw=1.8, ls=style, label=text)
              for column, _, style, text in _LINES if column in drawn]  # fmt: skip
    if "best" in drawn:
        styles.append(Line2D([], [], color=_GREY, marker="o", ls="", label="best validation epoch"))
    fig.legend(handles=handles + styles, loc="outside lower center", ncols=2,
               fontsize="small", frameon=False)  # fmt: skip
    n_folds = int(curves["fold"].nunique())
    fig.suptitle(
        f"Training vs validation curves per epoch ({n_folds} CV folds, mean ± 1 SE)"
    )
    return _finish(fig, path)


def _label_axes(axes: dict, scoring: str | None) -> None:
    for panel, ax in axes.items():
        ax.set_xlabel("Epoch")
        if panel == "loss":
            ax.set_ylabel("Loss")
            ax.set_title("Training (and validation) loss")
        else:
            name = scoring or "score"
            ax.set_ylabel(f"Validation {name}")
            ax.set_title(f"Validation {name} (fold's held-out part)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)


def has_curves(obj: Any) -> bool:
    """Whether ``obj`` recorded per-epoch curves the figure can draw."""
    try:
        curves = resolve(obj).epoch_curves_
    except ReportError:
        return False
    return curves is not None and len(curves) > 0

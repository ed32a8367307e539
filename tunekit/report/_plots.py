"""Plots of a search, drawn with matplotlib (imported only when a plot is drawn).

Every function returns a :class:`matplotlib.figure.Figure` built without
``pyplot`` (so no GUI backend and no global figure registry are involved) and,
given ``path``, also writes it as a PNG atomically.
"""

import io
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tunekit.exceptions import ReportError
from tunekit.record import COMPLETE, FAIL, PRUNED
from tunekit.report._format import candidate_labels, display_names, fmt_value, varying
from tunekit.report._io import atomic_write_bytes
from tunekit.report._leaderboard import candidate_rows, is_leaderboard, leaderboard
from tunekit.report._source import is_study, resolve
from tunekit.report._stats import _strength

__all__ = [
    "figure",
    "figure_png",
    "plot_learning_curves",
    "plot_optuna_history",
    "plot_overfitting_gap",
    "plot_param_scores",
]

_BLUE, _ORANGE, _GREEN, _RED, _GREY = "tab:blue", "tab:orange", "tab:green", "tab:red", "0.45"


def figure(width: float, height: float) -> Any:
    """A matplotlib figure of ``width`` by ``height`` inches, not attached to pyplot."""
    from matplotlib.figure import Figure  # optional dependency: imported when a plot is drawn

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """The PNG bytes of a matplotlib figure.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : int, default=100

    Returns
    -------
    png : bytes
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _finish(fig: Any, path: str | os.PathLike | None) -> Any:
    if path is not None:
        atomic_write_bytes(path, figure_png(fig))
    return fig


def _as_leaderboard(obj: Any, lb_kwargs: Mapping[str, Any]) -> pd.DataFrame:
    """The candidates' rows only: baselines have no parameters or histories to plot."""
    lb = obj if is_leaderboard(obj) and not lb_kwargs else leaderboard(obj, **lb_kwargs)
    return candidate_rows(lb)


def _scoring(lb: pd.DataFrame) -> str:
    return str(lb.attrs.get("scoring") or "score")


def _numeric(values: list[Any]) -> bool:
    return all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)
        for v in values
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    )


def _axis_positions(values: list[Any], ax: Any) -> np.ndarray:
    """x positions for parameter values: numbers as they are, others as categories."""
    present = [v for v in values if fmt_value(v) != ""]
    if present and _numeric(present):
        x = np.array([np.nan if fmt_value(v) == "" else float(v) for v in values])
        finite = x[np.isfinite(x)]
        if finite.size and finite.min() > 0 and finite.max() / finite.min() >= 100:
            ax.set_xscale("log")
        return x
    labels = sorted({fmt_value(v) for v in present}, key=lambda s: (_strength(s), s))
    where = {label: i for i, label in enumerate(labels)}
    ax.set_xticks(range(len(labels)), labels)
    if any(len(label) > 6 for label in labels) or len(labels) > 6:
        ax.tick_params(axis="x", labelrotation=30)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
    ax.set_xlim(-0.5, len(labels) - 0.5)
    return np.array([where.get(fmt_value(v), np.nan) for v in values], dtype=np.float64)


def _param_column(lb: pd.DataFrame, name: str) -> str:
    column = name if name.startswith("param_") else f"param_{name}"
    if column not in lb.columns:
        names = [c[len("param_") :] for c in lb.columns if c.startswith("param_")]
        raise ReportError(f"no hyperparameter {name!r} in this search; choose one of {names}")
    return column


def plot_learning_curves(
    obj: Any,
    *,
    top: int = 3,
    metric: str | None = None,
    histories: Mapping[int, Mapping[str, list[float]]] | None = None,
    path: str | os.PathLike | None = None,
) -> Any:
    """Per-epoch training and validation curves of the best refit candidates.

    Drawn from the Keras histories of the candidates refit on all the search
    data: solid lines are training, dashed lines validation (only when the
    histories hold ``val_*`` keys, i.e. the refit had validation data), a dot
    each candidate's best validation epoch. The legend lists only the kinds of
    line drawn. The curves of the cross-validation folds are
    :func:`tunekit.report.plot_epoch_curves`.

    Parameters
    ----------
    obj : object
        A search result with ``histories_`` (candidate index -> Keras
        ``History.history`` dict), or anything :func:`leaderboard` accepts
        together with ``histories``.
    top : int, default=3
        How many of the best-ranked candidates that have a history to draw.
    metric : str, default=None
        The metric panel beside the loss (e.g. ``"accuracy"``); by default
        the search's scorer when recorded, else the first metric with a
        ``val_`` counterpart.
    histories : dict, default=None
        Histories to use instead of ``obj.histories_``.
    path : str or path-like, default=None
        Also write the figure there as a PNG.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    ReportError
        If there is no history to draw.
    """
    lb = _as_leaderboard(obj, {})
    if histories is None:
        histories = {} if is_leaderboard(obj) else resolve(obj).histories_
    histories = {int(k): v for k, v in (histories or {}).items()}
    chosen = [i for i in lb.index if int(i) in histories][: max(int(top), 1)]
    if not chosen:
        raise ReportError(
            "no per-epoch histories to plot: the result's histories_ is empty. tunekit records "
            "Keras histories for refit candidates; pass histories={candidate: history.history}"
        )
    keys: list[str] = []
    for i in chosen:
        keys.extend(k for k in histories[int(i)] if k not in keys)
    metrics = [k for k in keys if not k.startswith("val_") and k != "loss"]
    if metric is None:
        scoring = _scoring(lb)
        with_val = [k for k in metrics if f"val_{k}" in keys]
        metric = scoring if scoring in metrics else (with_val or metrics or [None])[0]
    elif metric not in keys:
        raise ReportError(f"metric {metric!r} is not in the histories; recorded: {keys}")
    panels = [k for k in ("loss", metric) if k is not None and k in keys]
    if not panels:
        raise ReportError(f"the histories record no loss or metric to plot; recorded: {keys}")

    from matplotlib.lines import Line2D  # optional dependency: imported when a plot is drawn

    fig = figure(5.4 * len(panels), 4.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    labels = candidate_labels(lb.loc[chosen] if len(chosen) > 1 else lb)
    colors = [f"C{k % 10}" for k in range(len(chosen))]
    handles, drawn = [], set()
    for ax, key in zip(axes, panels, strict=True):
        for color, i in zip(colors, chosen, strict=True):
            history = histories[int(i)]
            train = np.asarray(history.get(key, []), dtype=np.float64)
            val = np.asarray(history.get(f"val_{key}", []), dtype=np.float64)
            epochs = np.arange(1, train.size + 1)
            ax.plot(epochs, train, color=color, lw=1.8, gid=f"train:{key}:{i}")
            drawn.add("training")
            if key == panels[0]:
                handles.append(Line2D([], [], color=color, lw=1.8, label=labels[i]))
            if val.size:
                epochs = np.arange(1, val.size + 1)
                ax.plot(epochs, val, color=color, lw=1.8, ls="--", gid=f"validation:{key}:{i}")
                drawn.add("validation")
                if np.isfinite(val).any():
                    best = int(np.nanargmin(val) if key == "loss" else np.nanargmax(val))
                    ax.plot(epochs[best], val[best], "o", color=color, ms=6)
                    drawn.add("best validation epoch")
        pretty = "Loss" if key == "loss" else key.replace("_", " ").capitalize()
        ax.set_xlabel("Epoch")
        ax.set_ylabel(pretty)
        ax.set_title(f"{pretty} per epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)

    styles = _style_handles(Line2D, drawn)
    fig.legend(
        handles=handles + styles,
        loc="outside lower center",
        ncols=min(3 if len(panels) > 1 else 2, len(handles) + len(styles)),
        fontsize="small",
        frameon=False,
    )
    what = "Training vs validation" if "validation" in drawn else "Training (no validation data)"
    fig.suptitle(f"{what} curves of the top {len(chosen)} refit candidate(s)")
    return _finish(fig, path)


def _style_handles(line: Any, drawn: set) -> list:
    """Legend entries for the kinds of line drawn (none for a kind that is not there)."""
    kinds = (("training", {}), ("validation", {"ls": "--"}),
             ("best validation epoch", {"marker": "o", "ls": ""}))  # fmt: skip
    return [line([], [], color=_GREY, lw=1.8, **style, label=name)
            for name, style in kinds if name in drawn]  # fmt: skip


def plot_param_scores(
    obj: Any,
    *,
    params: list[str] | None = None,
    path: str | os.PathLike | None = None,
    **leaderboard_kwargs: Any,
) -> Any:
    """Mean validation score against each hyperparameter, with ±1 SE error bars.

    One panel per hyperparameter that varies. The best candidate is a red
    star, the one-standard-error pick a green diamond, and the dashed line
    is the best mean minus its standard error: every candidate above it is
    within one SE of the best.

    Parameters
    ----------
    obj : object
        Anything :func:`leaderboard` accepts, or a leaderboard.
    params : list of str, default=None
        Hyperparameters to draw (with or without the ``param_`` prefix);
        by default every one that varies.
    path : str or path-like, default=None
        Also write the figure there as a PNG.
    **leaderboard_kwargs
        Passed to :func:`leaderboard`.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    ReportError
        If no hyperparameter varies or no candidate completed.
    """
    lb = _as_leaderboard(obj, leaderboard_kwargs)
    done = lb[lb["state"] == COMPLETE]
    if done.empty:
        raise ReportError("no COMPLETE candidate to plot: every candidate failed or was pruned")
    columns = [_param_column(lb, p) for p in params] if params else varying(done)
    if not columns:
        raise ReportError(
            "nothing to plot against: no hyperparameter takes more than one value in this search"
        )
    names = display_names(columns)
    scoring = _scoring(lb)
    ncols = min(3, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig = figure(4.4 * ncols, 3.5 * nrows + 0.9)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    best_index = lb.attrs.get("best_candidate")
    pick_index = lb.attrs.get("one_se_candidate")
    mean = done["mean_val_score"].to_numpy(np.float64)
    se = np.nan_to_num(done["se_val_score"].to_numpy(np.float64))
    handles: dict[str, Any] = {}
    for ax, column in zip(axes, columns, strict=False):
        x = _axis_positions(done[column].tolist(), ax)
        handles["candidate (mean ± 1 SE)"] = ax.errorbar(
            x, mean, yerr=se, fmt="o", ms=5, capsize=3, color=_BLUE, alpha=0.8, lw=1
        )
        if best_index in done.index:
            row = done.index.get_loc(best_index)
            handles["best"] = ax.plot(x[row], mean[row], "*", color=_RED, ms=15, zorder=5)[0]
            threshold = mean[row] - se[row]
            handles["best - 1 SE"] = ax.axhline(threshold, color=_GREY, ls="--", lw=1)
        if pick_index in done.index:
            row = done.index.get_loc(pick_index)
            handles["one-SE pick"] = ax.plot(
                x[row], mean[row], "D", mfc="none", mec=_GREEN, mew=2, ms=11, zorder=6
            )[0]
        ax.set_xlabel(names[column])
        ax.set_ylabel(f"Validation {scoring}")
        ax.grid(alpha=0.3)
    for ax in axes[len(columns) :]:
        ax.set_visible(False)
    fig.legend(
        list(handles.values()),
        list(handles.keys()),
        loc="outside lower center",
        ncols=len(handles),
        fontsize="small",
        frameon=False,
    )
    fig.suptitle(
        f"Validation {scoring} by hyperparameter "
        f"({len(done)} complete candidates, {lb.attrs.get('n_splits', '?')} folds each)"
    )
    return _finish(fig, path)


def _gap_param(lb: pd.DataFrame, param: str | None) -> tuple[str, int]:
    order = {name: direction for name, direction in (lb.attrs.get("regularization") or [])}
    if param is not None:
        column = _param_column(lb, param)
        return column, order.get(column[len("param_") :], 0)
    moving = varying(lb)
    for name, direction in order.items():
        if f"param_{name}" in moving:
            return f"param_{name}", direction
    for column in moving:
        if _numeric(lb[column].tolist()):
            return column, 0
    if moving:
        return moving[0], 0
    raise ReportError(
        "nothing to plot against: no hyperparameter takes more than one value in this search"
    )


def plot_overfitting_gap(
    obj: Any,
    *,
    param: str | None = None,
    path: str | os.PathLike | None = None,
    **leaderboard_kwargs: Any,
) -> Any:
    """Training and validation scores, and their gap, against regularization strength.

    The top panel shows mean training and validation scores; the bottom
    panel their difference, the overfitting signal: it should shrink as the
    regularization grows, until the validation score starts to fall too
    (underfitting). Faint points are single candidates; lines join the means
    over candidates sharing a value.

    Parameters
    ----------
    obj : object
        Anything :func:`leaderboard` accepts, or a leaderboard.
    param : str, default=None
        The hyperparameter on the x axis; by default the first varying one in
        the one-SE rule's regularization order (e.g. ``l2``, then ``l1``,
        ``dropout``...), else the first varying numeric one.
    path : str or path-like, default=None
        Also write the figure there as a PNG.
    **leaderboard_kwargs
        Passed to :func:`leaderboard`.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    ReportError
        If the search recorded no training scores or no hyperparameter varies.
    """
    lb = _as_leaderboard(obj, leaderboard_kwargs)
    done = lb[(lb["state"] == COMPLETE) & np.isfinite(lb["mean_train_score"].astype(float))]
    if done.empty:
        raise ReportError(
            "no training scores to compare: the train/validation gap needs per-fold training "
            "scores; fit scikit-learn searches with return_train_score=True"
        )
    column, direction = _gap_param(lb, param)
    name = display_names([column])[column]
    scoring = _scoring(lb)
    fig = figure(6.4, 6.2)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    x = _axis_positions(done[column].tolist(), bottom)
    frame = pd.DataFrame(
        {
            "x": x,
            "train": done["mean_train_score"].to_numpy(np.float64),
            "val": done["mean_val_score"].to_numpy(np.float64),
            "gap": done["train_val_gap"].to_numpy(np.float64),
        }
    ).dropna(subset=["x"])
    # a line means "only this parameter changed": with others varying too, one point per
    # candidate; without, faint candidates and lines through their means
    others = [c for c in varying(done) if c != column]
    shown = frame.set_index("x") if others else frame.groupby("x", sort=True).mean()
    style = "o" if others else "-o"
    if not others:
        top.plot(frame["x"], frame["train"], "o", color=_ORANGE, alpha=0.3, ms=4)
        top.plot(frame["x"], frame["val"], "o", color=_BLUE, alpha=0.3, ms=4)
        bottom.plot(frame["x"], frame["gap"], "o", color=_RED, alpha=0.3, ms=4)
    top.plot(shown.index, shown["train"], style, color=_ORANGE, label="training score")
    top.plot(shown.index, shown["val"], style, color=_BLUE, label="validation score")
    top.set_ylabel(f"{scoring} (mean over folds)")
    top.legend(loc="best", fontsize="small")
    top.grid(alpha=0.3)
    bottom.plot(shown.index, shown["gap"], style, color=_RED, label="train - validation")
    bottom.axhline(0.0, color=_GREY, lw=1)
    bottom.set_ylabel("Train - validation gap")
    bottom.legend(loc="best", fontsize="small")
    bottom.grid(alpha=0.3)
    arrow = {1: "  (more regularization →)", -1: "  (← more regularization)"}.get(direction, "")
    bottom.set_xlabel(f"{name}{arrow}")
    title = f"Overfitting: training vs validation {scoring} against {name}"
    if others:
        title += f"\n(one point per candidate; {len(others)} other parameter(s) vary too)"
    fig.suptitle(title)
    return _finish(fig, path)


def bulk_limits(values: np.ndarray, others: np.ndarray) -> tuple[float, float]:
    """Axis limits for the complete trials' scores and the ``others`` not far from them.

    Pruned trials' partial means can lie far off (a score of -1.4 among scores
    near 0.5). Those beyond three times the complete trials' span from them are left
    out of the limits, to be drawn at the edge, instead of squeezing the bulk
    into a strip.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    low, high = float(values.min()), float(values.max())
    span = max(high - low, 0.05 * abs(float(np.median(values))), 1e-6)
    near = [v for v in np.asarray(others, dtype=np.float64)
            if low - 3 * span <= v <= high + 3 * span]  # fmt: skip
    low, high = min([low, *near]), max([high, *near])
    margin = 0.05 * (high - low) or 0.05 * span
    return low - margin, high + margin


def _study_of(obj: Any) -> Any:
    if is_study(obj):
        return obj
    study = getattr(obj, "study_", None)
    if study is None:
        raise ReportError(
            "no Optuna study in this result: optimization history and parameter importances "
            "need a study (a result of strategy='optuna', or optuna.load_study(...))"
        )
    return study


def _partial_mean(trial: Any) -> float:
    scores = trial.user_attrs.get("cv_test_scores")
    if scores:
        values = np.array([np.nan if s is None else float(s) for s in scores], dtype=np.float64)
        if np.isfinite(values).any():
            return float(np.nanmean(values))
    if trial.intermediate_values:
        return float(trial.intermediate_values[max(trial.intermediate_values)])
    return math.nan


def plot_optuna_history(obj: Any, *, path: str | os.PathLike | None = None) -> Any:
    """Optuna's optimization history: each trial's value and the best so far.

    Parameters
    ----------
    obj : optuna.study.Study or object
        A study, or a result holding one in ``study_``.
    path : str or path-like, default=None
        Also write the figure there as a PNG.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    ReportError
        If there is no study or no complete trial with a finite value.
    """
    study = _study_of(obj)
    trials = study.get_trials(deepcopy=False)
    maximize = study.direction.name != "MINIMIZE"
    done = [
        t
        for t in trials
        if t.state.name == COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    if not done:
        raise ReportError(
            f"study {study.study_name!r} has no COMPLETE trial with a finite value to plot"
        )
    pruned = [(t.number, _partial_mean(t)) for t in trials if t.state.name == PRUNED]
    pruned = [(n, v) for n, v in pruned if math.isfinite(v)]
    n_failed = sum(t.state.name == FAIL for t in trials) + sum(
        t.state.name == COMPLETE and t not in done for t in trials
    )
    numbers_ = np.array([t.number for t in done])
    values = np.array([t.value for t in done], dtype=np.float64)
    best = np.maximum.accumulate(values) if maximize else np.minimum.accumulate(values)

    fig = figure(7.2, 4.4)
    ax = fig.subplots()
    ax.plot(numbers_, values, "o", color=_BLUE, ms=5, label="complete trial")
    px, py = (np.array(v, dtype=np.float64) for v in (zip(*pruned, strict=True) if pruned
                                                       else ([], [])))  # fmt: skip
    low, high = bulk_limits(values, py)
    inside = (py >= low) & (py <= high)
    if inside.any():
        ax.plot(px[inside], py[inside], "x", color=_GREY, ms=6,
                label="pruned trial (partial mean)")  # fmt: skip
    for beyond, edge, marker in ((py < low, low, "v"), (py > high, high, "^")):
        if beyond.any():  # far off: marked at the edge, not allowed to set the scale
            ax.plot(px[beyond], np.full(int(beyond.sum()), edge), marker, color=_GREY, ms=7,
                    clip_on=False, label=f"pruned trial beyond the axis ({int(beyond.sum())})")
    ax.step(numbers_, best, where="post", color=_RED, lw=2, label="best so far")
    ax.set_ylim(low, high)
    scoring = (study.user_attrs or {}).get("scoring")
    target = f"Mean CV {scoring}" if scoring else "Objective value"
    ax.set_ylabel(f"{target} ({'higher' if maximize else 'lower'} is better)")
    ax.set_xlabel("Trial number")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    extra = f", {n_failed} failed not shown" if n_failed else ""
    ax.set_title(
        f"Optimization history of study {study.study_name!r} ({len(trials)} trials{extra})"
    )
    return _finish(fig, path)

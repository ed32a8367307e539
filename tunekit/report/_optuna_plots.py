"""Optuna's own plots of a study (``optuna.visualization.matplotlib``), where they serve.

A study's report shows Optuna's parameter importances, slice, parallel
coordinate, contour and intermediate-value plots as Optuna draws them; tunekit
draws its own only where it adds something Optuna's do not show (the
optimization history with pruned trials at their partial means, the score by
hyperparameter with standard-error bars and the one-SE pick, the per-epoch
curves of the folds). Optuna marks its matplotlib module experimental: that
warning is silenced here, around each call, and nowhere else.
"""

import math
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from tunekit.exceptions import ReportError
from tunekit.record import COMPLETE
from tunekit.report._format import display_names
from tunekit.report._plots import _finish, _study_of

__all__ = ["optuna_plans", "plot_param_importances", "release"]

#: Most parameters a contour plot shows (it draws one panel per pair), and a slice plot.
CONTOUR_PARAMS = 3
SLICE_PARAMS = 4


def _complete(study: Any) -> list:
    trials = study.get_trials(deepcopy=False)
    return [t for t in trials if t.state.name == COMPLETE and math.isfinite(t.value or math.nan)]


def _draw(name: str, study: Any, **kwargs: Any) -> Any:
    """Optuna's matplotlib ``name`` plot of ``study`` as a figure (its warning silenced)."""
    # optional dependencies: Optuna's plots need Optuna and matplotlib, loaded when drawn
    import matplotlib
    import optuna
    import optuna.visualization.matplotlib as optuna_mpl

    # Optuna's plots switch the global matplotlib style to ggplot: kept to this figure
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            axes = getattr(optuna_mpl, name)(study, **kwargs)
        except (ValueError, RuntimeError) as exc:
            raise ReportError(f"Optuna's {name} cannot be drawn for this study: {exc}") from exc
    grid = np.atleast_2d(np.asarray(axes, dtype=object))
    fig = grid.flat[0].figure  # laid out by Optuna (colour bars included)
    if grid.size > 1:  # a panel per parameter (pair): room enough for its labels
        rows, cols = grid.shape
        fig.set_size_inches(max(6.4, 3.3 * cols + 1.6), max(4.8, 3.0 * rows + 0.8))
    _short_labels(fig, study)
    if grid.size == 1:  # one panel (importances, history): its tick labels kept in the figure
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            fig.tight_layout()
    return fig


def _short_labels(fig: Any, study: Any) -> None:
    """Parameters named as the leaderboard names them (``l2``, not ``model__l2``); a log
    axis's minor tick labels, which Optuna's narrow panels overlap, left out."""
    # optional dependency: matplotlib, loaded with the figure
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    names = {name for t in _complete(study) for name in t.params}
    short = display_names(sorted(names))
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            label = axis.get_label().get_text()
            if label in short:
                axis.set_label_text(short[label])
            ticks = axis.get_ticklabels()  # the importances name each bar by a tick label
            if any(t.get_text() in short for t in ticks):
                axis.set_ticks(axis.get_ticklocs())
                axis.set_ticklabels([short.get(t.get_text(), t.get_text()) for t in ticks])
            if axis.get_scale() != "log":
                continue
            axis.set_minor_formatter(NullFormatter())
            low, high = sorted(axis.get_view_interval())
            if low > 0 and high / low < 10:  # within a decade: its two ends labelled
                axis.set_major_locator(FixedLocator([low, high]))
                axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))


def release(fig: Any) -> None:
    """Forget a figure that Optuna drew through ``pyplot`` (tunekit's own are not held there)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and fig in map(pyplot.figure, pyplot.get_fignums()):
        pyplot.close(fig)


def _varying(study: Any) -> list[str]:
    """Parameters that take more than one value across the complete trials."""
    values: dict[str, set] = {}
    for trial in _complete(study):
        for name, value in trial.params.items():
            values.setdefault(name, set()).add(repr(value))
    return [name for name, seen in values.items() if len(seen) > 1]


class _OneFanova:
    """fANOVA importances (``FanovaImportanceEvaluator(seed=0)``), computed once per
    parameter list and target: a report's importances plot and its choice of the slice and
    contour plots' parameters share them (each fANOVA fits a random forest, the slowest
    step of a study's report)."""

    def __init__(self) -> None:
        import optuna  # optional dependency: Optuna, loaded when a study is drawn

        self.fanova = optuna.importance.FanovaImportanceEvaluator(seed=0)
        self.known: dict = {}

    def evaluate(self, study: Any, params: list[str] | None = None, *, target: Any = None) -> dict:
        key = (None if params is None else tuple(params), target)
        if key not in self.known:
            self.known[key] = self.fanova.evaluate(study, params=params, target=target)
        return dict(self.known[key])


def _one_fanova() -> Any:
    """A :class:`_OneFanova`, which Optuna takes for one of its importance evaluators."""
    import optuna  # optional dependency: Optuna, loaded when a study is drawn

    optuna.importance.BaseImportanceEvaluator.register(_OneFanova)
    return _OneFanova()


def _importances(study: Any, evaluator: Any = None) -> dict:
    import optuna  # optional dependency: Optuna, loaded when a study is drawn

    if evaluator is None:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.importance.get_param_importances(study, evaluator=evaluator)


def plot_param_importances(
    obj: Any, *, evaluator: Any = None, path: str | os.PathLike | None = None
) -> Any:
    """Hyperparameter importances of an Optuna study, as Optuna draws them.

    Parameters
    ----------
    obj : optuna.study.Study or object
        A study, or a result holding one in ``study_``.
    evaluator : optuna.importance.BaseImportanceEvaluator, default=None
        By default ``FanovaImportanceEvaluator(seed=0)``, so that reports
        are reproducible.
    path : str or path-like, default=None
        Also write the figure there as a PNG.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    ReportError
        If the importances cannot be computed (fewer than two complete
        trials, or no parameter that varies across them).
    """
    import optuna  # optional dependency: Optuna, loaded when a study is drawn

    study = _study_of(obj)
    n_complete = len(_complete(study))
    if n_complete < 2 or not _varying(study):
        raise ReportError(
            f"parameter importances cannot be computed for study {study.study_name!r}: it has "
            f"{n_complete} COMPLETE trial(s) with a finite value and needs at least 2 with a "
            "parameter that varies across them; run more trials"
        )
    if evaluator is None:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    fig = _draw("plot_param_importances", study, evaluator=evaluator)
    return _finish(fig, path)


def _needs(study: Any, n_params: int) -> list[str]:
    names = _varying(study)
    if len(_complete(study)) < 2 or len(names) < n_params:
        raise ReportError(
            f"needs at least 2 COMPLETE trials and {n_params} varying parameter(s); study "
            f"{study.study_name!r} has {len(_complete(study))} and {len(names)}"
        )
    return names


def _most_important(study: Any, n_least: int, n_most: int, evaluator: Any = None) -> list[str]:
    """At most ``n_most`` varying parameters, the most important first (at least ``n_least``)."""
    names = _needs(study, n_least)
    if len(names) > n_most:
        try:
            names = [n for n in _importances(study, evaluator) if n in names]
        except (ValueError, RuntimeError):
            pass
    return names[:n_most]


def _intermediate(study: Any) -> Any:
    if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        raise ReportError(
            f"study {study.study_name!r} reported no intermediate values (nothing to prune on)"
        )
    return _draw("plot_intermediate_values", study)


def optuna_plans(study: Any) -> list[tuple[str, Callable[[], Any]]]:
    """Optuna's plots that a study's report shows: ``(name, draw)`` pairs, in order (one
    fANOVA for all of them)."""
    fanova = _one_fanova()

    def most_important(n_least: int, n_most: int) -> list[str]:
        return _most_important(study, n_least, n_most, fanova)

    return [
        ("param_importances", lambda: plot_param_importances(study, evaluator=fanova)),
        ("optuna_slice",
         lambda: _draw("plot_slice", study, params=most_important(1, SLICE_PARAMS))),
        ("optuna_parallel_coordinate",
         lambda: _draw("plot_parallel_coordinate", study, params=_needs(study, 2))),
        ("optuna_contour",
         lambda: _draw("plot_contour", study, params=most_important(2, CONTOUR_PARAMS))),
        ("optuna_intermediate_values", lambda: _intermediate(study)),
    ]  # fmt: skip

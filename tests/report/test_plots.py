"""Plots: PNGs that read well (labels, legends, no overlapping text), lazy matplotlib."""

import itertools
import subprocess
import sys

import numpy as np
import optuna
import pytest

from tunekit.report import (
    ReportError,
    leaderboard,
    plot_learning_curves,
    plot_optuna_history,
    plot_overfitting_gap,
    plot_param_importances,
    plot_param_scores,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _texts(fig):
    """Every visible, non-empty text of a figure with its bounding box in pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    artists = [fig._suptitle] if fig._suptitle is not None else []
    for legend in fig.legends:
        artists += legend.get_texts()
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        artists += [ax.title, ax.xaxis.label, ax.yaxis.label]
        # only the tick labels matplotlib draws: those of ticks inside the view limits
        x0, x1 = sorted(ax.get_xlim())
        y0, y1 = sorted(ax.get_ylim())
        artists += [
            tick.label1 for tick in ax.xaxis.get_major_ticks() if x0 <= tick.get_loc() <= x1
        ]
        artists += [
            tick.label1 for tick in ax.yaxis.get_major_ticks() if y0 <= tick.get_loc() <= y1
        ]
        if ax.get_legend() is not None:
            artists += ax.get_legend().get_texts()
        artists += [t for t in ax.texts]
    out = []
    for artist in artists:
        if artist.get_visible() and artist.get_text().strip():
            out.append((artist.get_text(), _polygon(artist, renderer)))
    return out


def _polygon(artist, renderer):
    """Corners of a text's (possibly rotated) rectangle, in pixels."""
    box = artist.get_window_extent(renderer)
    angle = artist.get_rotation() % 180
    if angle in (0, 90):
        return np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1]])
    artist.set_rotation(0)
    flat = artist.get_window_extent(renderer)
    artist.set_rotation(angle)
    w, h = flat.width, flat.height
    sin = abs(np.sin(np.radians(angle)))
    if angle < 90:  # rectangle inscribed in its axis-aligned box
        return np.array(
            [
                [box.x0 + h * sin, box.y0],
                [box.x1, box.y0 + w * sin],
                [box.x1 - h * sin, box.y1],
                [box.x0, box.y1 - w * sin],
            ]
        )
    return np.array(
        [
            [box.x0, box.y0 + h * sin],
            [box.x1 - h * sin, box.y0],
            [box.x1, box.y1 - h * sin],
            [box.x0 + h * sin, box.y1],
        ]
    )


def _overlap(p, q, margin=1.0):
    """Separating-axis test for two convex polygons (touching within margin is fine)."""
    for poly in (p, q):
        edges = np.roll(poly, -1, axis=0) - poly
        for edge in edges:
            axis = np.array([-edge[1], edge[0]])
            norm = np.hypot(*axis)
            if norm == 0:
                continue
            axis = axis / norm
            a, b = p @ axis, q @ axis
            if a.max() - margin <= b.min() or b.max() - margin <= a.min():
                return False
    return True


def assert_reads_well(fig):
    """Axes are labelled, and no two pieces of text overlap or leave the figure."""
    for ax in fig.axes:
        if ax.get_visible():
            assert ax.get_xlabel() or ax.get_shared_x_axes().get_siblings(ax), "x label missing"
            assert ax.get_ylabel(), "y label missing"
    texts = _texts(fig)
    width, height = fig.bbox.width, fig.bbox.height
    for text, poly in texts:
        assert poly[:, 0].min() >= -1 and poly[:, 1].min() >= -1, f"{text!r} leaves the figure"
        assert poly[:, 0].max() <= width + 1, f"{text!r} leaves the figure"
        assert poly[:, 1].max() <= height + 1, f"{text!r} leaves the figure"
    for (t1, p1), (t2, p2) in itertools.combinations(texts, 2):
        assert not _overlap(p1, p2), f"{t1!r} overlaps {t2!r}"


@pytest.mark.parametrize("rotation", [0, 30])
def test_the_overlap_check_catches_crowded_labels(rotation):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2), layout="constrained")
    ax = fig.subplots()
    ax.set_xticks(range(12), [f"label number {i}" for i in range(12)], rotation=rotation)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    with pytest.raises(AssertionError, match="overlaps"):
        assert_reads_well(fig)


def test_import_does_not_pull_heavy_modules():
    code = (
        "import sys, tunekit.report\n"
        "heavy = [m for m in ('matplotlib', 'tensorflow', 'keras', 'optuna', 'sqlalchemy',"
        " 'scipy.stats') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_learning_curves(result, tmp_path):
    path = tmp_path / "curves.png"
    fig = plot_learning_curves(result, path=path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert [ax.get_ylabel() for ax in fig.axes] == ["Loss", "Accuracy"]
    assert all(ax.get_xlabel() == "Epoch" for ax in fig.axes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:2] == [
        "#1 l2=0.001, batch_size=64",  # only what differs between the curves drawn
        "#2 l2=0.01, batch_size=32",
    ]
    assert {"training", "validation", "best validation epoch"} <= set(labels)
    assert_reads_well(fig)


def test_learning_curves_need_histories(make_result, result):
    bare = make_result(np.full((2, 3), 0.8))
    with pytest.raises(ReportError, match=r"no per-epoch histories to plot.*histories=\{"):
        plot_learning_curves(bare)
    with pytest.raises(ReportError, match=r"metric 'auc' is not in the histories"):
        plot_learning_curves(result, metric="auc")


def test_param_scores(result, tmp_path):
    path = tmp_path / "scores.png"
    fig = plot_param_scores(result, path=path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in visible] == ["l2", "dropout", "batch_size"]
    assert visible[0].get_xscale() == "log"  # l2 spans three decades
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {
        "candidate (mean ± 1 SE)",
        "best",
        "best - 1 SE",
        "one-SE pick",
    }
    assert_reads_well(fig)


def test_param_scores_with_long_categorical_values(make_result):
    hidden = [(256, 128, 64), (128, 64), (64, 64, 64, 64), (32,), (512, 256, 128, 64)]
    params = [
        {"model__hidden": h, "optimizer": o}
        for h, o in zip(hidden, ["rmsprop", "adam"] * 3, strict=False)
    ]
    rng = np.random.RandomState(0)
    fig = plot_param_scores(make_result(0.8 + rng.normal(0, 0.02, (5, 3)), params=params))
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks[0] == "(32,)" and ticks[-1] == "(512, 256, 128, 64)"  # by total units
    assert_reads_well(fig)


def test_param_scores_errors(make_result):
    constant = make_result(np.full((2, 3), 0.8), params=[{"a": 1}, {"a": 1}])
    with pytest.raises(ReportError, match=r"no hyperparameter takes more than one value"):
        plot_param_scores(constant)
    with pytest.raises(ReportError, match=r"no hyperparameter 'l3' in this search; choose one"):
        plot_param_scores(constant, params=["l3"])
    failed = make_result(np.full((2, 3), np.nan))
    with pytest.raises(ReportError, match=r"no COMPLETE candidate to plot"):
        plot_param_scores(failed)


def test_overfitting_gap(result, tmp_path):
    path = tmp_path / "gap.png"
    fig = plot_overfitting_gap(result, path=path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    top, bottom = fig.axes
    assert bottom.get_xlabel() == "l2  (more regularization →)"  # l2 leads the default order
    assert bottom.get_ylabel() == "Train - validation gap"
    assert top.get_ylabel() == "accuracy (mean over folds)"
    assert_reads_well(fig)
    fig = plot_overfitting_gap(leaderboard(result), param="batch_size")
    assert fig.axes[1].get_xlabel() == "batch_size  (← more regularization)"


def test_overfitting_gap_needs_train_scores(grid_search):
    from sklearn.base import clone

    no_train = clone(grid_search).set_params(return_train_score=False)
    no_train.fit(*_tiny_data())
    with pytest.raises(
        ReportError, match=r"fit scikit-learn searches with return_train_score=True"
    ):
        plot_overfitting_gap(no_train)
    assert_reads_well(plot_overfitting_gap(grid_search))  # C, an inverse penalty


def _tiny_data():
    from sklearn.datasets import make_classification

    return make_classification(n_samples=60, n_features=4, random_state=0)


def test_optuna_history(study, tmp_path):
    path = tmp_path / "history.png"
    fig = plot_optuna_history(study, path=path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Trial number"
    assert ax.get_ylabel() == "Mean CV accuracy (higher is better)"
    assert "1 failed not shown" in ax.get_title()
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    assert labels == {"complete trial", "pruned trial (partial mean)", "best so far"}
    assert_reads_well(fig)


def test_param_importances(study, tmp_path):
    path = tmp_path / "importances.png"
    fig = plot_param_importances(study, path=path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    ax = fig.axes[0]
    # Optuna's own plot, its bars named as the leaderboard names the parameters
    names = {t.get_text() for t in ax.get_yticklabels()}
    assert names == {"l2", "dropout", "batch_size"}
    assert "Importance" in ax.get_xlabel()
    assert "matplotlib.pyplot" in sys.modules  # Optuna draws through pyplot ...
    from tunekit.report._optuna_plots import release

    release(fig)  # ... and the report lets go of the figure once it is saved
    assert fig.number not in sys.modules["matplotlib.pyplot"].get_fignums()


def test_a_reports_optuna_plots_compute_the_importances_once(monkeypatch):
    """fANOVA, the slowest step of a study's report, runs once for the importances plot and
    the choice of the slice and contour plots' parameters; the plots are as before."""
    from tunekit.report._optuna_plots import _importances, optuna_plans, release

    study = optuna.create_study(direction="maximize", study_name="five")
    rng = np.random.RandomState(0)
    unit = optuna.distributions.FloatDistribution(0.0, 1.0)
    for _ in range(40):
        params = {name: float(rng.uniform()) for name in ("a", "b", "c", "d", "e")}
        value = params["c"] + 0.5 * params["a"] + rng.normal(0, 0.01)
        study.add_trial(
            optuna.trial.create_trial(
                value=value, params=params, distributions=dict.fromkeys(params, unit)
            )
        )
    expected = list(_importances(study))  # Optuna's own order, fANOVA with seed 0
    assert expected[:2] == ["c", "a"]

    calls = []
    fanova = optuna.importance.FanovaImportanceEvaluator
    evaluate = fanova.evaluate
    monkeypatch.setattr(fanova, "evaluate", lambda *a, **k: calls.append(1) or evaluate(*a, **k))
    plans = optuna_plans(study)
    figures = {name: draw() for name, draw in plans if name != "optuna_intermediate_values"}
    assert len(calls) == 1
    bars = [t.get_text() for t in figures["param_importances"].axes[0].get_yticklabels()]
    assert bars[::-1] == expected  # Optuna draws the most important bar on top
    contour_panels = [ax for ax in figures["optuna_contour"].axes if ax.get_visible()]
    contour = {ax.get_xlabel() for ax in contour_panels} | {
        ax.get_ylabel() for ax in contour_panels
    }
    assert contour - {"", "Objective Value"} == set(expected[:3])  # and the colour bar
    slice_labels = {ax.get_xlabel() for ax in figures["optuna_slice"].axes} - {""}
    assert slice_labels == set(expected[:4])
    for fig in figures.values():
        release(fig)


@pytest.mark.parametrize("n_complete", [0, 1])
def test_param_importances_that_cannot_be_computed(add_cv_trial, n_complete):
    study = optuna.create_study(direction="maximize", study_name="tiny")
    for _ in range(n_complete):
        add_cv_trial(study, {"batch_size": 32}, [0.8, 0.8, 0.8])
    add_cv_trial(study, {"batch_size": 64}, None, state="FAIL")
    with pytest.raises(
        ReportError, match=rf"study 'tiny': it has {n_complete} COMPLETE trial\(s\) .* at least 2"
    ):
        plot_param_importances(study)


@pytest.mark.parametrize("plot", [plot_optuna_history, plot_param_importances])
def test_optuna_plots_need_a_study(grid_search, plot):
    with pytest.raises(ReportError, match=r"no Optuna study in this result"):
        plot(grid_search)


def test_optuna_history_needs_a_complete_trial():
    study = optuna.create_study(study_name="empty")
    with pytest.raises(ReportError, match=r"study 'empty' has no COMPLETE trial"):
        plot_optuna_history(study)


def test_plots_accept_an_axes_free_figure_without_pyplot(result):
    fig = plot_param_scores(result)
    assert "matplotlib.pyplot" not in sys.modules or fig.canvas.manager is None


def _data_lines(ax):
    """The axes' data lines, with markers (not the reference lines): (linestyle, x, y)."""
    return [
        (line.get_linestyle(), list(line.get_xdata()), list(line.get_ydata()))
        for line in ax.get_lines()
        if line.get_marker() not in ("None", "", None)
    ]


def test_overfitting_gap_draws_points_when_other_parameters_vary(result, grid_search):
    fig = plot_overfitting_gap(result)  # l2 on the x axis; dropout and batch_size vary too
    top, bottom = fig.axes
    for ax in (top, bottom):
        assert {style for style, _, _ in _data_lines(ax)} == {"None"}  # markers, no lines
    train = next(y for _, _, y in _data_lines(top))
    assert len(train) == 4  # one point per complete candidate, not a mean per l2 value
    assert "2 other parameter(s) vary too" in fig._suptitle.get_text()
    alone = plot_overfitting_gap(grid_search)  # one parameter: lines through the means
    assert "-" in {style for style, _, _ in _data_lines(alone.axes[0])}


def test_optuna_history_scale_follows_the_complete_trials(study, add_cv_trial):
    add_cv_trial(study, {"model__l2": 1e-3, "model__dropout": 0.1, "batch_size": 32}, [-1.41],
                 state="PRUNED")  # fmt: skip
    fig = plot_optuna_history(study)
    ax = fig.axes[0]
    values = [t.value for t in study.trials if t.state.name == "COMPLETE"]
    low, high = ax.get_ylim()
    assert low > -1.0 and low < min(values) and high > max(values)
    edge = [line for line in ax.get_lines() if line.get_marker() == "v"]
    assert len(edge) == 1 and list(edge[0].get_ydata()) == [low]
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    assert "pruned trial beyond the axis (1)" in labels

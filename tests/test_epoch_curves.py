"""Per-epoch curves of the CV folds: stored once per Optuna trial, read back, and drawn.

Grid and random searches keep the curves their evaluator reports in
``epoch_curves_``; an Optuna study stores them in each trial's record
(``epoch_curves``, stored layout 2) and gives the same DataFrame back, whether
its trials ran one at a time or in batches on the stacked engine, and whether
the study is the search's own or loaded from its storage.
"""

import json
import math
import sqlite3

import numpy as np
import optuna
import pandas as pd
import pytest
from _studies import restore_old_study

import tunekit as tk
from tunekit.record import (
    CURVE_COLUMNS,
    CURVES,
    LAYOUT_VERSION,
    TrialRecord,
    curves_from_study,
    curves_rows,
)
from tunekit.report import leaderboard, load, plot_epoch_curves, write_report

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"model__l2": tk.Choice([0.0, 0.05])}


def _data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3)).astype("float32")
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    return X, y


def _clf(**kw):
    params = dict(model__hidden=(4,), epochs=3, batch_size=16, random_state=0, verbose=0)
    return tk.KerasClassifier(tk.builders.mlp, **{**params, **kw})


def _search(strategy, **kw):
    X, y = _data()
    params = dict(space=SPACE, strategy=strategy, cv=2, test_size=None, verbose=0,
                  baselines=False)  # fmt: skip
    if strategy == "optuna":
        params.update(n_trials=2, pruner=optuna.pruners.NopPruner())
    return tk.search(_clf(), X, y, **{**params, **kw})


def _by_params(result) -> dict:
    """``{l2: that candidate's curve rows, sorted}`` of a search."""
    out = {}
    for c, p in enumerate(result.cv_results_["params"]):
        rows = result.epoch_curves_[result.epoch_curves_["candidate"] == c]
        out[float(p["model__l2"])] = rows.drop(columns="candidate").sort_values(["fold", "epoch"])
    return out


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    folder = tmp_path_factory.mktemp("curves")
    url = f"sqlite:///{folder / 'studies.db'}"
    return {
        "grid": _search("grid"),
        "grid_sklearn": _search("grid", engine="sklearn"),
        "batched": _search("optuna", storage=url, study_name="batched"),
        "one_at_a_time": _search("optuna", engine="sklearn", storage=url, study_name="single"),
        "url": url,
    }


# ------------------------------------------------------------------ the record
def test_the_record_stores_curves_compactly_and_reads_them_back():
    record = TrialRecord()
    record.add_curves(0, [{"epoch": 1, "train_loss": 0.123456789, "test_score": 0.5},
                          {"epoch": 2, "train_loss": math.nan, "test_score": 0.75}])
    record.add_curves(1, [{"epoch": 1, "train_loss": 0.25, "test_score": math.inf}])
    attrs = record.attrs()
    assert attrs[CURVES] == {"train_loss": [[0.123457, None], [0.25]],
                             "test_score": [[0.5, 0.75], [None]]}  # fmt: skip
    json.dumps(attrs[CURVES], allow_nan=False)  # plain JSON: no NaN, no infinity
    assert CURVES not in record.attrs(curves=False)
    rows = pd.DataFrame(curves_rows(attrs, 7), columns=list(CURVE_COLUMNS))
    assert rows[["candidate", "fold", "epoch"]].values.tolist() == [[7, 0, 1], [7, 0, 2], [7, 1, 1]]
    assert rows["train_loss"].tolist()[::2] == [0.123457, 0.25]
    assert rows["val_loss"].isna().all() and rows["test_score"].isna().tolist() == [0, 0, 1]
    assert curves_rows({}, 0) == [] and TrialRecord().attrs().get(CURVES) is None


# ---------------------------------------------------------- searches and studies
@pytest.mark.slow
@pytest.mark.parametrize("kind, reference", [("batched", "grid"),
                                             ("one_at_a_time", "grid_sklearn")])
def test_optuna_curves_equal_what_the_trainer_reported(searches, kind, reference):
    result, grid = searches[kind], searches[reference]
    assert list(result.epoch_curves_.columns) == list(CURVE_COLUMNS)
    assert list(grid.epoch_curves_.columns) == list(CURVE_COLUMNS)
    ours, theirs = _by_params(result), _by_params(grid)
    assert ours and set(ours) <= set(theirs)
    for l2, rows in ours.items():
        assert len(rows) == 2 * 3  # 2 folds x 3 epochs
        expected = theirs[l2]
        keys = ["fold", "epoch"]
        assert rows[keys].values.tolist() == expected[keys].values.tolist()
        for column in ("train_loss", "test_score"):  # the same trainer, the same seed
            np.testing.assert_allclose(rows[column], expected[column], rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["batched", "one_at_a_time"])
def test_a_loaded_study_gives_the_searchs_curves(searches, kind):
    result = searches[kind]
    study = load(searches["url"], study=result.study_.study_name)
    assert study.user_attrs["tunekit_layout"]["version"] == LAYOUT_VERSION == 2
    loaded = curves_from_study(study)
    pd.testing.assert_frame_equal(loaded, result.epoch_curves_)
    stored = [t.user_attrs[CURVES] for t in study.trials]
    assert all(len(s["train_loss"]) == 2 and len(s["train_loss"][0]) == 3 for s in stored)


def test_one_storage_write_per_trial_holds_the_curves(monkeypatch):
    from tunekit.strategies import optuna_search

    writes = []
    real = optuna_search.set_user_attrs

    def counting(trial, attrs):
        writes.append((trial.number, CURVES in attrs))
        return real(trial, attrs)

    monkeypatch.setattr(optuna_search, "set_user_attrs", counting)
    _search("optuna", engine="sklearn", n_trials=1)
    assert [w for w in writes if w[1]] == [(0, True)]  # the curves: once, with the last write


@pytest.mark.parametrize(
    "engine", [pytest.param("auto", marks=pytest.mark.slow), "sklearn"]
)
def test_a_pruned_trial_keeps_its_curves_up_to_where_it_stopped(tmp_path, engine):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with pytest.raises(tk.TunekitError):  # every trial pruned after its first epoch
        _search("optuna", n_trials=2, storage=url, study_name="p", trial_batch=2,
                engine=engine, pruner=optuna.pruners.ThresholdPruner(lower=1.1))  # fmt: skip
    study = load(url, study="p")
    assert {t.state.name for t in study.trials} == {"PRUNED"}
    curves = curves_from_study(study)
    for c, trial in enumerate(study.trials):
        ends = curves[curves["candidate"] == c].groupby("fold")["epoch"].max()
        assert 0 < ends.sum() == trial.user_attrs["epochs_spent"] and ends.max() < 3
        assert curves.loc[curves["candidate"] == c, "train_loss"].notna().all()


def test_a_layout_1_study_loads_and_reports_without_curves(tmp_path):
    url = restore_old_study(tmp_path)
    for name in ("keras", "sklearn"):
        study = load(url, study=name)
        assert curves_from_study(study).empty
        assert list(curves_from_study(study).columns) == list(CURVE_COLUMNS)
        written = write_report(study, tmp_path / name)
        assert "epoch_curves" not in written and "html" in written
    with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
        keys = {k for (k,) in con.execute("SELECT DISTINCT key FROM trial_user_attributes")}
    assert CURVES not in keys


# ------------------------------------------------------------------ the figure
def _study_with_curves():
    """A study of three trials whose records hold curves (two folds, 3 or 4 epochs)."""
    study = optuna.create_study(direction="maximize", study_name="curves")
    dist = {"model__l2": optuna.distributions.FloatDistribution(0.0, 1.0)}
    rng = np.random.default_rng(0)
    for k, (l2, n_epochs) in enumerate([(0.0, 4), (0.01, 4), (0.1, 3)]):
        record = TrialRecord()
        for fold in range(2):
            record.add_fold(test_score=0.8 - 0.1 * k + 0.01 * fold, fit_time=1.0, score_time=0.1,
                            n_epochs=n_epochs)  # fmt: skip
            record.add_curves(fold, [{"epoch": e, "train_loss": 1 / e + rng.random() / 10,
                                      "test_score": 0.5 + 0.1 * e * rng.random(),
                                      "val_loss": math.nan} for e in range(1, n_epochs + 1)])
        attrs = record.attrs(params={"model__l2": l2})
        study.add_trial(optuna.trial.create_trial(
            params={"model__l2": l2}, distributions=dist, user_attrs=attrs,
            value=float(np.mean(attrs["cv_test_scores"]))))  # fmt: skip
    return study


def test_the_figures_validation_lines_are_the_stored_curve_means(tmp_path):
    study = _study_with_curves()
    curves = curves_from_study(study)
    fig = plot_epoch_curves(study)
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.get_lines() if line.get_gid()}
    drawn = sorted(int(g.rsplit(":", 1)[1]) for g in lines if g.startswith("validation:"))
    assert drawn == [0, 1, 2]
    for c in drawn:
        means = curves[curves["candidate"] == c].groupby("epoch")[["test_score", "train_loss"]]
        np.testing.assert_allclose(lines[f"validation:test_score:{c}"].get_ydata(),
                                   means.mean()["test_score"])  # fmt: skip
        np.testing.assert_allclose(lines[f"train:train_loss:{c}"].get_ydata(),
                                   means.mean()["train_loss"])  # fmt: skip
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "training loss" in legend and any(t.startswith("validation score") for t in legend)
    assert not any(t.startswith("validation loss") for t in legend)  # no such line: no entry
    assert any("least regularized" in t for t in legend)
    write_report(study, tmp_path / "r", plots=False)
    reloaded = load(tmp_path / "r")  # the report folder keeps the curves too
    pd.testing.assert_frame_equal(reloaded.epoch_curves_, curves)


def test_the_least_regularized_candidate_is_drawn_beside_the_best():
    from tunekit.report._curves import curve_candidates

    rng = np.random.default_rng(0)
    params = [{"model__l2": v} for v in (0.1, 0.01, 0.0, 1.0)]
    cv = {"params": params, "param_model__l2": np.ma.MaskedArray([p["model__l2"] for p in params])}
    for i in range(2):
        cv[f"split{i}_test_score"] = np.array([0.9, 0.8, 0.5, 0.7]) + rng.normal(0, 0.01, 4)
    cv["mean_test_score"] = (cv["split0_test_score"] + cv["split1_test_score"]) / 2
    cv["std_test_score"] = np.zeros(4)
    cv["rank_test_score"] = np.array([1, 2, 4, 3])
    lb = leaderboard(cv)
    curves = pd.DataFrame([(c, f, 1, 0.5, 0.5, np.nan) for c in range(4) for f in range(2)],
                          columns=list(CURVE_COLUMNS))  # fmt: skip
    assert curve_candidates(lb, curves, top=2) == {0: "best", 1: "best", 2: "least regularized"}
    assert curve_candidates(lb, curves, top=3)[2] == "least regularized"


def _two_candidates():
    params = [{"model__l2": 0.0}, {"model__l2": 0.1}]
    cv = {"params": params, "param_model__l2": np.ma.MaskedArray([0.0, 0.1]),
          "split0_test_score": np.array([0.8, 0.7]), "split1_test_score": np.array([0.9, 0.7]),
          "mean_test_score": np.array([0.85, 0.7]), "std_test_score": np.array([0.05, 0.0]),
          "rank_test_score": np.array([1, 2])}  # fmt: skip
    return leaderboard(cv)


@pytest.mark.parametrize("with_validation", [False, True])
def test_refit_curves_promise_no_line_they_do_not_draw(with_validation):
    from tunekit.report import plot_learning_curves

    history = {"loss": [0.7, 0.5, 0.4], "accuracy": [0.6, 0.7, 0.8]}
    if with_validation:
        history |= {"val_loss": [0.7, 0.6, 0.65], "val_accuracy": [0.6, 0.65, 0.6]}
    fig = plot_learning_curves(_two_candidates(), histories={0: history, 1: history})
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    gids = [line.get_gid() or "" for ax in fig.axes for line in ax.get_lines()]
    dashed = [g for g in gids if g.startswith("validation:")]
    assert ("validation" in legend) == bool(dashed) == with_validation
    assert ("best validation epoch" in legend) == with_validation
    assert "training" in legend and sum(g.startswith("train:") for g in gids) == 4


def test_the_report_command_draws_a_stored_studys_curves(tmp_path, capsys):
    from tunekit import cli

    url = f"sqlite:///{tmp_path / 'curves.db'}"
    stored = optuna.create_study(direction="maximize", study_name="curves", storage=url)
    for trial in _study_with_curves().trials:
        stored.add_trial(trial)
    out = tmp_path / "report"
    assert cli.main(["report", url, "--out", str(out)]) == 0
    assert (out / "epoch_curves.png").read_bytes().startswith(b"\x89PNG")
    assert "![Training and validation curves per epoch (CV folds)](epoch_curves.png)" in (
        out / "index.md"
    ).read_text(encoding="utf-8")
    page = (out / "leaderboard.html").read_text(encoding="utf-8")
    assert 'alt="Training and validation curves per epoch (CV folds)"' in page


def test_optunas_plots_leave_the_matplotlib_style_as_it_was(tmp_path):
    import matplotlib

    before = dict(matplotlib.rcParams)
    written = write_report(_study_with_curves(), tmp_path / "r", formats=("md",))
    assert {"optuna_slice", "param_importances"} <= set(written)
    changed = {k for k, v in matplotlib.rcParams.items() if before.get(k) != v}
    assert not changed, changed

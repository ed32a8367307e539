"""What a leaderboard and a result show in a terminal and in a notebook."""

import re

import numpy as np
import pandas as pd
import pytest

from tunekit.report import Leaderboard, leaderboard, result_html, result_text
from tunekit.report._table import text_table


def _with_baselines(result, n_splits=3):
    rng = np.random.RandomState(1)
    scores = {"baseline": ["dummy", "logistic"], "params": [{}, {}]}
    base = np.array([[0.55] * n_splits, 0.82 + rng.normal(0, 0.01, n_splits)])
    for i in range(n_splits):
        scores[f"split{i}_test_score"] = base[:, i]
        scores[f"split{i}_train_score"] = base[:, i] + 0.02
    scores["mean_test_score"] = base.mean(axis=1)
    scores["mean_train_score"] = base.mean(axis=1) + 0.02
    scores["heldout_test_score"] = np.array([0.5, 0.81])
    scores["mean_fit_time"] = np.array([0.001, 0.01])
    scores["seconds"] = 0.05
    result.baselines_ = scores
    return result


def test_print_shows_what_matters_in_100_columns(result):
    result = _with_baselines(result)
    long = {f"model__knob_with_a_long_name_{k}": 0.123456 * k for k in range(6)}
    for i, p in enumerate(result.cv_results_["params"]):
        p.update({k: v * (i + 1) for k, v in long.items()})
    text = result_text(result)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 100
    header = next(line for line in lines if line.startswith("rank"))
    for word in ("parameters", "CV mean ± SE", "held-out", "gap", "tied"):
        assert word in header
    assert any(line.startswith("best: candidate") for line in lines)
    assert "baselines: the chosen model" in text
    assert re.search(r"^\s+-\s+baseline: logistic\s+0\.8\d{3} ± 0\.\d{4}", text, re.M)
    assert "…" in text  # long parameter lists are shortened, not wrapped


def test_printing_a_leaderboard_is_compact_and_every_column_stays(result):
    lb = leaderboard(_with_baselines(result))
    assert isinstance(lb, Leaderboard) and isinstance(lb, pd.DataFrame)
    shown = repr(lb)
    assert max(map(len, shown.splitlines())) <= 100
    assert shown.splitlines()[0].split() == ["rank", "parameters", "CV", "mean", "±", "SE",
                                             "held-out", "gap", "tied"]  # fmt: skip
    assert "baseline: dummy" in shown and "failed" not in shown.split("\n")[0]
    assert "mean_fit_time" in lb.columns and "mean_fit_time" in lb.to_string()
    subset = lb[["rank", "mean_val_score"]]
    assert "mean_val_score" in repr(subset)  # not a leaderboard any more: pandas' own repr


def test_text_table_shows_failed_and_hidden_rows(result):
    lb = leaderboard(result)
    text = text_table(lb, max_rows=3)
    assert "3 not shown" in text
    full = text_table(lb, max_rows=None)
    assert "fail" in full  # a failed candidate shows its state where the score would be


@pytest.mark.parametrize("curves", [None, "frame"])
def test_notebook_view_shows_summary_leaderboard_and_curves(result, curves, keras_history):
    result = _with_baselines(result)
    if curves == "frame":
        rows = [
            {"candidate": c, "fold": f, "epoch": e, "train_loss": 1 / e + c,
             "test_score": 0.5 + e / 20, "val_loss": np.nan}
            for c in (0, 1) for f in (0, 1) for e in range(1, 6)
        ]  # fmt: skip
        result.epoch_curves_ = pd.DataFrame(rows)
    else:
        result.histories_ = {1: keras_history()}
    html = result_html(result)
    assert "baselines: the chosen model" in html
    assert "<table>" in html and "baseline: logistic" in html
    assert '<img alt="per-epoch training and validation curves' in html
    assert 'src="data:image/png;base64,' in html


def test_notebook_view_without_any_curves(result):
    result.histories_ = {}
    html = result_html(result)
    assert "<table>" in html and "<img" not in html

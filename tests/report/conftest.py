"""Small, fast inputs for the report tests: no Keras anywhere."""

import types

import numpy as np
import optuna
import pytest

optuna.logging.set_verbosity(optuna.logging.WARNING)

N_SPLITS = 3


def _make_result(
    test_scores,
    *,
    params=None,
    train_scores=None,
    states=None,
    reasons=None,
    heldout=None,
    best_epochs=None,
    histories=None,
    study=None,
    ratio=0.5,
    strategy="grid",
    scoring="accuracy",
):
    """A stand-in for tunekit.api.SearchResult built from per-fold scores.

    ``test_scores`` is (n_candidates, n_splits), NaN where a fold was not scored.
    """
    test = np.asarray(test_scores, dtype=float)
    n, n_splits = test.shape
    params = params or [{"model__l2": 10.0 ** -(i + 1)} for i in range(n)]
    cv = {"params": params}
    for name in {k for p in params for k in p}:
        values = [p.get(name) for p in params]
        cv[f"param_{name}"] = np.ma.MaskedArray(
            np.array(values, dtype=object), mask=[v is None for v in values]
        )
    for i in range(n_splits):
        cv[f"split{i}_test_score"] = test[:, i]
    cv["mean_test_score"] = test.mean(axis=1)
    cv["std_test_score"] = test.std(axis=1)
    means = cv["mean_test_score"]
    worst = np.nanmin(means) - 1 if np.isfinite(means).any() else 0.0
    filled = np.where(np.isnan(means), worst, means)
    cv["rank_test_score"] = (filled[None, :] > filled[:, None]).sum(axis=1) + 1
    if train_scores is not None:
        train = np.asarray(train_scores, dtype=float)
        for i in range(n_splits):
            cv[f"split{i}_train_score"] = train[:, i]
        cv["mean_train_score"] = train.mean(axis=1)
        cv["std_train_score"] = train.std(axis=1)
    cv["mean_fit_time"] = np.full(n, 0.5)
    cv["std_fit_time"] = np.zeros(n)
    cv["mean_score_time"] = np.full(n, 0.01)
    cv["std_score_time"] = np.zeros(n)
    if states is not None:
        cv["state"] = np.array(states, dtype=object)
        cv["failure_reason"] = np.array(reasons or [""] * n, dtype=object)
    cv["heldout_test_score"] = np.array(
        heldout if heldout is not None else [np.nan] * n, dtype=float
    )
    if best_epochs is not None:
        epochs = np.asarray(best_epochs, dtype=float)
        for i in range(n_splits):
            cv[f"split{i}_best_epoch"] = epochs[:, i]
            cv[f"split{i}_n_epochs"] = epochs[:, i] + 5
    return types.SimpleNamespace(
        cv_results_=cv,
        strategy=strategy,
        scoring=scoring,
        greater_is_better=True,
        n_splits_=n_splits,
        test_train_ratio_=ratio,
        histories_=histories or {},
        study_=study,
        search_=None,
        wall_time_=12.5,
        n_fits_=int(np.isfinite(test).sum()),
        n_epochs_=None,
    )


def _keras_history(n_epochs=12, overfit=0.3):
    """A Keras-like History.history dict whose validation loss turns up."""
    epochs = np.arange(1, n_epochs + 1)
    loss = 0.7 * np.exp(-epochs / 4) + 0.05
    val = 0.7 * np.exp(-epochs / 4) + 0.15 + overfit * (epochs / n_epochs) ** 2
    return {
        "loss": loss.tolist(),
        "val_loss": val.tolist(),
        "accuracy": (1 - loss / 2).tolist(),
        "val_accuracy": (1 - val / 2).tolist(),
    }


@pytest.fixture
def make_result():
    """Factory of SearchResult stand-ins: ``make_result(test_scores, **extras)``."""
    return _make_result


@pytest.fixture
def keras_history():
    """Factory of Keras-like history dicts."""
    return _keras_history


@pytest.fixture
def add_cv_trial():
    """Factory adding a tunekit-style finished trial to a study."""
    return _add_cv_trial


@pytest.fixture
def result():
    """Four complete candidates, one pruned, one failed; train scores and histories."""
    rng = np.random.RandomState(0)
    base = np.array([0.80, 0.84, 0.83, 0.78, 0.90, np.nan])
    test = base[:, None] + rng.normal(0, 0.01, (6, N_SPLITS))
    test[4, 1:] = np.nan  # pruned after its first fold, with a high partial score
    test[5, :] = np.nan  # failed
    params = [
        {"model__l2": 1e-4, "model__dropout": 0.0, "batch_size": 64},
        {"model__l2": 1e-3, "model__dropout": 0.2, "batch_size": 64},
        {"model__l2": 1e-2, "model__dropout": 0.2, "batch_size": 32},
        {"model__l2": 1e-1, "model__dropout": 0.5, "batch_size": 32},
        {"model__l2": 1e-3, "model__dropout": 0.5, "batch_size": 128},
        {"model__l2": 1e-2, "model__dropout": 0.0, "batch_size": 128},
    ]
    return _make_result(
        test,
        params=params,
        train_scores=np.nan_to_num(test, nan=0.0) + 0.1,
        states=["COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "PRUNED", "FAIL"],
        reasons=["", "", "", "", "", "DivergedError: loss became NaN"],
        heldout=[np.nan, 0.83, np.nan, np.nan, np.nan, np.nan],
        best_epochs=[
            [5, 6, 7],
            [8, 8, 9],
            [4, np.nan, 6],
            [10, 10, 10],
            [3, np.nan, np.nan],
            [np.nan] * 3,
        ],
        histories={1: _keras_history(overfit=0.1), 2: _keras_history(overfit=0.3)},
    )


@pytest.fixture
def grid_search():
    """A fitted GridSearchCV over a Pipeline, with train scores: plain scikit-learn."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=90, n_features=6, random_state=0)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    grid = {"logisticregression__C": [0.001, 0.01, 0.1, 1.0]}
    return GridSearchCV(pipe, grid, cv=3, return_train_score=True).fit(X, y)


def _distributions():
    return {
        "model__l2": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True),
        "model__dropout": optuna.distributions.FloatDistribution(0.0, 0.5),
        "batch_size": optuna.distributions.CategoricalDistribution([32, 64, 128]),
    }


def _add_cv_trial(study, params, test, *, state="COMPLETE", train=None, value=None, **attrs):
    """Add a finished trial the way tunekit's Optuna strategy records one."""
    user_attrs = {"params": params, **attrs}
    if test is not None:
        user_attrs["cv_test_scores"] = [float(s) for s in test]
        user_attrs.setdefault("fit_times", [0.4] * len(test))
        user_attrs.setdefault("score_times", [0.01] * len(test))
    if train is not None:
        user_attrs["cv_train_scores"] = [float(s) for s in train]
    if state == "COMPLETE" and value is None:
        value = float(np.mean(test))
    dists = _distributions()
    study.add_trial(
        optuna.trial.create_trial(
            state=getattr(optuna.trial.TrialState, state),
            value=value if state == "COMPLETE" else None,
            params={k: v for k, v in params.items() if k in dists},
            distributions={k: d for k, d in dists.items() if k in params},
            user_attrs=user_attrs,
        )
    )


@pytest.fixture
def study():
    """An in-memory study as tunekit writes it: complete, pruned and failed trials."""
    study = optuna.create_study(direction="maximize", study_name="mlp-overfitting")
    study.set_user_attr("scoring", "accuracy")
    study.set_user_attr("n_splits", N_SPLITS)
    study.set_user_attr("test_train_ratio", 0.5)
    rng = np.random.RandomState(0)
    for _ in range(8):
        params = {
            "model__l2": float(10 ** rng.uniform(-5, -1)),
            "model__dropout": float(rng.uniform(0, 0.5)),
            "batch_size": int(rng.choice([32, 64, 128])),
            "hidden": [16, 16],
        }
        test = 0.8 + 0.1 * params["model__dropout"] + rng.normal(0, 0.01, N_SPLITS)
        _add_cv_trial(
            study, params, test, train=test + 0.05, best_epochs=[4, None, 6], n_epochs=[9, 20, 11]
        )
    _add_cv_trial(
        study, {"model__l2": 1e-3, "model__dropout": 0.1, "batch_size": 32}, [0.95], state="PRUNED"
    )
    _add_cv_trial(
        study,
        {"model__l2": 1e-2, "model__dropout": 0.3, "batch_size": 64},
        None,
        state="FAIL",
        failure_reason="DivergedError: loss became NaN at epoch 3",
    )
    return study

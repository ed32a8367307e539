"""Log a search to MLflow: one run per search, a nested run per candidate.

MLflow is an optional dependency (``pip install 'tunekit[mlflow]'``), imported only
when a search asks for it (``tk.search(..., mlflow=True)`` or ``tracking_uri=...``,
``tunekit run STUDY --mlflow URI``). What is logged:

* the search's run: the strategy, scoring, folds, engine and candidate count as
  parameters; the chosen candidate's CV mean and held-out score, the wall time; the
  report's files (Markdown, HTML, CSV, JSON and plots) as artifacts;
* one nested run per candidate: its parameters; its CV mean, standard deviation,
  standard error and per-fold scores; its held-out score; its state and failure
  reason as tags; its per-epoch curves, when the search recorded them, as metrics with
  the epoch as step (means over the folds).

The default store is the folder ``mlruns/`` of the working directory: an SQLite
database ``mlruns/mlflow.db`` with the artifacts beside it (MLflow 3 refuses plain
file stores); ``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`` shows it.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tunekit._version import __version__
from tunekit.report import write_report

__all__ = ["DEFAULT_DIR", "ENV_VAR", "log_search", "resolve_tracking_uri"]

logger = logging.getLogger("tunekit")

#: The folder of the default local store, in the working directory.
DEFAULT_DIR = "mlruns"
#: The environment variable that ``tunekit run --mlflow URI`` sets for its study processes.
ENV_VAR = "TUNEKIT_MLFLOW_URI"
_EXPERIMENT = "tunekit"
_MAX_PARAM = 6000  # MLflow's limit on a parameter's value
_MAX_TAG = 5000


def resolve_tracking_uri(mlflow: Any, tracking_uri: str | None) -> str | None:
    """The store a search logs to: ``None`` when MLflow was not asked for.

    ``mlflow=True`` without ``tracking_uri`` is the default local store; a
    ``tracking_uri`` alone asks for MLflow too; so does the environment
    variable :data:`ENV_VAR`. A URI without a scheme is a folder for a local store.
    """
    if mlflow not in (True, False, None) and not isinstance(mlflow, str):
        raise ValueError(f"mlflow must be True, False or a tracking URI, got {mlflow!r}")
    uri = tracking_uri or (mlflow if isinstance(mlflow, str) else None)
    if uri is None and mlflow is not True:
        uri = os.environ.get(ENV_VAR) or None
        if uri is None:
            return None
    if importlib.util.find_spec("mlflow") is None:  # before any training, not after it
        raise ImportError(
            "logging to MLflow needs MLflow, which is not installed: "
            "pip install 'tunekit[mlflow]'"
        )
    if uri is None or "://" not in uri:
        folder = Path(uri or DEFAULT_DIR).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{folder / 'mlflow.db'}"
    return uri


def _client(uri: str):
    try:  # optional dependency: only a search that asks for MLflow imports it
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ImportError(
            "logging to MLflow needs MLflow, which is not installed: "
            "pip install 'tunekit[mlflow]'"
        ) from None
    return MlflowClient(tracking_uri=uri)


def _experiment(client, uri: str, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):  # a local store keeps its artifacts beside its database
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    return client.create_experiment(name, artifact_location=artifacts)


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _metrics(values: dict[str, Any], step: int = 0) -> list:
    from mlflow.entities import Metric  # optional dependency, loaded by _client first

    now = int(time.time() * 1000)
    finite = {k: _finite(v) for k, v in values.items()}
    return [Metric(k, v, now, step) for k, v in finite.items() if v is not None]


def _params(values: dict[str, Any]) -> list:
    from mlflow.entities import Param  # optional dependency, loaded by _client first

    return [Param(str(k), str(v)[:_MAX_PARAM]) for k, v in values.items()]


def _tags(values: dict[str, Any]) -> list:
    from mlflow.entities import RunTag  # optional dependency, loaded by _client first

    return [RunTag(str(k), str(v)[:_MAX_TAG]) for k, v in values.items() if v not in (None, "")]


def _at(cv: dict, key: str, i: int, default: Any = None) -> Any:
    """Row ``i`` of a ``cv_results_`` column, ``default`` when the search did not record it."""
    column = cv.get(key)
    return default if column is None else column[i]


def _candidate(cv: dict, i: int, n_splits: int) -> tuple[dict, dict, dict]:
    """A candidate's parameters, metrics and tags, from ``cv_results_``."""
    folds = [_at(cv, f"split{s}_test_score", i, np.nan) for s in range(n_splits)]
    finite = [f for f in folds if _finite(f) is not None]
    se = float(np.std(finite) / math.sqrt(len(finite))) if len(finite) > 1 else None
    metrics = {
        "mean_cv_score": cv["mean_test_score"][i],
        "std_cv_score": _at(cv, "std_test_score", i),
        "se_cv_score": se,
        "heldout_test_score": _at(cv, "heldout_test_score", i),
        **{f"cv_score_fold{s}": f for s, f in enumerate(folds)},
    }
    tags = {"state": _at(cv, "state", i, "COMPLETE"),
            "failure_reason": _at(cv, "failure_reason", i)}  # fmt: skip
    return dict(cv["params"][i]), metrics, tags


def _curve_metrics(curves: Any, i: int) -> list:
    """A candidate's per-epoch curves, means over its folds, as metrics with steps."""
    if curves is None or not len(curves) or "candidate" not in curves:
        return []
    rows = curves[curves["candidate"] == i]
    if rows.empty:
        return []
    means = rows.groupby("epoch")[["train_loss", "test_score", "val_loss"]].mean()
    out = []
    for epoch, row in means.iterrows():
        out += _metrics(
            {"epoch_train_loss": row["train_loss"], "epoch_cv_score": row["test_score"],
             "epoch_val_loss": row["val_loss"]}, step=int(epoch),
        )  # fmt: skip
    return out


def log_search(
    result: Any, *, tracking_uri: str, experiment: str = _EXPERIMENT, run_name: str | None = None
) -> str:
    """Log a search result to MLflow; return the search's run id.

    Parameters
    ----------
    result : SearchResult
        What ``tunekit.search`` returned.
    tracking_uri : str
        The MLflow store (see :func:`resolve_tracking_uri`).
    experiment : str, default="tunekit"
        The experiment the runs go to, created when missing.
    run_name : str, default=None
        The search run's name; by default the strategy and scoring.
    """
    client = _client(tracking_uri)
    experiment_id = _experiment(client, tracking_uri, experiment)
    cv = result.cv_results_
    name = run_name or f"{result.strategy} search ({result.scoring})"
    parent = client.create_run(experiment_id, run_name=name).info.run_id
    params = {"strategy": result.strategy, "scoring": result.scoring,
              "n_splits": result.n_splits_, "n_candidates": len(cv["params"]),
              "engine": result.engine_, "best_params": result.best_params_}  # fmt: skip
    metrics = {"best_cv_score": result.best_score_, "heldout_score": result.heldout_score_,
               "wall_time_s": result.wall_time_}  # fmt: skip
    client.log_batch(parent, metrics=_metrics(metrics), params=_params(params),
                     tags=_tags({"tunekit.version": __version__}))  # fmt: skip
    curves = getattr(result, "epoch_curves_", None)
    for i in range(len(cv["params"])):
        cparams, cmetrics, ctags = _candidate(cv, i, result.n_splits_)
        child = client.create_run(
            experiment_id, run_name=f"candidate {i}",
            tags={"mlflow.parentRunId": parent, "tunekit.candidate": str(i)},
        ).info.run_id  # fmt: skip
        client.log_batch(child, metrics=_metrics(cmetrics) + _curve_metrics(curves, i),
                         params=_params(cparams), tags=_tags(ctags))  # fmt: skip
        client.set_terminated(child, status="FINISHED" if ctags["state"] == "COMPLETE" else
                              "FAILED" if ctags["state"] == "FAIL" else "KILLED")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        write_report(result, folder)
        client.log_artifacts(parent, folder, artifact_path="report")
    client.set_terminated(parent)
    logger.info("logged to MLflow: run %s in %s", parent, tracking_uri)
    return parent

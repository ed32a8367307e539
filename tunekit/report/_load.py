"""Read a result back for reporting: Optuna storages, result directories, JSON, CSV.

Nothing read here is ever unpickled: only JSON, CSV and Optuna's relational
storages (plain SQL rows) are accepted.
"""

import difflib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunekit.exceptions import ReportError
from tunekit.record import BASELINE, CURVE_COLUMNS, check_readable, param_value
from tunekit.report._nested import nested_rows
from tunekit.report._source import LoadedResult, baseline_scores
from tunekit.storage.urls import SQLITE_SUFFIXES, redact_url, scrub, sqlite_url

__all__ = ["load"]

logger = logging.getLogger("tunekit.report")

_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
_TEXT_KEYS = {"state", "failure_reason", "refit_failure"}


def _is_url(source: Any) -> bool:
    return isinstance(source, str) and "://" in source


def _open_study(url: str, study: str | None) -> Any:
    """Load one study from an Optuna RDB storage without creating or changing tables."""
    # start-up: Optuna and SQLAlchemy load with the first study read, so that
    # `import tunekit.report` and `tunekit --help` stay light
    import optuna

    from tunekit.storage import open_for_reading

    shown = redact_url(url)
    try:
        storage = open_for_reading(url)
        names = optuna.study.get_all_study_names(storage=storage)
    except ValueError as err:
        raise ReportError(str(err)) from None
    if not names:
        raise ReportError(f"the storage {shown} holds no study; run a study first")
    if study is None:
        if len(names) > 1:
            raise ReportError(
                f"the storage {shown} holds {len(names)} studies {sorted(names)}; choose one "
                "with study=NAME (command line: --study NAME)"
            )
        study = names[0]
    elif study not in names:
        close = difflib.get_close_matches(study, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ReportError(f"no study named {study!r} in {shown}; it holds {sorted(names)}.{hint}")
    try:
        loaded = optuna.load_study(study_name=study, storage=storage)
    except Exception as exc:
        raise ReportError(
            f"cannot load study {study!r} from {shown}: {scrub(str(exc), url)}"
        ) from None
    check_readable(loaded)
    return loaded


def _decode_cv(raw: dict[str, Any]) -> dict[str, Any]:
    cv: dict[str, Any] = {}
    for key, values in raw.items():
        if key == "params":
            cv[key] = [{k: param_value(v) for k, v in p.items()} for p in values]
        elif key.startswith("param_"):
            array = np.ma.MaskedArray(np.empty(len(values), dtype=object), mask=True)
            for i, value in enumerate(values):
                if value is not None:
                    array[i] = param_value(value)
            cv[key] = array
        elif key in _TEXT_KEYS:
            cv[key] = np.array(["" if v is None else str(v) for v in values], dtype=object)
        else:
            cv[key] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return cv


def _read_json(path: Path) -> Any:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {str(path)!r} as JSON: {exc}") from None
    kind = payload.get("format") if isinstance(payload, dict) else None
    if kind == "tunekit.cv_results":
        meta = payload.get("meta") or {}
        histories = {int(k): v for k, v in (payload.get("histories") or {}).items()}
        return LoadedResult(
            cv_results_=_decode_cv(payload["cv_results"]),
            histories_=histories,
            strategy=meta.get("strategy"),
            scoring=meta.get("scoring"),
            metric=meta.get("metric") or "score",
            n_splits_=meta.get("n_splits"),
            test_train_ratio_=meta.get("test_train_ratio"),
            test_train_ratio_source="result" if meta.get("test_train_ratio") else None,
            wall_time_=meta.get("wall_time"),
            n_fits_=meta.get("n_fits"),
            n_epochs_=meta.get("n_epochs"),
            source=str(path),
            baselines_=baseline_scores(payload.get("baselines")),
            nested_=nested_rows(payload.get("nested")),
            epoch_curves_=_read_curves(payload.get("epoch_curves")),
        )
    if kind == "tunekit.leaderboard":
        frame = pd.DataFrame(payload["rows"], columns=payload["columns"]).set_index("candidate")
        for column in frame.columns:
            if column.startswith("param_") and frame[column].dtype == object:
                frame[column] = [param_value(v) for v in frame[column]]
        for column in ("tied_with_best", "one_se_pick"):
            if column in frame.columns:
                frame[column] = frame[column].fillna(False).astype(bool)
        if "state" in frame.columns and frame["state"].eq(BASELINE).any():
            frame["rank"] = frame["rank"].astype("Int64")
        frame.attrs = dict(payload.get("meta") or {})
        return frame
    if isinstance(payload, dict) and "params" in payload:  # a bare cv_results_ dict
        return LoadedResult(cv_results_=_decode_cv(payload), source=str(path))
    raise ReportError(
        f"{str(path)!r} is not a tunekit JSON file (format 'tunekit.cv_results' or "
        f"'tunekit.leaderboard'); got format={kind!r}"
    )


def _read_curves(raw: Any) -> pd.DataFrame | None:
    """The ``epoch_curves`` of a ``cv_results.json`` (columns of numbers, None as NaN)."""
    if not isinstance(raw, dict) or not set(CURVE_COLUMNS) <= set(raw):
        return None
    frame = pd.DataFrame(
        {c: np.array([np.nan if v is None else v for v in raw[c]], dtype=np.float64)
         for c in CURVE_COLUMNS}
    )
    if not len(frame):
        return None
    return frame.astype({"candidate": np.int64, "fold": np.int64, "epoch": np.int64})


def _read_csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, index_col=0)
    if not {"rank", "mean_val_score", "state"} <= set(frame.columns):
        raise ReportError(
            f"{str(path)!r} is not a leaderboard CSV written by tunekit.report.write "
            "(it needs the columns rank, mean_val_score and state)"
        )
    frame.index = pd.Index([_candidate(v) for v in frame.index], name="candidate")
    if frame["state"].eq(BASELINE).any():
        frame["rank"] = frame["rank"].astype("Int64")
    return frame


def _candidate(label: Any) -> Any:
    """A candidate number as int; a baseline's label (``baseline:ridge``) as is."""
    text = str(label)
    return int(text) if text.lstrip("-").isdigit() else text


def _from_directory(path: Path, study: str | None) -> Any:
    databases = sorted(p for p in path.iterdir() if p.suffix.lower() in SQLITE_SUFFIXES)
    if len(databases) > 1 and (study is not None or not (path / "cv_results.json").is_file()):
        raise ReportError(
            f"{str(path)!r} holds several databases {[p.name for p in databases]}; pass one "
            "of them (or its sqlite:/// URL) instead of the directory"
        )
    if study is not None and databases:
        return _open_study(sqlite_url(databases[0], absolute=True), study)
    for name, reader in (
        ("cv_results.json", _read_json),
        ("leaderboard.json", _read_json),
        ("leaderboard.csv", _read_csv),
    ):
        if (path / name).is_file():
            return reader(path / name)
    if databases:
        return _open_study(sqlite_url(databases[0], absolute=True), study)
    pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in _PICKLE_SUFFIXES)
    extra = (
        f" It holds {pickles}, but pickles are never loaded (unpickling runs arbitrary code)."
        if pickles
        else ""
    )
    raise ReportError(
        f"{str(path)!r} is not a result directory: expected cv_results.json, "
        "leaderboard.json, leaderboard.csv or one SQLite study database (.db, .sqlite, "
        f".sqlite3).{extra}"
    )


def load(source: str | os.PathLike, study: str | None = None) -> Any:
    """Read a search result back for :func:`leaderboard` and the writers.

    Parameters
    ----------
    source : str or path-like
        One of: an Optuna storage URL (``sqlite:///study.db``,
        ``postgresql://user:password@host/db``); a result directory written by
        :func:`write_report` (or holding ``leaderboard.json``,
        ``leaderboard.csv`` or one SQLite study database); or one such file.
    study : str, default=None
        The study to read from a storage; may be omitted when the storage
        holds exactly one.

    Returns
    -------
    result : optuna.study.Study, LoadedResult or pandas.DataFrame
        A study (from a storage), a :class:`LoadedResult` (from
        ``cv_results.json``) or a leaderboard (from ``leaderboard.json`` or
        ``.csv``); :func:`leaderboard` accepts each.

    Raises
    ------
    ReportError
        If the source does not exist, is not a format tunekit reads, or the
        storage cannot be read. Messages never contain the URL's password.

    Notes
    -----
    Nothing is unpickled: pickled results (``.pkl``, ``.joblib``) are refused,
    because unpickling can run arbitrary code. Storages are opened without
    creating tables.

    Examples
    --------
    >>> from tunekit.report import load, leaderboard
    >>> study = load("sqlite:///results/study.db", study="mlp")  # doctest: +SKIP
    >>> leaderboard(study).head()  # doctest: +SKIP
    """
    if _is_url(source):
        return _open_study(str(source), study)
    path = Path(os.fspath(source))
    if path.is_dir():
        return _from_directory(path, study)
    if not path.exists():
        raise ReportError(
            f"no such file or directory: {str(path)!r}; pass a storage URL "
            "(sqlite:///..., postgresql://...) or a result directory"
        )
    suffix = path.suffix.lower()
    if suffix in SQLITE_SUFFIXES:
        return _open_study(sqlite_url(path, absolute=True), study)
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in _PICKLE_SUFFIXES:
        raise ReportError(
            f"refusing to unpickle {str(path)!r}: unpickling runs arbitrary code. Report from "
            "the study storage or from a directory written by tunekit.report.write_report"
        )
    raise ReportError(
        f"cannot read {str(path)!r}: expected a .json, .csv or SQLite (.db, .sqlite, .sqlite3) "
        "file, a result directory or a storage URL"
    )

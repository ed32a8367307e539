"""What a study did: its outcome, the summary table, and the report files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunekit.report import atomic_write_text, leaderboard, resolve, write_report

__all__ = [
    "StudyOutcome",
    "check_writable",
    "describe_params",
    "summarize",
    "write_study_report",
]


@dataclass
class StudyOutcome:
    """What :func:`run_study` did.

    Attributes
    ----------
    study_name : str
    storage : str
        The storage URL, password masked.
    result : SearchResult, LoadedResult or None
        The search result the report was made from (``None`` for a worker).
    summary : pandas.DataFrame or None
        One row per candidate: label, validation mean and standard error,
        training score, gap, held-out score, corrected p-value against the
        best and whether it is tied with it; ordered as asked (``rank_by``).
    report : dict of str to pathlib.Path
        Files written (empty for a worker or without ``out``).
    n_finished : int
        Finished (complete or pruned) trials in the study.
    interrupted : bool
        Stopped by Ctrl-C; what finished is kept and reported.
    """

    study_name: str
    storage: str
    result: Any = None
    summary: Any = None
    report: dict = field(default_factory=dict)
    n_finished: int = 0
    interrupted: bool = False


def describe_params(params: Mapping[str, Any]) -> str:
    def short(value):
        if isinstance(value, float):
            return f"{value:.3g}"
        return str(value)

    return ", ".join(f"{k.rsplit('__', 1)[-1]}={short(v)}" for k, v in params.items()) or "-"


def summarize(obj, *, labels: Mapping[int, str] | None = None, rank_by: str = "cv"):
    """One row per candidate with the report's statistics, for people.

    Parameters
    ----------
    obj : object
        A search result, study or anything :func:`tunekit.report.leaderboard` reads.
    labels : dict of int to str, default=None
        Optuna trial number to a configuration's name.
    rank_by : {"cv", "heldout", "plan"}, default="cv"
        Row order: the leaderboard's (cross-validation) ranking, the held-out
        score (best first, candidates without one last), or the plan's order.

    Returns
    -------
    summary : pandas.DataFrame
    """


    src = resolve(obj)
    lb = leaderboard(src)
    numbers = np.asarray(src.cv_results_.get("trial_number", np.arange(len(lb))))
    params = src.cv_results_["params"]
    rows = []
    for index, row in lb.iterrows():
        if row["state"] == "BASELINE":
            continue  # beside the candidates: summed up in attrs["baseline_summary"]
        number = int(numbers[int(index)])
        label = (labels or {}).get(number) or describe_params(params[int(index)])
        rows.append(
            {
                "trial": number,
                "configuration": label,
                "val_score": row["mean_val_score"],
                "se": row["se_val_score"],
                "train_score": row.get("mean_train_score", np.nan),
                "gap": row.get("train_val_gap", np.nan),
                "heldout_score": row.get("heldout_test_score", np.nan),
                "p_value": row.get("p_value", np.nan),
                "tied_with_best": bool(row.get("tied_with_best", False)),
                "state": row["state"],
            }
        )
    frame = pd.DataFrame(rows)
    frame.attrs["scoring"] = lb.attrs.get("scoring")
    frame.attrs["baseline_summary"] = lb.attrs.get("baseline_summary")
    if rank_by == "heldout":
        frame = frame.sort_values(
            "heldout_score", ascending=False, na_position="last", kind="stable"
        )
    elif rank_by == "plan":
        frame = frame.sort_values("trial", kind="stable")
    elif rank_by != "cv":
        raise ValueError(f"rank_by must be 'cv', 'heldout' or 'plan', got {rank_by!r}")
    return frame.reset_index(drop=True)


def _summary_text(summary, title: str) -> str:
    shown = summary.drop(columns=[c for c in summary.columns if summary[c].isna().all()])
    text = shown.to_string(index=False, float_format=lambda v: f"{v:.4f}")
    scoring = summary.attrs.get("scoring") or "score"
    return (
        f"# {title}\n\nScores: {scoring}, higher is better. val_score: mean over the "
        "cross-validation folds (se: its standard error); heldout_score: the untouched test "
        "set; p_value: corrected t-test against the best (tied_with_best: p >= 0.05).\n\n"
        + (f"Baselines: {summary.attrs['baseline_summary']}.\n\n"
           if summary.attrs.get("baseline_summary") else "")
        + f"```text\n{text}\n```\n"
    )


def check_writable(out) -> None:
    """Refuse a report directory that cannot be created or written, before any trial."""

    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise type(err)(
            err.errno,
            f"cannot write the report to {out}: {os.strerror(err.errno) if err.errno else err}"
            "; pass another --out (out=) or fix the directory's permissions. Nothing was run.",
        ) from err


def write_study_report(result, out, outcome: StudyOutcome, title: str) -> dict:
    """The report and ``summary.md``, every file atomically; a disk error says what to do.

    Raises
    ------
    OSError
        Naming the file that could not be written (an unwritable or full
        directory) and the command that rebuilds the report from the study,
        which its storage keeps intact.
    """

    try:
        written = write_report(result, out)
        written["summary"] = atomic_write_text(
            Path(out) / "summary.md", _summary_text(outcome.summary, title)
        )
    except OSError as err:
        reason = err.strerror or str(err)
        if not reason.startswith("cannot write"):
            reason = f"cannot write the report to {out}: {reason}"
        raise type(err)(
            err.errno,
            f"{reason}. The {outcome.n_finished} finished trials of study "
            f"{outcome.study_name!r} are intact in {outcome.storage}: rebuild the report once "
            f"the disk is fixed with: tunekit report {outcome.storage} --study "
            f"{outcome.study_name} --out {out}",
        ) from err
    return written

"""Short, readable labels for parameters, values, table cells and candidates."""

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "candidate_labels",
    "display_names",
    "fmt_value",
    "param_columns",
    "table_cell",
    "varying",
]


def fmt_value(value: Any) -> str:
    """A compact string for a parameter value or a number."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        if float(value).is_integer() and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.3g}"
    if isinstance(value, tuple | list):
        return "(" + ", ".join(fmt_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def param_columns(frame: pd.DataFrame) -> list[str]:
    """The ``param_<name>`` columns of a leaderboard, in order."""
    return [c for c in frame.columns if str(c).startswith("param_")]


def display_names(columns: list[str]) -> dict[str, str]:
    """``param_model__l2`` -> ``l2`` unless two parameters share that short name."""
    full = {c: c[len("param_") :] if c.startswith("param_") else c for c in columns}
    short = {c: name.rsplit("__", 1)[-1] for c, name in full.items()}
    counts = pd.Series(list(short.values())).value_counts()
    return {c: short[c] if counts[short[c]] == 1 else full[c] for c in columns}


def _key(value: Any) -> str:
    return fmt_value(value)


def varying(frame: pd.DataFrame) -> list[str]:
    """Parameter columns that take more than one value (missing values aside)."""
    out = []
    for c in param_columns(frame):
        values = {_key(v) for v in frame[c].tolist()} - {""}
        if len(values) > 1:
            out.append(c)
    return out


def candidate_labels(frame: pd.DataFrame, max_len: int = 60) -> dict[Any, str]:
    """``{candidate: "#rank l2=0.002, dropout=0.5"}`` using the parameters that vary."""
    cols = varying(frame)
    names = display_names(cols)
    labels = {}
    for index, row in frame.iterrows():
        parts = [f"{names[c]}={fmt_value(row[c])}" for c in cols if fmt_value(row[c]) != ""]
        text = ", ".join(parts) or f"candidate {index}"
        if len(text) > max_len:
            text = text[: max_len - 1] + "…"
        labels[index] = f"#{row['rank']} {text}"
    return labels


def table_cell(column: str, value: Any) -> str:
    """A table cell: fixed decimals for scores, '<0.001' for small p-values."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else ""
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        if column == "p_value":
            return "<0.001" if value < 0.001 else f"{value:.3f}"
        if column in {"t_stat"}:
            return f"{value:.2f}"
        if column == "mean_fit_time":
            return f"{value:.3g}"
        if column == "median_best_epoch" or column.startswith("n_"):
            return fmt_value(value)
        if (
            "score" in column
            or column.startswith("ci95")
            or column
            in {
                "train_val_gap",
                "delta_vs_best",
            }
        ):
            return f"{value:.4f}"
    if column == "failure_reason":
        text = str(value)
        return text if len(text) <= 80 else text[:79] + "…"
    return fmt_value(value)

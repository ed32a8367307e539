"""What a leaderboard shows in a terminal: a compact table, 100 columns wide."""

import math
from typing import Any

import pandas as pd

from tunekit.record import BASELINE, FAIL
from tunekit.report._format import display_names, fmt_value, varying

__all__ = ["WIDTH", "Leaderboard", "num_text", "params_text", "text_table"]

#: Width of the terminal table.
WIDTH = 100
_NEEDED = {"rank", "mean_val_score", "se_val_score", "state"}


class Leaderboard(pd.DataFrame):
    """A leaderboard: a plain :class:`pandas.DataFrame` that prints what matters.

    ``print(lb)`` shows the rank, the shortened parameters, the CV mean ± its
    standard error, the held-out score, the train/validation gap and whether a
    row is tied with the best, in 100 columns, baselines last. Every column
    is still there: ``lb.columns``, ``lb.to_string()`` or
    :func:`tunekit.report.render` show them all.
    """

    @property
    def _constructor(self):
        return Leaderboard

    def __repr__(self) -> str:
        if not _NEEDED <= set(self.columns):
            return pd.DataFrame(self).__repr__()
        return text_table(self)

    def to_text(self, width: int = WIDTH, max_rows: int | None = 20) -> str:
        """The compact table ``print`` shows, ``width`` characters wide at most."""
        return text_table(self, width=width, max_rows=max_rows)


def params_text(lb: pd.DataFrame) -> dict[Any, str]:
    """Each row's parameters that vary, as ``name=value`` text; baselines by name."""
    cols = varying(lb[lb["state"] != BASELINE]) or []
    names = display_names(cols)
    out = {}
    for index, row in lb.iterrows():
        if row["state"] == BASELINE:
            out[index] = f"baseline: {str(index).split(':', 1)[-1]}"
            continue
        parts = [f"{names[c]}={fmt_value(row[c])}" for c in cols if fmt_value(row[c]) != ""]
        out[index] = ", ".join(parts) or "-"
    return out


def num_text(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` decimals; empty when missing or not finite."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return ""
    return f"{value:.{digits}f}" if math.isfinite(value) else ""


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def text_table(lb: pd.DataFrame, width: int = WIDTH, max_rows: int | None = 20) -> str:
    """A leaderboard as a compact table at most ``width`` characters wide.

    Parameters
    ----------
    lb : pandas.DataFrame
        A leaderboard.
    width : int, default=100
    max_rows : int or None, default=20
        Candidates shown (baselines are always shown); None shows all.

    Returns
    -------
    text : str
    """
    baseline = (lb["state"] == BASELINE).to_numpy(dtype=bool)
    candidates, marked = lb[~baseline], lb[baseline]
    hidden = 0
    if max_rows is not None and len(candidates) > max_rows:
        hidden = len(candidates) - max_rows
        candidates = candidates.iloc[:max_rows]
    shown = pd.concat([pd.DataFrame(candidates), pd.DataFrame(marked)])
    labels = params_text(lb)
    rows = []
    for index, row in shown.iterrows():
        rank = row["rank"]
        cv = num_text(row["mean_val_score"])
        se = num_text(row["se_val_score"])
        state = str(row["state"])
        rows.append(
            [
                "-" if rank is pd.NA or rank is None or (
                    isinstance(rank, float) and math.isnan(rank)
                ) else str(int(rank)),
                labels[index],
                (f"{cv} ± {se}" if se else cv) if cv else state.lower(),
                num_text(row.get("heldout_test_score")),
                num_text(row.get("train_val_gap")),
                "yes" if bool(row.get("tied_with_best", False)) and state != FAIL else "",
            ]
        )
    head = ["rank", "parameters", "CV mean ± SE", "held-out", "gap", "tied"]
    fixed = [max(len(head[k]), *(len(r[k]) for r in rows)) if rows else len(head[k])
             for k in range(len(head))]
    room = width - (sum(fixed) - fixed[1]) - 2 * (len(head) - 1)
    fixed[1] = max(10, min(fixed[1], room))
    right = {0, 2, 3, 4}

    def line(cells):
        out = []
        for k, cell in enumerate(cells):
            cell = _clip(cell, fixed[k])
            out.append(cell.rjust(fixed[k]) if k in right else cell.ljust(fixed[k]))
        return "  ".join(out).rstrip()

    scoring = lb.attrs.get("scoring") or "score"
    text = [line(head)]
    for k, r in enumerate(rows):
        if k == len(rows) - len(marked) and len(marked) and k:
            text.append("-" * min(width, len(text[0])))
        text.append(line(r))
    footer = f"{len(lb) - int(baseline.sum())} candidates"
    if hidden:
        footer += f" ({hidden} not shown)"
    footer += f"; {scoring}, higher is better; every column: leaderboard.to_string()"
    text.append(_clip(footer, width))
    return "\n".join(text)

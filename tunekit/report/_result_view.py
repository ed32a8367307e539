"""What a search result shows: ``print(result)`` and its view in a notebook."""

import base64
import html
import math
import textwrap
from typing import Any

import pandas as pd

from tunekit.exceptions import ReportError
from tunekit.record import BASELINE
from tunekit.report._curves import plot_epoch_curves
from tunekit.report._diagnostics import ensemble_lines
from tunekit.report._format import table_cell
from tunekit.report._leaderboard import leaderboard
from tunekit.report._plots import figure_png, plot_learning_curves
from tunekit.report._table import WIDTH, num_text, params_text, text_table

__all__ = ["result_html", "result_text"]

_ALT = "per-epoch training and validation curves, mean ± SE over the CV folds"


def _header_lines(result: Any, lb: pd.DataFrame) -> list[str]:
    attrs = lb.attrs
    held = getattr(result, "heldout_score_", None)
    best = attrs.get("best_candidate")
    labels = params_text(lb)
    first = (
        f"{attrs.get('strategy') or 'search'} search: {attrs.get('n_candidates', len(lb))} "
        f"candidates, {attrs.get('n_splits', '?')}-fold CV, scoring {attrs.get('scoring')}"
    )
    wall = getattr(result, "wall_time_", None)
    if wall:
        first += f", {wall:.0f} s"
    lines = [first]
    if best is not None:
        row = lb.loc[best]
        text = (
            f"best: candidate {best} ({labels[best]}): CV {num_text(row['mean_val_score'])}"
            f" ± {num_text(row['se_val_score'])}"
        )
        if held is not None and math.isfinite(held):
            text += f", held-out {held:.4f}"
        lines.append(text)
    if attrs.get("refit_summary"):
        lines.append(f"refit: {attrs['refit_summary']}")
    if attrs.get("nested_summary"):
        lines.append(attrs["nested_summary"])
    if attrs.get("baseline_summary"):
        lines.append(f"baselines: {attrs['baseline_summary']}")
    lines += ensemble_lines(result)
    return lines


def result_text(result: Any, width: int = WIDTH, top: int = 10) -> str:
    """What ``print(result)`` shows: the summary lines, then the top of the leaderboard."""
    lb = leaderboard(result)
    wrapped = []
    for line in _header_lines(result, lb):
        wrapped += textwrap.wrap(
            line, width=width, subsequent_indent="  ", break_on_hyphens=False
        )
    return "\n".join([*wrapped, "", text_table(lb, width=width, max_rows=top)])


def _epoch_figure(result: Any) -> Any:
    """The per-epoch curves of the CV folds when recorded, else the refit histories."""
    try:
        return plot_epoch_curves(result)
    except ReportError:
        pass
    if getattr(result, "histories_", None):
        return plot_learning_curves(result)
    return None


def result_html(result: Any, top: int = 10) -> str:
    """What a notebook shows for a result: summary, top of the leaderboard, epoch curves."""
    lb = leaderboard(result)
    esc = html.escape
    out = ['<div class="tunekit-result">', "<ul>"]
    out += [f"<li>{esc(line)}</li>" for line in _header_lines(result, lb)]
    out.append("</ul>")
    baseline = (lb["state"] == BASELINE).to_numpy(dtype=bool)
    shown = pd.concat([pd.DataFrame(lb[~baseline].iloc[:top]), pd.DataFrame(lb[baseline])])
    labels = params_text(lb)
    head = ["rank", "parameters", "CV mean", "SE", "held-out", "gap", "tied with best"]
    out.append("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead>")
    out.append("<tbody>")
    for index, row in shown.iterrows():
        style = ' style="font-style:italic"' if row["state"] == BASELINE else ""
        cells = [
            table_cell("rank", row["rank"]) or "-",
            labels[index],
            table_cell("mean_val_score", row["mean_val_score"]),
            table_cell("se_val_score", row["se_val_score"]),
            table_cell("heldout_test_score", row["heldout_test_score"]),
            table_cell("train_val_gap", row["train_val_gap"]),
            table_cell("tied_with_best", bool(row["tied_with_best"])),
        ]
        out.append(f"<tr{style}>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    if len(lb) - baseline.sum() > top:
        out.append(f"<p>{int(len(lb) - baseline.sum() - top)} more candidates: "
                   "<code>result.leaderboard</code></p>")
    png = _figure_png(result)
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        out.append(f'<img alt="{_ALT}" src="data:image/png;base64,{data}">')
    out.append("</div>")
    return "\n".join(out)


def _figure_png(result: Any) -> bytes | None:
    try:
        import matplotlib  # noqa: F401  (optional dependency: no figure without it)
    except ImportError:
        return None
    try:
        fig = _epoch_figure(result)
    except ReportError:
        return None
    if fig is None:
        return None
    return figure_png(fig, dpi=80)

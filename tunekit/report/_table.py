"""What a leaderboard and a result show in a terminal (100 columns) and in a notebook."""

import base64
import html
import math
import textwrap
from typing import Any

import numpy as np
import pandas as pd

from tunekit.report._format import display_names, fmt_value, varying

__all__ = ["Leaderboard", "result_html", "result_text", "text_table"]

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


def _params_text(lb: pd.DataFrame) -> dict[Any, str]:
    cols = varying(lb[lb["state"] != "BASELINE"]) or []
    names = display_names(cols)
    out = {}
    for index, row in lb.iterrows():
        if row["state"] == "BASELINE":
            out[index] = f"baseline: {str(index).split(':', 1)[-1]}"
            continue
        parts = [f"{names[c]}={fmt_value(row[c])}" for c in cols if fmt_value(row[c]) != ""]
        out[index] = ", ".join(parts) or "-"
    return out


def _num(value: Any, digits: int = 4) -> str:
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
    baseline = (lb["state"] == "BASELINE").to_numpy(dtype=bool)
    candidates, marked = lb[~baseline], lb[baseline]
    hidden = 0
    if max_rows is not None and len(candidates) > max_rows:
        hidden = len(candidates) - max_rows
        candidates = candidates.iloc[:max_rows]
    shown = pd.concat([pd.DataFrame(candidates), pd.DataFrame(marked)])
    labels = _params_text(lb)
    rows = []
    for index, row in shown.iterrows():
        rank = row["rank"]
        cv = _num(row["mean_val_score"])
        se = _num(row["se_val_score"])
        state = str(row["state"])
        rows.append(
            [
                "-" if rank is pd.NA or rank is None or (
                    isinstance(rank, float) and math.isnan(rank)
                ) else str(int(rank)),
                labels[index],
                (f"{cv} ± {se}" if se else cv) if cv else state.lower(),
                _num(row.get("heldout_test_score")),
                _num(row.get("train_val_gap")),
                "yes" if bool(row.get("tied_with_best", False)) and state != "FAIL" else "",
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


def _header_lines(result: Any, lb: pd.DataFrame) -> list[str]:
    attrs = lb.attrs
    held = getattr(result, "heldout_score_", None)
    best = attrs.get("best_candidate")
    labels = _params_text(lb)
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
            f"best: candidate {best} ({labels[best]}): CV {_num(row['mean_val_score'])}"
            f" ± {_num(row['se_val_score'])}"
        )
        if held is not None and math.isfinite(held):
            text += f", held-out {held:.4f}"
        lines.append(text)
    if attrs.get("baseline_summary"):
        lines.append(f"baselines: {attrs['baseline_summary']}")
    return lines


def result_text(result: Any, width: int = WIDTH, top: int = 10) -> str:
    """What ``print(result)`` shows: the summary lines, then the top of the leaderboard."""
    from tunekit.report._leaderboard import leaderboard

    lb = leaderboard(result)
    wrapped = []
    for line in _header_lines(result, lb):
        wrapped += textwrap.wrap(
            line, width=width, subsequent_indent="  ", break_on_hyphens=False
        )
    return "\n".join([*wrapped, "", text_table(lb, width=width, max_rows=top)])


def _epoch_figure(result: Any) -> Any:
    """A figure of the per-epoch curves: ``epoch_curves_`` when recorded, else the histories."""
    curves = getattr(result, "epoch_curves_", None)
    if isinstance(curves, pd.DataFrame) and len(curves) and "epoch" in curves.columns:
        from tunekit.report._plots import _figure

        values = [c for c in curves.columns if c not in ("candidate", "fold", "epoch")]
        values = [c for c in values if pd.api.types.is_numeric_dtype(curves[c])][:2]
        if not values:
            return None
        fig = _figure(5.0 * len(values), 3.6)
        axes = fig.subplots(1, len(values), squeeze=False)[0]
        group = ["candidate", "epoch"] if "candidate" in curves.columns else ["epoch"]
        means = curves.groupby(group)[values].mean().reset_index()
        # the standard error of the mean over the folds: the band around each curve
        errors = curves.groupby(group)[values].sem().reset_index()
        ranks = list(dict.fromkeys(_best_candidates(result, means)))
        for ax, value in zip(axes, values, strict=True):
            for k, cand in enumerate(ranks[:5]):
                pick = (means["candidate"] == cand) if "candidate" in means else slice(None)
                part, err = means[pick], errors[pick][value].fillna(0.0)
                ax.plot(part["epoch"], part[value], color=f"C{k}", label=f"candidate {cand}")
                ax.fill_between(
                    part["epoch"], part[value] - err, part[value] + err, color=f"C{k}", alpha=0.2
                )
            ax.set_xlabel("Epoch")
            label = value.replace("_", " ")
            scoring = getattr(result, "scoring", None)
            ax.set_ylabel(f"{label} ({scoring})" if value == "test_score" and scoring else label)
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].legend(fontsize=8)
        fig.suptitle("Per-epoch curves, mean +- SE over folds", fontsize=10)
        return fig
    if getattr(result, "histories_", None):
        from tunekit.report._plots import plot_learning_curves

        return plot_learning_curves(result)
    return None


def _best_candidates(result: Any, means: pd.DataFrame) -> list[Any]:
    if "candidate" not in means.columns:
        return [None]
    present = set(means["candidate"])
    order = [getattr(result, "best_index_", None)]
    ranks = np.asarray(getattr(result, "cv_results_", {}).get("rank_test_score", []))
    order += [int(i) for i in np.argsort(ranks, kind="stable")]
    return [c for c in order if c in present] or sorted(present)[:5]


def result_html(result: Any, top: int = 10) -> str:
    """What a notebook shows for a result: summary, top of the leaderboard, epoch curves."""
    from tunekit.report._leaderboard import leaderboard
    from tunekit.report._writers import _cell

    lb = leaderboard(result)
    esc = html.escape
    out = ['<div class="tunekit-result">', "<ul>"]
    out += [f"<li>{esc(line)}</li>" for line in _header_lines(result, lb)]
    out.append("</ul>")
    baseline = (lb["state"] == "BASELINE").to_numpy(dtype=bool)
    shown = pd.concat([pd.DataFrame(lb[~baseline].iloc[:top]), pd.DataFrame(lb[baseline])])
    labels = _params_text(lb)
    head = ["rank", "parameters", "CV mean", "SE", "held-out", "gap", "tied with best"]
    out.append("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead>")
    out.append("<tbody>")
    for index, row in shown.iterrows():
        style = ' style="font-style:italic"' if row["state"] == "BASELINE" else ""
        cells = [
            _cell("rank", row["rank"]) or "-",
            labels[index],
            _cell("mean_val_score", row["mean_val_score"]),
            _cell("se_val_score", row["se_val_score"]),
            _cell("heldout_test_score", row["heldout_test_score"]),
            _cell("train_val_gap", row["train_val_gap"]),
            _cell("tied_with_best", bool(row["tied_with_best"])),
        ]
        out.append(f"<tr{style}>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    if len(lb) - baseline.sum() > top:
        out.append(f"<p>{int(len(lb) - baseline.sum() - top)} more candidates: "
                   "<code>result.leaderboard</code></p>")
    png = _figure_png(result)
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        out.append(f'<img alt="per-epoch curves" src="data:image/png;base64,{data}">')
    out.append("</div>")
    return "\n".join(out)


def _figure_png(result: Any) -> bytes | None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    from tunekit.report._errors import ReportError
    from tunekit.report._plots import figure_png

    try:
        fig = _epoch_figure(result)
    except ReportError:
        return None
    if fig is None:
        return None
    return figure_png(fig, dpi=80)

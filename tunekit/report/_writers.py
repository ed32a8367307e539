"""Writers: Markdown, one self-contained HTML file, CSV, JSON, and a report directory."""

import base64
import html
import json
import logging
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunekit.exceptions import ReportError
from tunekit.record import COMPLETE, jsonable
from tunekit.report._curves import plot_epoch_curves
from tunekit.report._diagnostics import diagnostic_figures, ensemble_lines
from tunekit.report._format import display_names, fmt_value, param_columns, table_cell
from tunekit.report._io import atomic_write_bytes, atomic_write_text
from tunekit.report._leaderboard import (
    STAT_COLUMNS,
    baseline_summary,
    candidate_rows,
    is_leaderboard,
    leaderboard,
)
from tunekit.report._optuna_plots import optuna_plans, release
from tunekit.report._plots import (
    figure_png,
    plot_learning_curves,
    plot_optuna_history,
    plot_overfitting_gap,
    plot_param_scores,
)
from tunekit.report._source import LoadedResult, resolve

__all__ = ["FORMATS", "render", "write", "write_report"]

logger = logging.getLogger("tunekit.report")

FORMATS = ("md", "html", "csv", "json")
_SUFFIXES = {
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".csv": "csv",
    ".json": "json",
}

# Columns dropped from Markdown/HTML when no candidate has a value there.
_OPTIONAL = (
    "mean_train_score",
    "train_val_gap",
    "heldout_test_score",
    "median_best_epoch",
    "mean_fit_time",
    "n_failed_folds",
    "n_pruned_folds",
    "failure_reason",
    "iter",
    "n_resources",
)
#: The first column of Markdown and HTML tables: the row's candidate number or baseline name.
CANDIDATE = "candidate"
# Markdown/HTML show the leaderboard's columns but these (CSV and JSON keep every column).
_MD_COLUMNS = (
    "rank",
    *(
        c
        for c in STAT_COLUMNS
        if c not in {"std_val_score", "n_folds", "delta_vs_best", "t_stat", "failure_reason"}
    ),
)


def _drop_empty(frame: pd.DataFrame) -> pd.DataFrame:
    keep = []
    for column in frame.columns:
        if column in _OPTIONAL:
            values = frame[column]
            if column in {"n_failed_folds", "n_pruned_folds"}:
                if not (pd.to_numeric(values, errors="coerce").fillna(0) != 0).any():
                    continue
            elif not any(table_cell(column, v) for v in values):
                continue
        keep.append(column)
    return frame[keep]


def _headers(columns: Iterable[str]) -> dict[str, str]:
    columns = list(columns)
    names = display_names([c for c in columns if c.startswith("param_")])
    return {c: names.get(c, c) for c in columns}


# --------------------------------------------------------------------- summary
def _summary_lines(lb: pd.DataFrame) -> list[str]:
    attrs = lb.attrs
    lines = []
    counts = (
        f"{attrs.get('n_candidates', len(lb))} candidates ({attrs.get('n_complete', '?')} "
        f"complete, {attrs.get('n_pruned', '?')} pruned, {attrs.get('n_failed', '?')} failed)"
    )
    ratio = attrs.get("test_train_ratio")
    ratio_text = f", n_test/n_train = {ratio:.3g}" if isinstance(ratio, float) else ""
    lines.append(
        f"scoring: {attrs.get('scoring', '?')} (higher is better); {counts}; "
        f"{attrs.get('n_splits', '?')} folds{ratio_text}"
    )
    pcols = param_columns(lb)
    names = display_names(pcols)

    def describe(index: Any) -> str:
        row = lb.loc[index]
        params = ", ".join(
            f"{names[c]}={fmt_value(row[c])}" for c in pcols if fmt_value(row[c]) != ""
        )
        se = table_cell("se_val_score", row["se_val_score"])
        return (
            f"candidate {index} ({params or 'no parameters'}): "
            f"{table_cell('mean_val_score', row['mean_val_score'])}" + (f" ± {se} SE" if se else "")
        )

    best = attrs.get("best_candidate")
    if best is not None and best in lb.index:
        lines.append(f"best: {describe(best)}")
    pick = attrs.get("one_se_candidate")
    if pick is not None and pick in lb.index:
        lines.append(f"one-standard-error pick (most regularized within 1 SE): {describe(pick)}")
    if "tied_with_best" in lb.columns and best is not None:
        n_tied = int(candidate_rows(lb)["tied_with_best"].sum()) - 1
        lines.append(
            f"{n_tied} other candidate(s) tied with the best (Nadeau-Bengio corrected t-test, "
            f"alpha = {attrs.get('alpha', 0.05)})"
        )
    if attrs.get("refit_summary"):
        lines.append(f"refit: {attrs['refit_summary']}")
    if attrs.get("nested_summary"):
        lines.append(attrs["nested_summary"])
    lines += list(attrs.get("ensemble_summary") or [])
    comparison = baseline_summary(lb)
    if comparison:
        lines.append(f"baselines: {comparison}")
    return lines


def _failures(lb: pd.DataFrame) -> list[str]:
    if "failure_reason" not in lb.columns:
        return []
    out = []
    for index, row in lb.iterrows():
        reason = row["failure_reason"]
        if isinstance(reason, str) and reason and row["state"] != COMPLETE:
            shown = table_cell("failure_reason", reason)
            out.append(f"candidate {index} ({row['state']}): {shown}")
    return out


# -------------------------------------------------------------------- markdown
def _markdown_table(frame: pd.DataFrame) -> str:
    headers = _headers(frame.columns)
    cells = [[headers[c] for c in frame.columns]]
    for _, row in frame.iterrows():
        cells.append([table_cell(c, row[c]).replace("|", "\\|") for c in frame.columns])
    widths = [max(len(r[k]) for r in cells) for k in range(len(frame.columns))]
    numeric = [
        pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        for c in frame.columns
    ]
    lines = []
    for n, row in enumerate(cells):
        padded = [
            cell.rjust(w) if num and n else cell.ljust(w)
            for cell, w, num in zip(row, widths, numeric, strict=True)
        ]
        lines.append("| " + " | ".join(padded) + " |")
        if n == 0:
            rule = [
                ("-" * (w - 1) + ":") if num else "-" * w
                for w, num in zip(widths, numeric, strict=True)
            ]
            lines.append("| " + " | ".join(rule) + " |")
    return "\n".join(lines)


def _md_frame(lb: pd.DataFrame, columns: list[str] | None) -> pd.DataFrame:
    if columns is None:
        wanted = ["rank", *param_columns(lb)] + [c for c in _MD_COLUMNS if c != "rank"]
        return _labeled(_drop_empty(lb[[c for c in wanted if c in lb.columns]]))
    else:
        missing = [c for c in columns if c not in lb.columns]
        if missing:
            raise ReportError(
                f"columns must be leaderboard columns; unknown {missing}, "
                f"available: {list(lb.columns)}"
            )
        frame = lb[list(columns)]
    return frame


def _labeled(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with its rows' names first: a candidate's number, a baseline's name."""
    if CANDIDATE in frame.columns:
        return frame
    names = [str(i).replace("baseline:", "") + " (baseline)" if str(i).startswith("baseline:")
             else str(i) for i in frame.index]  # fmt: skip
    return frame.assign(**{CANDIDATE: names})[[CANDIDATE, *frame.columns]]


def _to_markdown(
    lb: pd.DataFrame,
    *,
    columns: list[str] | None = None,
    title: str | None = None,
    images: list[tuple[str, str]] | None = None,
) -> str:
    strategy = lb.attrs.get("strategy")
    heading = title or ("Leaderboard" + (f": {strategy}" if strategy else ""))
    parts = [f"# {heading}", ""]
    parts += [f"- {line}" for line in _summary_lines(lb)]
    parts += ["", _markdown_table(_md_frame(lb, columns)), ""]
    failures = _failures(lb)
    if failures:
        parts += ["Failed or pruned candidates:", ""] + [f"- {f}" for f in failures] + [""]
    for caption, target in images or []:
        parts += [f"![{caption}]({target})", ""]
    return "\n".join(parts)


# ------------------------------------------------------------------------ html
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
ul.summary{line-height:1.5}
.scroll{overflow-x:auto}
table.leaderboard{border-collapse:collapse;font-size:.85rem;white-space:nowrap}
table.leaderboard th,table.leaderboard td{border:1px solid #ccc;padding:.25rem .5rem}
table.leaderboard th{background:#f0f3f7;cursor:pointer;user-select:none;position:sticky;top:0}
table.leaderboard th[aria-sort=ascending]::after{content:" \\25B2"}
table.leaderboard th[aria-sort=descending]::after{content:" \\25BC"}
table.leaderboard td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{background:#fff4d6}tr.FAIL td{color:#a33}tr.PRUNED td{color:#777}
tr.BASELINE td{background:#eef3f8;font-style:italic}
figure{margin:1.5rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85rem;color:#555;max-width:60rem}
p.note{color:#777;font-style:italic}
"""

_JS = """
document.querySelectorAll("table.leaderboard th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var asc = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
      if (x === y) return 0;
      if (x === "") return 1;
      if (y === "") return -1;
      var c = th.dataset.type === "num" ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _sort_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | float | np.integer | np.floating):
        return repr(float(value)) if math.isfinite(value) else ""
    return fmt_value(value)


def _to_html(
    lb: pd.DataFrame,
    *,
    columns: list[str] | None = None,
    title: str | None = None,
    figures: list[dict[str, Any]] | None = None,
) -> str:
    if columns is None:
        frame = _labeled(_drop_empty(lb))
    else:
        frame = _md_frame(lb, columns)
    strategy = lb.attrs.get("strategy")
    heading = title or ("Leaderboard" + (f": {strategy}" if strategy else ""))
    esc = html.escape
    headers = _headers(frame.columns)
    numeric = {
        c: pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        for c in frame.columns
    }
    numeric[CANDIDATE] = True  # sorted by number; baselines (no number) go last
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(heading)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(heading)}</h1>",
        '<ul class="summary">',
    ]
    out += [f"<li>{esc(line)}</li>" for line in _summary_lines(lb)]
    out += [
        "</ul>",
        "<p class='note'>Click a column header to sort. Scores are cross-validation scores on "
        "the validation folds; heldout_test_score is the untouched test set.</p>",
        '<div class="scroll"><table class="leaderboard"><thead><tr>',
    ]
    out += [
        f'<th data-col="{esc(c)}" data-type="{"num" if numeric[c] else "text"}" '
        f'title="{esc(c)}">{esc(headers[c])}</th>'
        for c in frame.columns
    ]
    out.append("</tr></thead><tbody>")
    best = lb.attrs.get("best_candidate")
    for index, row in frame.iterrows():
        state = str(lb.loc[index, "state"])
        classes = [state] + (["best"] if index == best else [])
        out.append(f'<tr class="{" ".join(classes)}" data-candidate="{esc(str(index))}">')
        for c in frame.columns:
            value = row[c]
            css = ' class="num"' if numeric[c] else ""
            cell = esc(table_cell(c, value))
            sort = _sort_value(value) if c != CANDIDATE else (value if value.isdigit() else "")
            out.append(f'<td{css} data-v="{esc(sort)}">{cell}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    failures = _failures(lb)
    if failures:
        out.append("<h2>Failed or pruned candidates</h2><ul>")
        out += [f"<li>{esc(f)}</li>" for f in failures]
        out.append("</ul>")
    if figures:
        out.append("<h2>Plots</h2>")
        for fig in figures:
            if fig.get("png"):
                data = base64.b64encode(fig["png"]).decode("ascii")
                out.append(
                    f'<figure id="{esc(fig["name"])}"><img alt="{esc(fig["title"])}" '
                    f'src="data:image/png;base64,{data}">'
                    f"<figcaption><b>{esc(fig['title'])}.</b> {esc(fig['caption'])}</figcaption>"
                    "</figure>"
                )
            elif fig.get("note"):
                out.append(f'<p class="note">{esc(fig["title"])}: {esc(fig["note"])}</p>')
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ csv / json
def _to_csv(lb: pd.DataFrame) -> str:
    frame = lb.copy()
    for c in param_columns(frame):
        if frame[c].dtype == object:
            frame[c] = [fmt_value(v) if isinstance(v, tuple | list) else v for v in frame[c]]
    return frame.to_csv(index_label="candidate", lineterminator="\n")


def _to_json(lb: pd.DataFrame) -> str:
    rows = []
    for index, row in lb.iterrows():
        record = {"candidate": jsonable(index)}
        record.update({str(c): jsonable(row[c]) for c in lb.columns})
        rows.append(record)
    payload = {
        "format": "tunekit.leaderboard",
        "version": 1,
        "meta": jsonable(dict(lb.attrs)),
        "columns": ["candidate", *map(str, lb.columns)],
        "rows": rows,
    }
    return json.dumps(payload, indent=2, allow_nan=False) + "\n"


# --------------------------------------------------------------------- figures
_CAPTIONS = {
    "epoch_curves": (
        "Training and validation curves per epoch (CV folds)",
        "Per-epoch training loss (solid) and validation score on each fold's held-out part "
        "(dashed; validation loss too when early stopping carved a validation split), mean "
        "over the CV folds with a ±1 standard error band, for the best candidates and the "
        "least regularized one; dots: best validation epoch. Training that keeps improving "
        "while validation stalls or turns is overfitting; regularization delays the split.",
    ),
    "learning_curves": (
        "Training and validation curves of the refit candidates",
        "Per-epoch loss and metric of the best candidates refit on all the search data "
        "(Keras histories). Solid lines: training; dashed: validation, when the refit had "
        "validation data; dots: best validation epoch.",
    ),
    "param_scores": (
        "Validation score by hyperparameter",
        "Mean validation score of every complete candidate with ±1 standard error bars. Red "
        "star: best; green diamond: the one-standard-error pick; dashed line: best - 1 SE.",
    ),
    "overfitting_gap": (
        "Train/validation gap against regularization",
        "Top: mean training and validation scores; bottom: their gap, the overfitting signal. "
        "Lines join the means over candidates sharing a value.",
    ),
    "optuna_history": (
        "Optimization history",
        "Each Optuna trial's value and the best value so far; pruned trials at their partial "
        "mean (tunekit's plot: Optuna's own leaves pruned trials out).",
    ),
    "param_importances": (
        "Hyperparameter importances (Optuna)",
        "Share of the objective's variance explained by each hyperparameter (fANOVA, seed 0).",
    ),
    "optuna_slice": (
        "Objective by hyperparameter, trial by trial (Optuna slice plot)",
        "Every complete trial's value against each hyperparameter; the colour is the trial "
        "number, so it shows where the sampler concentrated over time.",
    ),
    "optuna_parallel_coordinate": (
        "Parallel coordinates (Optuna)",
        "Each complete trial as a line through its hyperparameters to its objective value.",
    ),
    "optuna_contour": (
        "Contour of the objective (Optuna)",
        "The objective interpolated over pairs of the most important hyperparameters; dots "
        "are trials.",
    ),
    "optuna_intermediate_values": (
        "Intermediate values (Optuna)",
        "The values each trial reported while it trained, which the pruner compared; lines "
        "that stop early are pruned trials.",
    ),
}


def collect_figures(obj: Any, lb: pd.DataFrame) -> list[dict[str, Any]]:
    """Draw every plot that applies to ``obj``; a note replaces those that cannot be drawn."""
    src = None if is_leaderboard(obj) else resolve(obj)
    plans: list[tuple[str, Callable[[], Any]]] = []
    if src is not None and src.epoch_curves_ is not None:
        plans.append(("epoch_curves", lambda: plot_epoch_curves(src)))
    if src is not None and src.histories_:
        plans.append(("learning_curves", lambda: plot_learning_curves(src)))
    plans.append(("param_scores", lambda: plot_param_scores(lb)))
    plans.append(("overfitting_gap", lambda: plot_overfitting_gap(lb)))
    study = None if src is None else src.study_
    if study is not None:
        plans.append(("optuna_history", lambda: plot_optuna_history(study)))
        plans.extend(optuna_plans(study))
    figures = []
    for name, draw in plans:
        title, caption = _CAPTIONS[name]
        try:
            fig = draw()
            png = figure_png(fig)
            release(fig)
        except ReportError as exc:
            logger.info("report: %s not drawn: %s", name, exc)
            figures.append({"name": name, "title": title, "caption": caption, "note": str(exc)})
            continue
        figures.append({"name": name, "title": title, "caption": caption, "png": png})
    return figures


# ----------------------------------------------------------------- public API
def _check_format(format: str) -> str:
    fmt = str(format).lower().lstrip(".")
    fmt = {"markdown": "md", "htm": "html"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ReportError(f"format must be one of {list(FORMATS)}; got format={format!r}")
    return fmt


def render(
    obj: Any,
    format: str = "md",
    *,
    columns: list[str] | None = None,
    title: str | None = None,
    plots: bool = True,
    **leaderboard_kwargs: Any,
) -> str:
    """Render a leaderboard as Markdown, HTML, CSV or JSON text.

    Parameters
    ----------
    obj : object
        A leaderboard, or anything :func:`leaderboard` accepts.
    format : {"md", "html", "csv", "json"}, default="md"
        ``md``: a summary and an aligned pipe table, readable in a terminal
        and on GitHub; ``html``: one self-contained page (sortable table,
        plots embedded as data URIs, no network); ``csv`` and ``json``: every
        column, for machines.
    columns : list of str, default=None
        Leaderboard columns to show in ``md``/``html``; by default the main
        ones, without optional columns that are empty for every candidate.
    title : str, default=None
        Heading of ``md``/``html`` output.
    plots : bool, default=True
        Embed plots in ``html`` output.
    **leaderboard_kwargs
        Passed to :func:`leaderboard` (``alpha``, ``test_train_ratio``...).

    Returns
    -------
    text : str

    Raises
    ------
    ReportError
        If ``format`` is unknown.
    """
    fmt = _check_format(format)
    lb = leaderboard(obj, **leaderboard_kwargs)
    if fmt == "md":
        return _to_markdown(lb, columns=columns, title=title)
    if fmt == "html":
        figures = collect_figures(obj, lb) if plots else None
        return _to_html(lb, columns=columns, title=title, figures=figures)
    if fmt == "csv":
        return _to_csv(lb)
    return _to_json(lb)


def write(
    obj: Any,
    path: str | os.PathLike,
    format: str | None = None,
    **kwargs: Any,
) -> Path:
    """Write a leaderboard to ``path`` atomically.

    Parameters
    ----------
    obj : object
        A leaderboard, or anything :func:`leaderboard` accepts.
    path : str or path-like
        Destination file. It is written to a temporary file in the same
        directory first, then moved into place with :func:`os.replace`.
    format : {"md", "html", "csv", "json"}, default=None
        By default taken from the suffix of ``path`` (``.md``, ``.html``,
        ``.csv``, ``.json``).
    **kwargs
        Passed to :func:`render`.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ReportError
        If the format is unknown or cannot be told from the suffix.

    Examples
    --------
    With ``search`` a fitted ``GridSearchCV`` (as in :func:`leaderboard`):

    >>> from tunekit.report import write
    >>> write(search, "leaderboard.csv").name  # doctest: +SKIP
    'leaderboard.csv'
    """
    path = Path(path)
    if format is None:
        format = _SUFFIXES.get(path.suffix.lower())
        if format is None:
            raise ReportError(
                f"cannot tell the format from the suffix of {str(path)!r}: use .md, .html, "
                f".csv or .json, or pass format= (one of {list(FORMATS)})"
            )
    text = render(obj, format, **kwargs)
    return atomic_write_text(path, text)


def _cv_results_payload(src: LoadedResult, lb: pd.DataFrame) -> str:
    study = src.study_
    meta = {
        "strategy": src.strategy,
        "scoring": src.scoring,
        "metric": src.metric,
        "n_splits": src.n_splits_,
        "test_train_ratio": lb.attrs.get("test_train_ratio"),
        "wall_time": src.wall_time_,
        "n_fits": src.n_fits_,
        "n_epochs": src.n_epochs_,
        "study_name": getattr(study, "study_name", None),
    }
    payload = {
        "format": "tunekit.cv_results",
        "version": 1,
        "meta": jsonable(meta),
        "cv_results": {str(k): jsonable(v) for k, v in src.cv_results_.items()},
        "histories": jsonable({str(k): v for k, v in src.histories_.items()}),
        "baselines": jsonable(src.baselines_),
        "nested": src.nested_,
        "epoch_curves": _curves_payload(src.epoch_curves_),
    }
    return json.dumps(payload, allow_nan=False) + "\n"


def _curves_payload(curves: pd.DataFrame | None) -> dict | None:
    """Per-epoch curves as JSON columns (None where a value is not finite)."""
    if curves is None or not len(curves):
        return None
    return {str(c): jsonable(curves[c].to_numpy()) for c in curves.columns}


def write_report(
    obj: Any,
    out_dir: str | os.PathLike,
    formats: Iterable[str] = FORMATS,
    *,
    plots: bool = True,
    **leaderboard_kwargs: Any,
) -> dict[str, Path]:
    """Write a full report directory: leaderboard files, PNG plots and an index.

    Every file is written atomically. The directory can be read back with
    :func:`tunekit.report.load` (it holds ``cv_results.json``, plain JSON;
    nothing is pickled).

    Parameters
    ----------
    obj : object
        A search result, fitted ``*SearchCV``, Optuna study, loaded result or
        leaderboard.
    out_dir : str or path-like
        Directory to write into (created when missing).
    formats : iterable of {"md", "html", "csv", "json"}, default=all four
        Leaderboard files to write, as ``leaderboard.<format>``.
    plots : bool, default=True
        Draw the plots (PNG files, also embedded in the HTML).
    **leaderboard_kwargs
        Passed to :func:`leaderboard`.

    Returns
    -------
    written : dict of str to pathlib.Path
        ``{"md": ..., "html": ..., "csv": ..., "json": ..., "index": ...,
        "cv_results": ..., "<plot name>": ...}`` for the files written.

    Examples
    --------
    With ``search`` a fitted ``GridSearchCV`` (as in :func:`leaderboard`):

    >>> from tunekit.report import write_report
    >>> sorted(write_report(search, "report"))  # doctest: +SKIP
    ['csv', 'cv_results', 'html', 'index', 'json', 'md', 'overfitting_gap', 'param_scores']
    """
    wanted = [_check_format(f) for f in formats]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = None if is_leaderboard(obj) else resolve(obj)
    lb = leaderboard(obj if src is None else src, **leaderboard_kwargs)
    lb.attrs["ensemble_summary"] = ensemble_lines(obj)  # the ensemble beside the best, held out
    written: dict[str, Path] = {}
    figures = collect_figures(obj if src is None else src, lb) if plots else []
    figures += diagnostic_figures(obj if src is None or hasattr(obj, "oof_predictions_")
                                  else src) if plots else []  # out-of-fold predictions
    for fig in figures:
        if fig.get("png"):
            written[fig["name"]] = atomic_write_bytes(out / f"{fig['name']}.png", fig["png"])
    for fmt in wanted:
        if fmt == "md":
            text = _to_markdown(lb)
        elif fmt == "html":
            text = _to_html(lb, figures=figures)
        elif fmt == "csv":
            text = _to_csv(lb)
        else:
            text = _to_json(lb)
        written[fmt] = atomic_write_text(out / f"leaderboard.{fmt}", text)
    if src is not None:
        written["cv_results"] = atomic_write_text(
            out / "cv_results.json", _cv_results_payload(src, lb)
        )
    images = [(f["title"], f"{f['name']}.png") for f in figures if f.get("png")]
    index = _to_markdown(lb, images=images, title="Search report")
    listing = [f"- [{p.name}]({p.name})" for key, p in written.items() if key in FORMATS]
    if "cv_results" in written:
        listing.append("- [cv_results.json](cv_results.json) (reload with tunekit.report.load)")
    notes = [f"- {f['title']}: {f['note']}" for f in figures if f.get("note")]
    index += "\n## Files\n\n" + "\n".join(listing) + "\n"
    if notes:
        index += "\n## Plots not drawn\n\n" + "\n".join(notes) + "\n"
    written["index"] = atomic_write_text(out / "index.md", index)
    logger.info("report written to %s (%d files)", out, len(written))
    return written

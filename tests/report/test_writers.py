"""Writers: Markdown, self-contained HTML, CSV, JSON, report directories; atomic writes."""

import json
import math
import os
import re
import shutil
import stat
import subprocess

import numpy as np
import pandas as pd
import pytest

from tunekit.report import (
    LoadedResult,
    ReportError,
    leaderboard,
    load,
    plot_learning_curves,
    render,
    write,
    write_report,
)


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_markdown_is_an_aligned_table_with_a_summary(result):
    text = render(result, "md")
    lines = text.splitlines()
    assert lines[0] == "# Leaderboard: grid"
    assert any(
        line.startswith("- scoring: accuracy (higher is better); 6 candidates") for line in lines
    )
    assert any(
        line.startswith("- best: candidate 1 (l2=0.001, dropout=0.2, batch_size=64)")
        for line in lines
    )
    assert any("one-standard-error pick" in line for line in lines)
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + 6
    assert len({len(line) for line in table}) == 1  # columns padded: readable in a terminal
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[:5] == ["candidate", "rank", "l2", "dropout", "batch_size"]
    assert "heldout_test_score" in header and "median_best_epoch" in header
    assert re.match(r"\| -+ \| -+: \|", table[1])  # names left, numbers right-aligned
    assert "- candidate 5 (FAIL): DivergedError: loss became NaN" in lines


def test_markdown_drops_empty_optional_columns_and_accepts_columns(grid_search):
    header = render(grid_search).split("\n| candidate")[1].splitlines()[0]
    assert "heldout_test_score" not in header and "median_best_epoch" not in header
    text = render(grid_search, columns=["rank", "mean_val_score"])
    assert "| rank | mean_val_score |" in text
    with pytest.raises(
        ReportError, match=r"columns must be leaderboard columns; unknown \['nope'\]"
    ):
        render(grid_search, columns=["rank", "nope"])


def test_html_is_self_contained(result):
    page = render(result, "html")
    assert page.startswith("<!DOCTYPE html>")
    # nothing to fetch: every src/href is a data: URI, no stylesheet or script links
    assert not re.findall(r'(?:src|href)="(?!data:)', page)
    assert "http://" not in page and "https://" not in page
    assert page.count('src="data:image/png;base64,') == 3  # curves, scores, gap (no study)
    assert page.count("<tr class=") == 6
    assert '<tr class="COMPLETE best" data-candidate="1">' in page
    assert "addEventListener" in page  # sortable headers


def test_html_notes_plots_it_cannot_draw(make_result):
    page = render(make_result(np.full((2, 3), 0.8), params=[{"a": 1}, {"a": 1}]), "html")
    assert "no hyperparameter takes more than one value" in page
    assert "data:image/png" not in page


def test_html_escapes_values(make_result):
    lb = render(
        make_result(np.full((1, 3), 0.8), params=[{"activation": "<script>x</script>"}]), "html"
    )
    assert "<script>x</script>" not in lb and "&lt;script&gt;" in lb


def test_csv_and_json_round_trip(result, tmp_path):
    lb = leaderboard(result)
    csv_path = write(result, tmp_path / "lb.csv")
    json_path = write(result, tmp_path / "lb.json")
    payload = _strict_json(json_path.read_text())
    assert payload["format"] == "tunekit.leaderboard"
    assert payload["meta"]["best_candidate"] == 1
    assert payload["rows"][0]["candidate"] == 1
    for path in (csv_path, json_path):
        back = load(path)
        assert list(back.index) == list(lb.index)
        np.testing.assert_allclose(back["mean_val_score"], lb["mean_val_score"])
        assert list(back["state"]) == list(lb["state"])
        assert leaderboard(back) is not back  # a leaderboard is accepted as is (copied)
    assert load(json_path).attrs["scoring"] == "accuracy"
    assert pd.read_csv(csv_path).columns[0] == "candidate"


def test_json_of_tuple_parameters_round_trips(study, tmp_path):
    back = load(write(study, tmp_path / "lb.json"))
    assert back["param_hidden"].iloc[0] == (16, 16)


@pytest.mark.parametrize(
    "name, fmt, marker",
    [
        ("lb.md", None, "# Leaderboard"),
        ("lb.markdown", None, "# Leaderboard"),
        ("lb.htm", None, "<!DOCTYPE html>"),
        ("lb.csv", None, "candidate,rank"),
        ("lb.json", None, '"format": "tunekit.leaderboard"'),
        ("lb.txt", "md", "# Leaderboard"),
        ("out", "html", "<!DOCTYPE html>"),
    ],
)
def test_write_takes_the_format_from_the_suffix(result, tmp_path, name, fmt, marker):
    path = write(result, tmp_path / name, fmt)
    assert path == tmp_path / name
    assert path.read_text().lstrip().startswith(marker) or marker in path.read_text()


@pytest.mark.parametrize(
    "name, fmt, match",
    [
        ("lb.txt", None, r"cannot tell the format from the suffix of .*lb\.txt.*pass format="),
        (
            "lb.md",
            "pdf",
            r"format must be one of \['md', 'html', 'csv', 'json'\]; got format='pdf'",
        ),
    ],
)
def test_write_rejects_unknown_formats(result, tmp_path, name, fmt, match):
    with pytest.raises(ReportError, match=match):
        write(result, tmp_path / name, fmt)
    assert not (tmp_path / name).exists()


def test_writes_are_atomic(result, tmp_path, monkeypatch):
    import tunekit.report._io as io_module

    path = tmp_path / "lb.md"
    path.write_text("old report")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(io_module.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write(result, path)
    assert path.read_text() == "old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lb.md"]  # no temporary file left


def test_written_files_get_ordinary_permissions(result, tmp_path):
    old = os.umask(0o022)
    try:
        path = write(result, tmp_path / "lb.md")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_write_report_directory_and_reload(result, tmp_path):
    written = write_report(result, tmp_path / "report")
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert names == {
        "leaderboard.md",
        "leaderboard.html",
        "leaderboard.csv",
        "leaderboard.json",
        "cv_results.json",
        "index.md",
        "learning_curves.png",
        "param_scores.png",
        "overfitting_gap.png",
    }
    assert set(written) == {
        "md", "html", "csv", "json", "cv_results", "index",
        "learning_curves", "param_scores", "overfitting_gap",
    }  # fmt: skip
    index = written["index"].read_text()
    assert "![Training and validation curves of the refit candidates](learning_curves.png)" in index
    assert "[leaderboard.html](leaderboard.html)" in index
    _strict_json(written["cv_results"].read_text())

    back = load(tmp_path / "report")
    assert isinstance(back, LoadedResult)
    again, original = leaderboard(back), leaderboard(result)
    pd.testing.assert_frame_equal(again, original, check_dtype=False)
    assert again.attrs["test_train_ratio"] == 0.5
    assert plot_learning_curves(back) is not None  # histories survive the round trip


def test_write_report_for_a_study_and_notes(study, add_cv_trial, tmp_path):
    written = write_report(study, tmp_path / "study", formats=("md",))
    assert {"optuna_history", "param_importances", "md", "index"} <= set(written)
    assert "html" not in written

    import optuna

    tiny = optuna.create_study(direction="maximize", study_name="tiny")
    add_cv_trial(tiny, {"batch_size": 32}, [0.8, 0.8, 0.8])
    written = write_report(tiny, tmp_path / "tiny", formats=("md",))
    assert "param_importances" not in written
    index = written["index"].read_text()
    assert "## Plots not drawn" in index
    assert "Hyperparameter importances (Optuna): parameter importances cannot be" in index


def test_write_report_of_a_leaderboard(result, tmp_path):
    written = write_report(leaderboard(result), tmp_path / "lb", formats=("csv",), plots=False)
    assert set(written) == {"csv", "index"}


@pytest.mark.browser
def test_html_renders_in_headless_chromium(result, tmp_path):
    """A real browser shows the table and decodes every embedded image; sorting works."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("no chromium binary found")
    page = render(result, "html")
    probe = """
<script>
window.addEventListener("load", function () {
  var widths = Array.prototype.map.call(document.images, function (img) {
    return img.complete ? img.naturalWidth : -1;
  });
  var th = document.querySelector('th[data-col="mean_val_score"]');
  th.click();  // ascending: the worst scored candidate first, empty cells last
  var first = document.querySelector("table.leaderboard tbody tr").dataset.candidate;
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({widths: widths, firstAfterSort: first});
  document.body.appendChild(out);
});
</script>
"""
    html_path = tmp_path / "report.html"
    html_path.write_text(page.replace("</body>", probe + "</body>"))
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        html_path.as_uri(),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not finish in 120 s")
    dom = done.stdout
    assert "<table" in dom, done.stderr[-2000:]
    assert dom.count('data-candidate="') == 6
    probe_json = re.search(r'<pre id="probe">(.*?)</pre>', dom).group(1)
    data = json.loads(probe_json.replace("&quot;", '"'))
    assert len(data["widths"]) == 3 and all(w > 100 for w in data["widths"]), data
    assert data["firstAfterSort"] == "3"  # lowest complete mean (candidate 3), NaN-free first
    assert not math.isnan(float(data["widths"][0]))


def test_baseline_rows_are_labeled_in_the_first_column():
    from sklearn.linear_model import LogisticRegression

    import tunekit as tk

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    result = tk.search(LogisticRegression(), X, y, space={"C": tk.Choice([0.1, 1.0])}, cv=3,
                       verbose=0)  # fmt: skip
    rows = [line for line in render(result, "md").splitlines() if line.startswith("| ")]
    firsts = [line.strip("|").split("|")[0].strip() for line in rows]
    assert firsts[0] == "candidate"
    assert sorted(firsts[2:4]) == ["0", "1"]  # the candidates, ranked
    assert firsts[4:] == ["dummy (baseline)", "logistic (baseline)"]
    page = render(result, "html")
    cells = re.findall(r'<tr class="BASELINE" data-candidate="([^"]+)">\s*<td[^>]*>([^<]*)<', page)
    assert cells == [("baseline:dummy", "dummy (baseline)"),
                     ("baseline:logistic", "logistic (baseline)")]  # fmt: skip
